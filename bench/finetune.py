"""Fine-tune benchmark on the built-in pairs: samples/s against plain PEFT + Trainer, chrF, wall time.

Throughput: both recipes train the same LoRA (same r, alpha, targets, lr, batch, data, max length)
for the same number of steps; the figure is batch / median step time (warm-up step excluded).
Ours computes logits only at target positions and pads each batch only to its own longest pair;
the baseline is the textbook recipe: Trainer on a PEFT model with full-sequence logits.
Then the app's default run end to end (chrF before/after on all held-out pairs, wall time), and the
best k-shot chrF on the same held-out pairs, which the fine-tune should beat.
With --dev: for each direction, chrF at k=0 and k=4 and after the default LoRA, on the built-in held-out
pairs and on the development set written unlike them (assets/data/en_ko_dev.jsonl: other topics, longer
sentences), which shows whether the adapter learns to translate or the built-in set's style.
Usage: python bench/finetune.py [--speed-steps 15] [--dev]
"""

from __future__ import annotations

import argparse
import copy
import dataclasses
import statistics
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from modes.data import translation as task
from modes.finetune import core as fc
from modes.metrics import chrf
from modes.model.adapters import apply_adapter
from modes.model.loader import ModelLoader
from modes.runs.events import Eval, Step

T = task.DEFAULT_TEMPLATE


def baseline_step_times(base, tok, cfg: fc.FinetuneConfig, steps: int) -> list[float]:
    from datasets import Dataset
    from peft import get_peft_model
    from transformers import DataCollatorForSeq2Seq, Trainer, TrainerCallback, TrainingArguments

    model = get_peft_model(copy.deepcopy(base), cfg.lora_config())
    rows = [fc.encode_pair(tok, T, cfg.direction, p, cfg.max_length) for p in task.pairs_for(cfg.direction, "train")]
    ds = Dataset.from_list([{"input_ids": i, "labels": lab, "attention_mask": [1] * len(i)} for i, lab in rows])
    times: list[float] = []

    class Clock(TrainerCallback):
        def on_step_begin(self, args, state, control, **kw):
            self.t = time.perf_counter()

        def on_step_end(self, args, state, control, **kw):
            times.append(time.perf_counter() - self.t)

    args = TrainingArguments(output_dir="/tmp/hml-bench-trainer", max_steps=steps, per_device_train_batch_size=cfg.batch_size,
                             learning_rate=cfg.learning_rate, logging_steps=1000, save_strategy="no", report_to=[],
                             seed=cfg.seed, use_cpu=True, dataloader_num_workers=0)
    Trainer(model=model, args=args, train_dataset=ds, callbacks=[Clock()],
            data_collator=DataCollatorForSeq2Seq(tok, padding=True, label_pad_token_id=-100)).train()
    return times


