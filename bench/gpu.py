"""GPU benchmark (a dedicated CUDA GPU, threads mode): pre-training speed against a plain GPT of the same
shape, the default LoRA's seconds, and 16 concurrent translations' p95 against one alone.

Like bench/gpu_check.py it needs no hub: a Gemma 3 270M of the real shape with random weights (from the
cached config.json) and the real tokenizer, so speed is real and quality means nothing. Prints the CPU/GPU
it ran on, each figure with its baseline from the same run (medians), and writes a JSON summary.
Usage: python bench/gpu.py --assets DIR [--out FILE]   (DIR as for bench/gpu_check.py)
       python bench/gpu.py --assets DIR --allow-cpu --layers 2   (to try the script where there is no GPU)
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import threading
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.gpu_check import full_size_loader, pretrain_tokens_per_s
from bench.pretrain import load_corpus
from modes.data import translation as task
from modes.finetune import core as fc
from modes.pretrain import core as pc
from modes.serving.engine import Engine


def p95(xs: list[float]) -> float:
    xs = sorted(xs)
    return xs[min(len(xs) - 1, round(0.95 * (len(xs) - 1)))]


def translations(engine: Engine, model, tok, queries: list[str], max_new: int) -> list[float]:
    """Each query streamed by its own thread at once (16 learners pressing Translate); seconds each."""
    secs = [0.0] * len(queries)

    def one(i: int) -> None:
        t = time.perf_counter()
        for ev in engine.stream(model=model, tok=tok, lane="base", prefix="", query=queries[i], max_new=max_new,
                                session=f"learner-{i}"):
            if ev.done:
                break
        secs[i] = time.perf_counter() - t

    threads = [threading.Thread(target=one, args=(i,)) for i in range(len(queries))]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return secs


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--assets", required=True)
    ap.add_argument("--out", default="gpu_bench.json")
    ap.add_argument("--layers", type=int)
    ap.add_argument("--allow-cpu", action="store_true", help="run without CUDA (to try the script; its figures are not GPU figures)")
    args = ap.parse_args()
    if not torch.cuda.is_available() and not args.allow_cpu:
        print("bench/gpu.py needs CUDA: no GPU here (pass --allow-cpu to try the script on a CPU)")
        sys.exit(0)
    device = "cuda" if torch.cuda.is_available() else "cpu"
    out = {"device": torch.cuda.get_device_name(0) if device == "cuda" else "cpu (script check only)", "torch": torch.__version__}
    print(out, flush=True)
    loader = full_size_loader(Path(args.assets), device, args.layers)
    model, tok = loader.get()
    data = load_corpus(args.assets)

    # Pre-training: our loop against nanoGPT's GPT of the same shape (baby preset), one after the other.
    ours, gpt = pretrain_tokens_per_s(loader, data, pc.CharVocab(data.train + data.val), 300, device)
    out.update(pretrain_tokens_per_s=round(ours), gpt_tokens_per_s=round(gpt), pretrain_vs_gpt=round(ours / gpt, 2))
    print(f"pre-training: {ours:,.0f} tokens/s, plain GPT {gpt:,.0f} tokens/s ({ours / gpt:.2f}x)", flush=True)

    # The default LoRA (the button's settings) on the built-in pairs, scoring included.
    cfg = fc.FinetuneConfig()
    train, test = task.pairs_for(cfg.direction, "train"), task.pairs_for(cfg.direction, "test")
    t = time.perf_counter()
    for ev in fc.finetune(loader, cfg, train, test):
        res = ev
    out.update(lora_default_steps=cfg.steps, lora_seconds=round(time.perf_counter() - t, 2), lora_train_seconds=res.seconds)
    print(f"default LoRA ({cfg.steps} steps): {out['lora_seconds']} s end to end, {res.seconds:.1f} s training", flush=True)

    # 16 translations at once through the one engine, against one alone (median of 5).
    queries = [task.render_prompt(task.DEFAULT_TEMPLATE, "en-ko", p.source) for p in test[:16]]
    eng = Engine()
    translations(eng, model, tok, queries[:1], 24)  # warm-up
    alone = statistics.median(translations(eng, model, tok, queries[:1], 24)[0] for _ in range(5))
    together = translations(eng, model, tok, queries, 24)
    out.update(translate_alone_s=round(alone, 3), translate_16_p95_s=round(p95(together), 3),
               translate_16_p95_vs_alone=round(p95(together) / alone, 2), engine_max_batch=eng.stats["max_batch"])
    print(f"translation: alone {alone:.3f} s; 16 at once p95 {p95(together):.3f} s ({p95(together) / alone:.2f}x), "
          f"largest batch {eng.stats['max_batch']}", flush=True)
    Path(args.out).write_text(json.dumps(out, indent=2))
    print(json.dumps(out, indent=2))


if __name__ == "__main__":
    main()
