"""Memory of every learner's runs: 20 owners x 20 runs each, on top of an idle app.

Target: RSS stays under 1 GB above the idle app. The runs are built as the tabs build them, with
their real result classes: a pre-training run of the default 1,100 steps (its whole curve, samples,
summary and result), a default fine-tune (60 steps, its held-out curve, 69 examples, the off-task
table, and an adapter of the default size on disk), and sweeps, in turn. They go into a History in
this process; `--with-model` first loads the embedded model, so "idle" is the idle app's RSS.

    python bench/history.py [--owners 20] [--runs 20] [--with-model]

Prints the idle RSS, the growth for a baseline history holding only the summaries (no curves, no
results, no adapters), the growth for the full runs, their ratio, and the disk the adapters take.
"""

from __future__ import annotations

import argparse
import dataclasses
import os
import random
import resource
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from modes.runs.history import History  # noqa: E402


def rss_mb() -> float:
    return int(open("/proc/self/statm").read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**20


def pretrain_run(h: History, owner: str, i: int, full: bool) -> None:
    from modes.pretrain.core import PretrainResult

    r = h.new_run(owner, "pretrain", {"corpus": "shakespeare", "size": "baby", "steps": 1100, "seed": i})
    rng = random.Random(i)
    if full:
        for step in range(1, 1101):
            r.curve.append({"x": step, "y": 4.4 - step / 400 + rng.random() * 0.05, "series": "train"})
            if step % 55 == 0:
                r.curve.append({"x": step, "y": 4.3 - step / 420, "series": "val"})
            if step % 183 == 0:
                r.samples.insert(0, f"— step {step} —\n" + "".join(rng.choice("abcdefgh ROMEO:\n") for _ in range(160)))
    res = PretrainResult(steps=1100, params=713_000, train_loss=1.1, val_loss=1.12, val_bpc=1.588, pretrained_val_bpc=0.9,
                         tokens_per_s=20_000.0, seconds=52.0, samples=[{"step": s, "text": "x" * 160} for s in range(6)])
    summary = {**dataclasses.asdict(res), "replay": None, "corpus": "shakespeare", "n_chars": 5_000_000}
    summary.pop("curve")
    h.update(r, status="done", summary=summary, result=res if full else None, progress=None)


def finetune_run(h: History, owner: str, i: int, full: bool, adapter_bytes: int) -> None:
    from modes.finetune.core import FtResult
    from modes.model.adapters import Adapter

    r = h.new_run(owner, "finetune", {"steps": 60, "r": 16, "seed": i, "direction": "en-ko"})
    if full:
        for step in range(1, 61):
            r.curve.append({"x": step, "y": 2.0 - step / 60, "series": "train"})
            if step % 20 == 0:
                r.curve.append({"x": step, "y": 2.1 - step / 70, "series": "held-out eval"})
    ex = [{"source": "Where can I buy a ticket for the museum?" * 1, "base": "박물관 표는 어디에서 살 수 있어요?",
           "finetuned": "박물관 표는 어디서 사요?", "reference": "박물관 표는 어디에서 살 수 있어요?"} for _ in range(69)]
    off = {"reverse_direction": "ko-en", "general_bpc_before": 1.0, "general_bpc_after": 1.01, "general_bpc_texts": {},
           "reverse_chrf_before": 30.0, "reverse_chrf_after": 29.0, "reverse_chrf_base_k4": 35.0,
           "continuations": [{"prompt": "p", "base": "b" * 40, "adapter": "a" * 40}] * 4, "off_task_seconds": 10.0}
    res = FtResult(steps=60, seconds=120.0, train_loss_first=2.0, train_loss_last=1.0, eval_loss_before=2.1, eval_loss_after=1.3,
                   chrf_before=20.0, chrf_after=30.0, trainable_params=1_474_560, trainable_fraction=0.0055,
                   base_weights_unchanged=True, base_hash_before="0" * 32, base_hash_after="0" * 32,
                   adapter_params_changed=1_474_560, samples_per_s=9.0, examples=ex, off_task=off,
                   adapter=Adapter(b"", "en-ko", "English: {source}\nKorean: {target}", 1_474_560, 268_000_000))
    summary = {k: v for k, v in dataclasses.asdict(res).items() if k not in ("curve", "adapter", "off_task_base")}
    h.update(r, status="done", summary=summary, result=res if full else None)
    if full:
        h.save_adapter(r, os.urandom(adapter_bytes), {"direction": "en-ko", "template": "t", "trainable_params": 1,
                                                      "total_params": 2, "source": "trained"})


def sweep_run(h: History, owner: str, i: int) -> None:
    r = h.new_run(owner, "incontext", {"direction": "en-ko", "ks": "0,1,2,4,8", "n": 69, "seed": i}, axes=("k", "chrF"))
    r.curve = [{"x": k, "y": 20.0 + k, "series": "in-context (base model)"} for k in (0, 1, 2, 4, 8)]
    h.update(r, status="done", summary={"chrf": {str(k): 20.0 + k for k in (0, 1, 2, 4, 8)}, "best_k": 8, "n": 69,
                                        "seconds": 30.0, "direction": "en-ko", "lora_chrf": None, "reused": []})


def fill(h: History, owners: int, runs: int, full: bool, adapter_bytes: int) -> None:
    """Each owner makes `runs` runs: pre-training, fine-tune and sweep in turn."""
    for _ in range(owners):
        owner = h.issue()
        for i in range(runs):
            if i % 3 == 0:
                pretrain_run(h, owner, i, full)
            elif i % 3 == 1:
                finetune_run(h, owner, i, full, adapter_bytes)
            else:
                sweep_run(h, owner, i)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--owners", type=int, default=20)
    ap.add_argument("--runs", type=int, default=20)
    ap.add_argument("--adapter-mb", type=float, default=5.9, help="default LoRA adapter (r=16, attention) zip size")
    ap.add_argument("--with-model", action="store_true", help="load the embedded model first (the idle app's RSS)")
    args = ap.parse_args()
    if args.with_model:
        from modes.model.loader import ModelLoader

        ModelLoader().get()
    import gc

    import modes.finetune.core
    import modes.pretrain.core  # noqa: F401 - imported before the idle reading, as in the app

    gc.collect()
    idle = rss_mb()
    base = History()
    t = time.perf_counter()
    fill(base, args.owners, args.runs, full=False, adapter_bytes=0)
    after_base = rss_mb()
    full = History()
    fill(full, args.owners, args.runs, full=True, adapter_bytes=int(args.adapter_mb * 2**20))
    gc.collect()
    after = rss_mb()
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    disk = sum(f.stat().st_size for f in full.folder.rglob("*.zip")) / 2**20
    kept = sum(len(full.runs(o)) for o in list(full._owners))
    dropped = sum(len(v) for v in full.dropped.values())
    print(f"owners {args.owners} x runs {args.runs}: {kept} kept, {dropped} dropped by the caps ({time.perf_counter() - t:.1f} s)")
    print(f"idle RSS {idle:.0f} MB; summaries only (baseline) +{after_base - idle:.1f} MB; "
          f"full runs +{after - after_base:.1f} MB; peak RSS {peak:.0f} MB")
    print(f"RSS above idle: {after - idle:.1f} MB (target < 1024 MB); ratio full/baseline "
          f"{(after - after_base) / max(0.1, after_base - idle):.1f}x; adapters on disk {disk:.0f} MB")


if __name__ == "__main__":
    main()