def ours_step_times(loader, cfg: fc.FinetuneConfig) -> list[float]:
    times, last, eval_at = [], 0.0, None
    test = task.pairs_for(cfg.direction, "test")[:4]
    for ev in fc.finetune(loader, cfg, task.pairs_for(cfg.direction, "train"), test, chrf_before=0.0, n_examples=0):
        if isinstance(ev, Eval):
            eval_at = ev.step
        elif isinstance(ev, Step):
            if eval_at != ev.step:  # a step without a held-out eval in its time
                times.append(ev.elapsed - last)
            last = ev.elapsed
    return times


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--speed-steps", type=int, default=15)
    ap.add_argument("--dev", action="store_true", help="only the both-directions table on the built-in held-out and dev sets")
    ap.add_argument("--set", action="append", default=[], metavar="FIELD=VALUE",
                    help="with --dev: a recipe to try instead of the defaults (e.g. --set target=all-linear --set steps=100)")
    ap.add_argument("--directions", default="en-ko,ko-en")
    ap.add_argument("--more", action="store_true", help="with --dev: train on the built-in pairs plus assets/data/en_ko_more.jsonl")
    args = ap.parse_args()
    if args.dev:
        return dev_table(dict(kv.split("=", 1) for kv in args.set), args.directions.split(","), args.more)
    loader = ModelLoader()
    base, tok = loader.get()
    d = fc.FinetuneConfig()
    print(f"threads {torch.get_num_threads()}, defaults: steps {d.steps}, r {d.r}, alpha {d.alpha}, {d.target}, "
          f"lr {d.learning_rate}, batch {d.batch_size}, max_length {d.max_length}")

    n = args.speed_steps
    speed_cfg = fc.FinetuneConfig(steps=n, eval_every=10**3)
    t_ours = ours_step_times(loader, speed_cfg)[1:]
    t_base = baseline_step_times(base, tok, speed_cfg, n)[1:]
    sps_ours, sps_base = d.batch_size / statistics.median(t_ours), d.batch_size / statistics.median(t_base)
    print(f"samples/s (median step over {n - 1} steps): ours {sps_ours:.2f}, PEFT + Trainer {sps_base:.2f}, "
          f"ratio {sps_ours / sps_base:.2f}x (target >= 1.5x)")

    t = time.perf_counter()
    res = list(fc.finetune(loader, d, task.pairs_for(d.direction, "train"), task.pairs_for(d.direction, "test")))[-1]
    wall = time.perf_counter() - t
    print(f"default run: {res.steps} steps, training {res.seconds:.0f} s, wall {wall:.0f} s (with before/after scoring)")
    print(f"chrF on {len(task.pairs_for(d.direction, 'test'))} held-out pairs: before {res.chrf_before}, after {res.chrf_after}")
    print(f"eval loss: before {res.eval_loss_before:.3f}, after {res.eval_loss_after:.3f}; "
          f"trainable {res.trainable_params:,} ({100 * res.trainable_fraction:.2f}%); base unchanged: {res.base_weights_unchanged}")

    from modes.incontext import core as ic

    test = task.pairs_for(d.direction, "test")
    pool = task.pairs_for(d.direction, "train")
    icl = {}
    for k in (0, 1, 2, 4, 8):
        prefix, _ = task.split_prompt(T, d.direction, task.select_examples(pool, k, "random", seed=0), test[0].source)
        hyps = ic.generate_batch(base, tok, prefix, [task.render_prompt(T, d.direction, p.source) for p in test])
        icl[k] = chrf(hyps, [p.target for p in test])
    best = max(icl, key=icl.get)
    print(f"in-context chrF on the same pairs: {icl}; best k={best}: {icl[best]}")
    print(f"fine-tuned minus best in-context: {res.chrf_after - icl[best]:+.2f} chrF (target > 0)")


def dev_table(recipe: dict | None = None, directions=("en-ko", "ko-en"), more: bool = False) -> None:
    """chrF at k=0, k=4 and after the default LoRA (or `recipe`: FinetuneConfig fields as strings), per
    direction, on the built-in held-out and dev sets."""
    from modes.incontext import core as ic

    loader = ModelLoader()
    base, tok = loader.get()
    print(f"model dtype {loader.dtype_name}, threads {torch.get_num_threads()}")
    rows = []
    types = {f.name: f.type for f in dataclasses.fields(fc.FinetuneConfig)}
    recipe = {k: (int(v) if types[k] in ("int", int) else float(v) if types[k] in ("float", float) else v)
              for k, v in (recipe or {}).items()}
    print(f"recipe: {recipe or 'the defaults'}; training pairs: built-in{' + more' if more else ''}")
    for direction in directions:
        d = fc.FinetuneConfig(direction=direction, **recipe)
        sets = {"built-in held-out": task.pairs_for(direction, "test"), "dev (other topics)": task.dev_pairs(direction)}
        pool = task.pairs_for(direction, "train")  # the in-context examples come from here either way
        train = pool + task.more_pairs(direction) if more else pool
        t = time.perf_counter()
        res = list(fc.finetune(loader, d, train, sets["built-in held-out"]))[-1]
        wall = time.perf_counter() - t
        tuned = apply_adapter(base, res.adapter)
        for name, test in sets.items():
            refs, row = [p.target for p in test], {"direction": direction, "set": name, "n": len(test)}
            for k in (0, 4):
                prefix, _ = task.split_prompt(T, direction, task.select_examples(pool, k, "random", seed=0), test[0].source)
                row[f"k={k}"] = chrf(ic.generate_batch(base, tok, prefix, [task.render_prompt(T, direction, p.source) for p in test]), refs)
            row["LoRA"] = chrf(ic.generate_batch(tuned, tok, "", [task.render_prompt(T, direction, p.source) for p in test]), refs)
            rows.append(row)
            print(row, flush=True)
        del tuned
        print(f"{direction}: default LoRA {d.steps} steps, {wall:.0f} s end to end (training {res.seconds:.0f} s)", flush=True)
    print("\n| direction | set | n | k=0 | k=4 | default LoRA |\n|---|---|---|---|---|---|")
    for r in rows:
        print(f"| {r['direction']} | {r['set']} | {r['n']} | {r['k=0']:.1f} | {r['k=4']:.1f} | {r['LoRA']:.1f} |")


if __name__ == "__main__":
    main()
