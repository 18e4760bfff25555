"""float32 against bfloat16 on this CPU: speed of every step a learner waits for, and quality parity.

Loads the embedded model twice from the safetensors cache (float32, and cast to bfloat16) and
measures, in one run, the bf16/fp32 ratio of: a decode step at batch 1 and 16, prefill, one
translation (k=4, streamed), the default sweep (ks 0,1,2,4,8 on the held-out pairs), token loss,
and a LoRA training step (fp32 base against a bf16 base with an fp32 adapter). Then the parity
figures: chrF at k=4 in both directions, the LoRA adapter's chrF applied to each served model, and
the mean per-token loss difference on a fixed English/Korean text. Medians throughout; the float32
figure is the baseline, measured in the same run.
Usage: python bench/precision.py [--repeats 5] [--sweep-n 69] [--lora-steps 60]
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from modes.data import translation as task  # noqa: E402
from modes.finetune import core as fc  # noqa: E402
from modes.incontext import core as ic  # noqa: E402
from modes.metrics import chrf  # noqa: E402
from modes.model.loader import ModelLoader  # noqa: E402
from modes.pretrain import core as pc  # noqa: E402
from modes.serving.precision import cpu_bf16_flags, cpu_line  # noqa: E402

TEXT = ("The weather was lovely, so we walked along the river and talked about the new library. "
        "오늘은 날씨가 좋아서 강을 따라 걸으며 새 도서관 이야기를 했어요.")


def med(fn, repeats: int) -> float:
    fn()  # warm-up
    times = []
    for _ in range(repeats):
        t = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t)
    return statistics.median(times)


@torch.no_grad()
def decode_step(model, batch: int, context: int = 100):
    from transformers import DynamicCache

    ids = torch.randint(1000, 20000, (batch, context))
    cache = model(input_ids=ids, cache=DynamicCache(config=model.config), use_cache=True).cache
    nxt = ids[:, -1:]

    @torch.no_grad()  # the factory's decorator does not reach the calls made later
    def step():
        model(input_ids=nxt, cache=__import__("copy").deepcopy(cache), use_cache=True)

    return step


@torch.no_grad()
def prefill(model, batch: int, context: int = 100):
    ids = torch.randint(1000, 20000, (batch, context))
    return torch.no_grad()(lambda: model(input_ids=ids, use_cache=False, logits_to_keep=1))


def translate_once(model, tok):
    prefix, query, _ = task.fewshot_prompt("en-ko", "Where can I buy a ticket for the museum?", 4)

    def run():
        list(ic.stream_generate(model, tok, prefix, query, max_new_tokens=64))

    return run


def sweep(model, tok, direction: str, ks, n: int) -> dict:
    test = task.pairs_for(direction, "test")[:n]
    out = {}
    for k in ks:
        prompts = [task.fewshot_prompt(direction, p.source, k) for p in test]
        hyps = ic.generate_batch(model, tok, prompts[0][0], [q for _, q, _ in prompts])
        out[k] = chrf(hyps, [p.target for p in test])
    return out


def lora_step(base, tok):
    from peft import get_peft_model

    cfg = fc.FinetuneConfig()
    model = get_peft_model(base, cfg.lora_config())
    for _, p in model.named_parameters():
        if p.requires_grad:
            p.data = p.data.float()  # the adapter stays float32 whatever the base
    opt = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=1e-3)
    rows = [fc.encode_pair(tok, task.DEFAULT_TEMPLATE, "en-ko", p, 40) for p in task.pairs_for("en-ko", "train")[:8]]
    ids, mask, labels = fc.collate(rows, tok.pad_token_id)
    model.train()

    def step():
        loss = fc.masked_lm_loss(model, ids, mask, labels)
        opt.zero_grad()
        loss.backward()
        opt.step()

    return step


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--sweep-n", type=int, default=69)
    ap.add_argument("--lora-steps", type=int, default=60)
    args = ap.parse_args()
    print(f"{cpu_line()}; CPU bf16 flags: {cpu_bf16_flags() or 'none'}; threads {torch.get_num_threads()}")
    l32 = ModelLoader(dtype="float32")
    m32, tok = l32.get()
    l16 = ModelLoader(dtype="bfloat16")
    m16, _ = l16.get()
    print(f"served dtypes: {l32.dtype_name} / {l16.dtype_name}")
    # auto's own decision on this machine, as the app makes it at start
    auto = ModelLoader(dtype="auto")
    auto.get()
    print(f"auto decides: {auto.dtype_name}: {auto.dtype_reason}")
    del auto

    rows = []

    def compare(name, make, repeats=args.repeats):
        a = med(make(m32), repeats)
        b = med(make(m16), repeats)
        rows.append((name, a, b))
        print(f"{name:38s} fp32 {a:8.3f} s   bf16 {b:8.3f} s   bf16/fp32 {b / a:5.2f}  (speed-up {a / b:4.2f}x)", flush=True)

    compare("decode step, batch 1 (100-token ctx)", lambda m: decode_step(m, 1))
    compare("decode step, batch 16 (100-token ctx)", lambda m: decode_step(m, 16))
    compare("prefill, 1 x 100 tokens", lambda m: prefill(m, 1))
    compare("prefill, 16 x 100 tokens", lambda m: prefill(m, 16), repeats=3)
    compare("one translation (k=4, streamed)", lambda m: translate_once(m, tok), repeats=3)
    compare("token loss (fixed EN/KO text)", lambda m: (lambda: pc.token_losses(m, tok, TEXT)))

    # The default sweep, once per dtype (it is long); its k=4 score is also the EN->KO parity figure.
    ks = [0, 1, 2, 4, 8]
    t = time.perf_counter()
    s32 = sweep(m32, tok, "en-ko", ks, args.sweep_n)
    a = time.perf_counter() - t
    t = time.perf_counter()
    s16 = sweep(m16, tok, "en-ko", ks, args.sweep_n)
    b = time.perf_counter() - t
    rows.append(("default sweep (en-ko, 5 k)", a, b))
    print(f"{'default sweep (en-ko, ks 0,1,2,4,8)':38s} fp32 {a:8.1f} s   bf16 {b:8.1f} s   bf16/fp32 {b / a:5.2f}  (speed-up {a / b:4.2f}x)", flush=True)

    # LoRA step: why training stays float32 on the CPU.
    import copy

    a = med(lora_step(copy.deepcopy(m32), tok), 3)
    b = med(lora_step(copy.deepcopy(m16), tok), 3)
    print(f"{'LoRA step (r=16, attention, 8 x 40)':38s} fp32 {a:8.3f} s   bf16 base {b:8.3f} s   bf16/fp32 {b / a:5.2f}", flush=True)

    print("\nParity (bf16 minus fp32):")
    k32 = sweep(m32, tok, "ko-en", [4], args.sweep_n)[4]
    k16 = sweep(m16, tok, "ko-en", [4], args.sweep_n)[4]
    print(f"  chrF k=4 en-ko: fp32 {s32[4]:.2f}  bf16 {s16[4]:.2f}  diff {s16[4] - s32[4]:+.2f}   (all k: fp32 {s32}, bf16 {s16})")
    print(f"  chrF k=4 ko-en: fp32 {k32:.2f}  bf16 {k16:.2f}  diff {k16 - k32:+.2f}")
    r32, r16 = pc.token_losses(m32, tok, TEXT), pc.token_losses(m16, tok, TEXT)
    diffs = [abs(x["loss"] - y["loss"]) for x, y in zip(r32.tokens, r16.tokens)]
    print(f"  per-token loss: mean |diff| {statistics.mean(diffs):.4f} nats over {len(diffs)} tokens; "
          f"bits/char fp32 {r32.bits_per_char:.4f} bf16 {r16.bits_per_char:.4f}")
    if args.lora_steps:
        from modes.model.adapters import apply_adapter

        res = None
        for ev in fc.finetune(l32, fc.FinetuneConfig(steps=args.lora_steps), task.pairs_for("en-ko", "train"),
                              task.pairs_for("en-ko", "test")):
            res = ev
        test = task.pairs_for("en-ko", "test")
        queries = [task.fewshot_prompt("en-ko", p.source, 0)[1] for p in test]
        refs = [p.target for p in test]
        out = {}
        for name, m in (("fp32", m32), ("bf16", m16)):
            tuned = apply_adapter(m, res.adapter)
            out[name] = chrf(ic.generate_batch(tuned, tok, "", queries), refs)
            del tuned
        print(f"  default LoRA ({args.lora_steps} steps, trained in fp32) applied to the served model: "
              f"chrF fp32 {out['fp32']:.2f}  bf16 {out['bf16']:.2f}  diff {out['bf16'] - out['fp32']:+.2f} "
              f"(the fine-tune's own score, on its fp32 copy: {res.chrf_after})")


if __name__ == "__main__":
    main()
