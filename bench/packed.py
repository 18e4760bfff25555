"""Packed CPU linears (modes/packed.py) against plain nn.Linear, and how often batched greedy equals
one-row greedy in each precision.

Speed, on the served bf16 model, the plain copy (its linears unpacked) being the baseline measured in
the same run: a decode step at batch 1 and 16 (100-token context), a 16-row prefill, and the engine
answering 16 held-out sentences submitted at once (k=4, EN->KO).
Agreement, in bf16 and in float32, for n held-out sentences per direction at k=4: the engine's batched
answers, and the same rows one at a time through the engine, each against transformers' one-row greedy
on the whole prompt. Medians throughout.
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

from modes import data as task  # noqa: E402
from modes import packed  # noqa: E402
from modes.engine import Engine  # noqa: E402
from modes.loader import ModelLoader  # noqa: E402
from bench.precision import decode_step, med, prefill  # noqa: E402


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
    fast, tok = l16.get()
    plain = copy.deepcopy(fast)
    print(f"torch {torch.__version__}, threads {torch.get_num_threads()}; packed linears: "
          f"{sum(isinstance(m, packed.PackedLinear) for m in fast.modules())}; unpacked in the baseline copy: "
          f"{packed.unpack(plain)}")
    pairs = prompts("en-ko", args.n)
    cases = [("decode step, batch 1", lambda m: decode_step(m, 1)), ("decode step, batch 16", lambda m: decode_step(m, 16)),
             ("prefill, 16 x 100 tokens", lambda m: prefill(m, 16)),
             (f"engine, {args.n} sentences at once", lambda m: lambda: engine_answers(m, tok, pairs, 16))]
    print("\n| bf16 | plain (baseline) | packed | speed-up |\n|---|---|---|---|")
    for name, make in cases:
        a, b = med(make(plain), args.repeats), med(make(fast), args.repeats)
        print(f"| {name} | {a * 1000:.1f} ms | {b * 1000:.1f} ms | {a / b:.2f}x |", flush=True)
    del plain

    print("\n| served dtype | direction | batched = one-row greedy | one at a time through the engine = one-row greedy |\n|---|---|---|---|")
    for dtype in ("bfloat16", "float32"):
        model = fast if dtype == "bfloat16" else ModelLoader(dtype="float32", cache_dir=l16.cache_dir).get()[0]
        for d in task.DIRECTIONS:
            pairs = prompts(d, args.n)
            want = [one_row_greedy(model, tok, p, q) for p, q in pairs]
            batched = engine_answers(model, tok, pairs, 16)
            alone = engine_answers(model, tok, pairs, 1)
            same = lambda got: sum(g == w for g, w in zip(got, want))  # noqa: E731
            print(f"| {dtype} | {d} | {same(batched)}/{len(pairs)} | {same(alone)}/{len(pairs)} |", flush=True)


if __name__ == "__main__":
    main()
