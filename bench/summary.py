"""Dialogue-summary fine-tune benchmark: the default button with task="dialogue-summary", per language.

Prints, from one run per language on the embedded model: chrF of the summaries against the references
on the held-out dialogues before and after (the same greedy decoding), the wall time, one held-out
example (base and fine-tuned, as the model wrote them), and the price off the task: translation chrF
in both directions and general text's bits/char, adapter off against on. The CPU it ran on comes first.
Usage: python bench/summary.py [--langs en,ko] [--steps N]
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.store import cpu
from modes.data import corpus, dialogues
from modes.finetune import core as fc
from modes.model.loader import ModelLoader


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--langs", default="en,ko")
    ap.add_argument("--steps", type=int, default=fc.FinetuneConfig.steps)
    args = ap.parse_args()
    print(f"CPU: {cpu()}, {torch.get_num_threads()} threads, torch {torch.__version__}")
    loader = ModelLoader()
    loader.get()
    val = corpus.shakespeare().val
    for lang in args.langs.split(","):
        cfg = fc.FinetuneConfig(task="dialogue-summary", summary_lang=lang, steps=args.steps)
        train, test = dialogues.pairs_for(lang, "train"), dialogues.pairs_for(lang, "test")
        t = time.perf_counter()
        res = list(fc.finetune(loader, cfg, train, test, shakespeare_val=val))[-1]
        wall = time.perf_counter() - t
        print(f"\n[{lang}] {len(train)} training dialogues, {res.steps} steps (r {cfg.r}, {cfg.target}, lr {cfg.learning_rate}, "
              f"batch {cfg.batch_size}): training {res.seconds:.0f} s, wall {wall:.0f} s with scoring and the off-task price")
        print(f"[{lang}] summary chrF on {len(test)} held-out dialogues: base {res.chrf_before} -> fine-tuned {res.chrf_after} "
              f"({res.chrf_after - res.chrf_before:+.1f}); eval loss {res.eval_loss_before:.3f} -> {res.eval_loss_after:.3f}")
        ex = res.examples[0]
        print(f"[{lang}] example (held-out): {ex['source']!r}\n   reference: {ex['reference']!r}\n   base: {ex['base']!r}\n"
              f"   fine-tuned: {ex['finetuned']!r}")
        off = res.off_task
        for d, c in off["translation_chrf"].items():
            print(f"[{lang}] off-task: {d} translation chrF (k=0) {c['before']} -> {c['after']} ({c['after'] - c['before']:+.2f})")
        print(f"[{lang}] off-task: general text {off['general_bpc_before']:.3f} -> {off['general_bpc_after']:.3f} bits/char "
              f"({off['off_task_seconds']:.0f} s to measure)")


if __name__ == "__main__":
    main()
