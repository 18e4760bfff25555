"""The fine-tune recipes tried, on the two development sets: chrF at k=0 and k=4 (the base model) and after each
recipe's LoRA, the LoRA's lead over k=4 with its 95% paired-bootstrap interval, and the training seconds.

Lighter than `bench/finetune.py --dev` (which runs the button's whole run, scoring and off-task price included, and
scores the held-out sets too): each recipe here is the training loop alone (modes/finetune/core.py: `_train`, on the
built-in training pairs, as the button trains), then greedy decoding of the dev sets through the app's engine, on
the merged adapter model /translate serves. dev: 118 pairs of other topics and longer sentences; dev2: 64 pairs in
plain written (-다) and casual (반말) Korean, the registers public corpora use and the built-in pairs mostly do not.
Rows are written to a JSON-lines file as they finish (with every answer), so a long run can be read while it goes.
Usage: python bench/recipes.py [--try FIELD=VALUE,...]... [--directions en-ko,ko-en] [--out recipes.jsonl]
"""

from __future__ import annotations

import argparse
import json
import random
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.finetune import parse_recipe
from modes.data import translation as task
from modes.data.tasks import prompting
from modes.finetune import core as fc
from modes.finetune.offtask import drain
from modes.metrics import chrf, chrf_lead
from modes.model.adapters import Adapter, adapter_zip, serving_model
from modes.model.loader import ModelLoader
from modes.serving import engine as engine_mod
from modes.serving.precision import cpu_line

T = task.DEFAULT_TEMPLATE
SETS = {"dev": task.dev_pairs, "dev2": task.dev2_pairs}
ROWS = 48  # rows per decode step here (the app's bulk jobs take 16): the same greedy answers, fewer steps


def train(loader, cfg: fc.FinetuneConfig) -> tuple:
    """The button's training loop on the built-in pairs: (the LoRA as an Adapter, seconds, held-out eval losses)."""
    from peft import get_peft_model

    _, tok = loader.get()
    torch.manual_seed(cfg.seed)
    model = get_peft_model(loader.training_copy(), cfg.lora_config())
    pr = prompting("translation", cfg.direction, "en")
    examples = [fc.encode_example(tok, pr, p, cfg.max_length) for p in task.pairs_for(cfg.direction, "train")]
    test = [fc.encode_example(tok, pr, p, cfg.max_length) for p in task.pairs_for(cfg.direction, "test")]
    t = time.perf_counter()
    run = drain(fc._train(model, cfg, examples, test, tok.pad_token_id, random.Random(cfg.seed), lambda: False, None))
    seconds = time.perf_counter() - t
    model.eval()
    evals = [round(c["loss"], 3) for c in run.curve if c["split"] != "train"]
    return Adapter(adapter_zip(model), pr.label, T, 0, 0, "trained"), seconds, evals


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--try", dest="recipes", action="append", default=None, metavar="FIELD=VALUE,...",
                    help="a recipe over the defaults, repeatable ('' is the defaults)")
    ap.add_argument("--directions", default="en-ko,ko-en")
    ap.add_argument("--out", default="recipes.jsonl")
    args = ap.parse_args()
    recipes = [parse_recipe(r) for r in (args.recipes or [""])]
    engine_mod.BULK_ROWS = ROWS
    loader = ModelLoader()
    base, tok = loader.get()
    engine = engine_mod.Engine(max_rows=ROWS)
    print(f"{cpu_line()}; served {loader.dtype_name}; fine-tune base {loader.train_dtype}; threads {torch.get_num_threads()}", flush=True)
    out = open(args.out, "a", encoding="utf-8")
    decode = lambda model, prefix, d, pairs: engine.generate(model, tok, prefix, [task.render_prompt(T, d, p.source) for p in pairs],
                                                              lane=("bench", id(model), prefix), session="bench", max_new=64)
    k4, table = {}, []
    for d in args.directions.split(","):
        pool = task.pairs_for(d, "train")
        for name, fn in SETS.items():
            pairs = fn(d)
            for k in (0, 4):
                prefix, _ = task.split_prompt(T, d, task.select_examples(pool, k, "random", seed=0), pairs[0].source)
                hyps = decode(base, prefix, d, pairs)
                k4[d, name, k] = (chrf(hyps, [p.target for p in pairs]), hyps)
    for recipe in recipes:
        for d in args.directions.split(","):
            cfg = fc.FinetuneConfig(direction=d, **recipe)
            cfg.eval_every = max(1, min(cfg.eval_every, cfg.steps // 3 or 1))  # as the tab sets it
            adapter, seconds, evals = train(loader, cfg)
            tuned = serving_model(base, adapter)
            row = {"recipe": ", ".join(f"{k}={v}" for k, v in recipe.items()) or "defaults", "direction": d,
                   "train_s": round(seconds, 1), "eval_losses": evals}
            for name, fn in SETS.items():
                pairs = fn(d)
                hyps = decode(tuned, "", d, pairs)
                row[name] = {"chrf": chrf(hyps, [p.target for p in pairs]), "k0": k4[d, name, 0][0], "k4": k4[d, name, 4][0],
                             **chrf_lead(hyps, k4[d, name, 4][1], [p.target for p in pairs]), "answers": hyps}
            del tuned
            out.write(json.dumps(row, ensure_ascii=False) + "\n")
            out.flush()
            table.append(row)
            print({k: v for k, v in row.items() if k not in SETS} | {n: row[n]["chrf"] for n in SETS}, flush=True)
    print("\n| recipe | direction | dev: k=0 / k=4 / LoRA, lead [95%] | dev2: k=0 / k=4 / LoRA, lead [95%] | training s |")
    print("|---|---|---|---|---|")
    for r in table:
        cells = " | ".join("{k0:.1f} / {k4:.1f} / **{chrf:.1f}**, {lead:+.1f} [{low:+.1f}, {high:+.1f}]".format(**r[n]) for n in SETS)
        print(f"| {r['recipe']} | {r['direction']} | {cells} | {r['train_s']:.0f} |")


if __name__ == "__main__":
    main()
