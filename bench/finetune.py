"""Fine-tune benchmark on the built-in pairs: samples/s against plain PEFT + Trainer, chrF, wall time.

Throughput: both recipes train the same LoRA (same r, alpha, targets, lr, batch, data, max length)
for the same number of steps; the figure is batch / median step time (warm-up step excluded).
Ours computes logits only at target positions and pads each batch only to its own longest pair;
the baseline is the textbook recipe: Trainer on a PEFT model with full-sequence logits.
Then the app's default run end to end (training, chrF before/after on the held-out pairs, the off-task price), for
the first learner and once the base model's side is known, beside the same recipe done the textbook way (PEFT +
Trainer, then `generate` for the before/after and reverse-direction chrF): the ratio is the figure that counts.
Last, the best k-shot chrF on the same held-out pairs, which the fine-tune should beat.
With --dev: the table of recipes tried. For each recipe and direction, the button's run end to end as the app
makes it, and chrF at k=0 and k=4 and after the LoRA, on the built-in held-out pairs and on the development set
written unlike them (assets/data/en_ko_dev.jsonl: other topics, longer sentences), which shows whether the
adapter learns to translate or the built-in set's style.
Usage: python bench/finetune.py [--speed-steps 15] [--directions ko-en] | --dev [--try FIELD=VALUE,...]...
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
from modes.metrics import chrf, chrf_lead
from modes.model.adapters import serving_model
from modes.model.loader import ModelLoader
from modes.runs.events import Eval, Step
from modes.serving.precision import cpu_line

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


def plain_end_to_end(base, tok, cfg: fc.FinetuneConfig) -> tuple[float, float, float]:
    """The same recipe the textbook way, end to end: PEFT + Trainer (float32, full-sequence logits, held-out eval
    loss at the same cadence) on the same pairs, then chrF before and after with `generate` (greedy, batches of 16,
    left-padded, stopping at the newline) on the held-out pairs in the run's direction and the reverse one, the
    work the app's button does (its bits/char and continuations are left out, which favours the baseline).
    Returns (seconds, chrF after, training seconds)."""
    from datasets import Dataset
    from peft import get_peft_model
    from transformers import DataCollatorForSeq2Seq, Trainer, TrainingArguments

    t0 = time.perf_counter()
    model = get_peft_model(copy.deepcopy(base).float(), cfg.lora_config())
    enc = lambda pairs: Dataset.from_list([{"input_ids": i, "labels": lab, "attention_mask": [1] * len(i)} for i, lab in
                                           (fc.encode_pair(tok, T, cfg.direction, p, cfg.max_length) for p in pairs)])
    args = TrainingArguments(output_dir="/tmp/hml-bench-trainer", max_steps=cfg.steps, per_device_train_batch_size=cfg.batch_size,
                             per_device_eval_batch_size=16, learning_rate=cfg.learning_rate, warmup_steps=cfg.warmup,
                             lr_scheduler_type="linear", eval_strategy="steps", eval_steps=max(1, min(cfg.eval_every, cfg.steps // 3 or 1)),
                             logging_steps=1000, save_strategy="no", report_to=[], seed=cfg.seed, use_cpu=True, dataloader_num_workers=0)
    t1 = time.perf_counter()
    Trainer(model=model, args=args, train_dataset=enc(task.pairs_for(cfg.direction, "train")),
            eval_dataset=enc(task.pairs_for(cfg.direction, "test")),
            data_collator=DataCollatorForSeq2Seq(tok, padding=True, label_pad_token_id=-100)).train()
    train_s = time.perf_counter() - t1
    merged = model.merge_and_unload().eval()
    after = None
    for direction in (cfg.direction, "ko-en" if cfg.direction == "en-ko" else "en-ko"):
        test = task.pairs_for(direction, "test")
        prompts = [task.render_prompt(T, direction, p.source) for p in test]
        for m in (base, merged):
            hyps = plain_generate(m, tok, prompts)
            if m is merged and direction == cfg.direction:
                after = chrf(hyps, [p.target for p in test])
    return time.perf_counter() - t0, after, train_s


def plain_generate(model, tok, prompts: list[str], batch: int = 16) -> list[str]:
    """Greedy `generate`, left-padded batches, each row cut at its first newline (as the app's rows stop there)."""
    side, tok.padding_side = tok.padding_side, "left"
    out = []
    try:
        with torch.no_grad():
            for s in range(0, len(prompts), batch):
                x = tok(prompts[s : s + batch], return_tensors="pt", padding=True)
                y = model.generate(**x, max_new_tokens=40, do_sample=False, stop_strings=["\n"], tokenizer=tok,
                                   pad_token_id=tok.pad_token_id)
                out += [t.split("\n")[0].strip() for t in tok.batch_decode(y[:, x["input_ids"].shape[1]:], skip_special_tokens=True)]
    finally:
        tok.padding_side = side
    return out


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
    ap.add_argument("--speed-steps", type=int, default=15, help="steps of the samples/s comparison (0 skips it)")
    ap.add_argument("--dev", action="store_true", help="only the both-directions table on the built-in held-out and dev sets")
    ap.add_argument("--try", dest="recipes", action="append", default=None, metavar="FIELD=VALUE,...",
                    help="with --dev: a recipe to try over the defaults, repeatable ('' is the defaults; "
                         "e.g. --try '' --try dropout=0,steps=90 --try target=all-linear,r=8,alpha=16)")
    ap.add_argument("--directions", default="en-ko,ko-en")
    args = ap.parse_args()
    if args.dev:
        return dev_table([parse_recipe(r) for r in (args.recipes or [""])], args.directions.split(","))
    loader = ModelLoader()
    base, tok = loader.get()
    d = fc.FinetuneConfig(direction=args.directions.split(",")[0])  # the end-to-end run's direction: the first given
    print(f"{cpu_line()}; fine-tune base {loader.train_dtype} ({loader.train_dtype_reason})")
    print(f"threads {torch.get_num_threads()}, defaults: steps {d.steps}, r {d.r}, alpha {d.alpha}, {d.target}, "
          f"lr {d.learning_rate}, batch {d.batch_size}, max_length {d.max_length}")

    n = args.speed_steps
    if n:
        speed_table(loader, base, tok, d, n)
    end_to_end(loader, base, tok, d)


def speed_table(loader, base, tok, d: fc.FinetuneConfig, n: int) -> None:
    speed_cfg = fc.FinetuneConfig(steps=n, eval_every=10**3)
    t_ours = ours_step_times(loader, speed_cfg)[1:]
    t_base = baseline_step_times(base, tok, speed_cfg, n)[1:]
    sps_ours, sps_base = d.batch_size / statistics.median(t_ours), d.batch_size / statistics.median(t_base)
    print(f"samples/s (median step over {n - 1} steps): ours {sps_ours:.2f}, PEFT + Trainer {sps_base:.2f}, "
          f"ratio {sps_ours / sps_base:.2f}x (target >= 1.5x)")


def end_to_end(loader, base, tok, d: fc.FinetuneConfig) -> None:
    from modes.finetune.tab import shakespeare_val
    from modes.serving.engine import Engine, bulk_generator

    gen, sv = bulk_generator(Engine(), "bench"), shakespeare_val()
    t = time.perf_counter()
    res = list(fc.finetune(loader, d, task.pairs_for(d.direction, "train"), task.pairs_for(d.direction, "test"),
                           shakespeare_val=sv, generate=gen))[-1]
    wall = time.perf_counter() - t
    t = time.perf_counter()
    again = list(fc.finetune(loader, d, task.pairs_for(d.direction, "train"), task.pairs_for(d.direction, "test"), shakespeare_val=sv,
                             generate=gen, chrf_before=res.chrf_before, off_task_base=res.off_task_base))[-1]
    warm = time.perf_counter() - t
    plain, plain_chrf, plain_train = plain_end_to_end(base, tok, d)
    print(f"default run ({d.direction}), end to end with before/after scoring and the off-task price: {wall:.0f} s for the "
          f"first learner (training {res.seconds:.0f} s), {warm:.0f} s once the base model's side is known (training "
          f"{again.seconds:.0f} s); plain PEFT + Trainer + generate, same recipe: {plain:.0f} s (training {plain_train:.0f} s, "
          f"chrF after {plain_chrf}); ratio {plain / wall:.2f}x first, {plain / warm:.2f}x after")
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


def parse_recipe(text: str) -> dict:
    """'dropout=0,steps=90' -> {'dropout': 0.0, 'steps': 90}, typed by FinetuneConfig's fields ('' is the defaults)."""
    types = {f.name: f.type for f in dataclasses.fields(fc.FinetuneConfig)}
    out = {}
    for kv in filter(None, text.split(",")):
        k, v = kv.split("=", 1)
        t = types[k.strip()]
        out[k.strip()] = int(v) if t in ("int", int) else float(v) if t in ("float", float) else v.strip()
    return out


def dev_table(recipes: list[dict], directions=("en-ko", "ko-en")) -> None:
    """For each recipe (FinetuneConfig fields over the defaults) and direction: the button's run as the app makes
    it (the built-in training pairs, scoring and the off-task price through one shared engine, the base model's
    side reused after the first run as the app reuses it), its seconds end to end, and chrF after the LoRA on the
    built-in held-out pairs and on the dev set; k=0 and k=4 on both sets once, for scale."""
    from modes.finetune.tab import shakespeare_val
    from modes.incontext import core as ic
    from modes.serving.engine import Engine, bulk_generator

    loader = ModelLoader()
    base, tok = loader.get()
    engine = Engine()
    print(f"{cpu_line()}; served {loader.dtype_name} ({loader.dtype_reason}); fine-tune base {loader.train_dtype} "
          f"({loader.train_dtype_reason}); threads {torch.get_num_threads()}")
    sv, base_side, rows, icl, k4_hyps = shakespeare_val(), {}, [], {}, {}
    for direction in directions:
        pool = task.pairs_for(direction, "train")  # the fine-tune's pairs and the in-context pool
        sets = {"held-out": task.pairs_for(direction, "test"), "held-out 219": task.heldout_pairs(direction),
                "dev": task.dev_pairs(direction), "dev2": task.dev2_pairs(direction)}
        for name, test in sets.items():
            refs = [p.target for p in test]
            for k in (0, 4):
                prefix, _ = task.split_prompt(T, direction, task.select_examples(pool, k, "random", seed=0), test[0].source)
                hyps = ic.generate_batch(base, tok, prefix, [task.render_prompt(T, direction, p.source) for p in test], engine=engine)
                icl[direction, name, k] = chrf(hyps, refs)
                k4_hyps[direction, name] = hyps
        print(f"{direction}: {len(pool)} training pairs; k=0/k=4 " + ", ".join(
            f"{n} {icl[direction, n, 0]:.1f}/{icl[direction, n, 4]:.1f}" for n in sets), flush=True)
    for recipe in recipes:
        for direction in directions:
            d = fc.FinetuneConfig(direction=direction, **recipe)
            d.eval_every = max(1, min(d.eval_every, d.steps // 3 or 1))  # as the tab sets it
            cached = base_side.get(direction, {})
            t = time.perf_counter()
            res = list(fc.finetune(loader, d, task.pairs_for(direction, "train"), task.pairs_for(direction, "test"),
                                   chrf_before=cached.get("chrf"), off_task_base=cached.get("off_task"), shakespeare_val=sv,
                                   k_side=cached.get("k_side"), generate=bulk_generator(engine, "bench")))[-1]
            wall = time.perf_counter() - t
            base_side.setdefault(direction, {"chrf": res.chrf_before, "off_task": res.off_task_base, "k_side": res.k_side})
            tuned = serving_model(base, res.adapter)
            row = {"recipe": ", ".join(f"{k}={v}" for k, v in recipe.items()) or "defaults", "direction": direction,
                   "held-out": res.chrf_after, "train_s": res.seconds, "wall_s": wall, "base side": "reused" if cached else "computed"}
            if res.lead:
                row["lead held-out"] = res.lead  # the app's own measure, on its 69 held-out pairs
            for name, test in (("held-out 219", task.heldout_pairs(direction)), ("dev", task.dev_pairs(direction)),
                               ("dev2", task.dev2_pairs(direction))):
                hyps = ic.generate_batch(tuned, tok, "", [task.render_prompt(T, direction, p.source) for p in test], engine=engine)
                row[name] = chrf(hyps, [p.target for p in test])
                # the lead over k=4 on these sentences, with its 95% paired-bootstrap interval
                row["lead " + name] = chrf_lead(hyps, k4_hyps[direction, name], [p.target for p in test])
            del tuned
            rows.append(row)
            print(row, flush=True)
    names = ("held-out", "held-out 219", "dev", "dev2")
    print("\nchrF as k=0 / k=4 / LoRA, then the LoRA's lead over k=4 [95% bootstrap interval]; held-out is the app's 69 test")
    print("pairs, held-out 219 adds the 150 extra ones; dev: other topics, longer sentences; dev2: plain written and casual Korean")
    print("| recipe | direction | " + " | ".join(names) + " | training s | end to end s |")
    print("|---|---|" + "---|" * len(names) + "---|---|")
    lead = lambda r, n: "" if "lead " + n not in r else " {lead:+.1f} [{low:+.1f}, {high:+.1f}]".format(**r["lead " + n])
    for r in rows:
        dr = r["direction"]
        cells = " | ".join(f"{icl[dr, n, 0]:.1f} / {icl[dr, n, 4]:.1f} / **{r[n]:.1f}**{lead(r, n)}" for n in names)
        print(f"| {r['recipe']} | {dr} | {cells} | {r['train_s']:.0f} | "
              f"{r['wall_s']:.0f}{' (base side computed)' if r['base side'] == 'computed' else ''} |")


if __name__ == "__main__":
    main()
