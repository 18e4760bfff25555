"""The served bf16 model's CPU path: packed linears (modes/serving/packed.py) and row-wise attention
(modes/serving/rowwise.py) against plain nn.Linear with sdpa, and how often a row's answer depends on its batch.

Speed, the baseline (plain linears, sdpa) measured in the same run: a decode step at batch 1 and 16
(100-token context), a 16-row prefill, and the engine answering 16 held-out sentences at once (k=4).
Agreement, for n held-out sentences per direction at k=4: the engine's batched answers against the
same rows one at a time through the engine, and both against transformers' one-row greedy on the
whole prompt; for the served bf16 model, bf16 with sdpa, and float32. Medians throughout.
Usage: python bench/packed.py [--repeats 7] [--n 16]
"""

from __future__ import annotations

import argparse
import copy
import sys
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench.precision import decode_step, med, prefill  # noqa: E402
from modes.data import translation as task  # noqa: E402
from modes.model.loader import ModelLoader  # noqa: E402
from modes.serving import packed  # noqa: E402
from modes.serving.engine import Engine  # noqa: E402


def prompts(direction: str, n: int) -> list[tuple[str, str]]:
    out = []
    for p in task.pairs_for(direction, "test")[:n]:
        prefix, query, _ = task.fewshot_prompt(direction, p.source, 4, None, "random", 0, task.DEFAULT_TEMPLATE)
        out.append((prefix, query))
    return out


def engine_answers(model, tok, pairs, max_rows: int) -> list[str]:
    (prefix,) = {p for p, _ in pairs}  # seeded examples: one few-shot prefix for every query
    return Engine(max_rows=max_rows).generate(model, tok, prefix, [q for _, q in pairs], lane="base", session="bench",
                                              max_new=64)


def one_row_greedy(model, tok, prefix: str, query: str) -> str:
    head = tok(prefix, add_special_tokens=True)["input_ids"]
    x = torch.tensor([head + tok(query, add_special_tokens=False)["input_ids"]])
    stop = [tok("\n", add_special_tokens=False)["input_ids"][-1], tok.eos_token_id]
    with torch.no_grad():
        out = model.generate(input_ids=x, attention_mask=torch.ones_like(x), max_new_tokens=64, do_sample=False,
                             eos_token_id=stop, pad_token_id=tok.pad_token_id)
    return tok.decode(out[0, x.shape[1]:], skip_special_tokens=True).split("\n")[0].strip()


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--repeats", type=int, default=7)
    ap.add_argument("--n", type=int, default=16)
    args = ap.parse_args()
    torch.manual_seed(0)
    l16 = ModelLoader(dtype="bfloat16")
    served, tok = l16.get()  # packed linears and row-wise attention, as the app serves bf16 on a CPU
    sdpa = copy.deepcopy(served)
    sdpa.set_attn_implementation("sdpa")
    plain = copy.deepcopy(sdpa)
    print(f"torch {torch.__version__}, threads {torch.get_num_threads()}; served attention "
          f"{served.config._attn_implementation}; linears unpacked in the baseline copy: {packed.unpack(plain)}")
    pairs = prompts("en-ko", args.n)
    cases = [("decode step, batch 1", lambda m: decode_step(m, 1)), ("decode step, batch 16", lambda m: decode_step(m, 16)),
             ("prefill, 16 x 100 tokens", lambda m: prefill(m, 16)),
             (f"engine, {args.n} sentences at once", lambda m: lambda: engine_answers(m, tok, pairs, 16))]
    print("\n| bf16 | plain linears, sdpa (baseline) | packed, sdpa | packed, row-wise (served) | served speed-up |\n|---|---|---|---|---|")
    for name, make in cases:
        a, b, c = (med(make(m), args.repeats) for m in (plain, sdpa, served))
        print(f"| {name} | {a * 1000:.1f} ms | {b * 1000:.1f} ms | {c * 1000:.1f} ms | {a / c:.2f}x |", flush=True)
    del plain

    print("\n| model | direction | batched = one at a time (engine) | batched = one-row greedy | one at a time = one-row greedy |"
          "\n|---|---|---|---|---|")
    variants = [("bf16 served (packed, row-wise)", lambda: served), ("bf16 packed, sdpa", lambda: sdpa),
                ("float32", lambda: ModelLoader(dtype="float32", cache_dir=l16.cache_dir).get()[0])]
    for name, get in variants:
        model = get()
        for d in task.DIRECTIONS:
            pairs = prompts(d, args.n)
            want = [one_row_greedy(model, tok, p, q) for p, q in pairs]
            batched = engine_answers(model, tok, pairs, 16)
            alone = engine_answers(model, tok, pairs, 1)
            same = lambda x, y: f"{sum(g == w for g, w in zip(x, y))}/{len(pairs)}"
            print(f"| {name} | {d} | {same(batched, alone)} | {same(batched, want)} | {same(alone, want)} |", flush=True)


if __name__ == "__main__":
    main()
