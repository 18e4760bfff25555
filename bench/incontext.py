"""In-context benchmark: the chrF-vs-k sweep, optimised vs naive, and time to first token at 8 shots.

Optimised = the app's path: the few-shot prefix's KV cache computed once and copied per query,
queries batched (left-padded after the prefix), generation stopping at the newline.
Naive = one `generate` per sentence on the full prompt, no prefix reuse, no early stop.
Both run in this process on the same model, sentences and examples.
Usage: python bench/incontext.py [--n 6] [--ks 0,1,2,4,8] [--repeats 5]
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from modes.data import translation as task
from modes.incontext import core as ic
from modes.metrics import chrf
from modes.model.loader import ModelLoader

T = task.DEFAULT_TEMPLATE


def sweep_fast(model, tok, pool, test, ks):
    scores = {}
    for k in ks:
        ex = task.select_examples(pool, k, "random", seed=0)
        prefix, _ = task.split_prompt(T, "en-ko", ex, test[0].source)
        hyps = ic.generate_batch(model, tok, prefix, [task.render_prompt(T, "en-ko", p.source) for p in test])
        scores[k] = chrf(hyps, [p.target for p in test])
    return scores


@torch.no_grad()
def sweep_naive(model, tok, pool, test, ks, max_new_tokens=48):
    scores = {}
    for k in ks:
        ex = task.select_examples(pool, k, "random", seed=0)
        hyps = []
        for p in test:
            enc = tok(task.build_fewshot_prompt(T, "en-ko", ex, p.source), return_tensors="pt")
            g = model.generate(**enc, max_new_tokens=max_new_tokens, min_new_tokens=max_new_tokens, do_sample=False,
                               pad_token_id=tok.pad_token_id)
            hyps.append(tok.decode(g[0, enc["input_ids"].shape[1]:], skip_special_tokens=True).split("\n")[0].strip())
        scores[k] = chrf(hyps, [p.target for p in test])
    return scores


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--n", type=int, default=6)
    ap.add_argument("--ks", default="0,1,2,4,8")
    ap.add_argument("--repeats", type=int, default=5)
    args = ap.parse_args()
    loader = ModelLoader()
    model, tok = loader.get()
    ks = [int(x) for x in args.ks.split(",")]
    pool, test = task.pairs_for("en-ko", "train"), task.pairs_for("en-ko", "test")[: args.n]
    print(f"threads {torch.get_num_threads()}, {args.n} held-out sentences, k in {ks}")

    t = time.perf_counter()
    fast = sweep_fast(model, tok, pool, test, ks)
    t_fast = time.perf_counter() - t
    t = time.perf_counter()
    naive = sweep_naive(model, tok, pool, test, ks)
    t_naive = time.perf_counter() - t
    print(f"sweep optimised: {t_fast:.1f} s   chrF {fast}")
    print(f"sweep naive:     {t_naive:.1f} s   chrF {naive}")
    print(f"ratio naive/optimised: {t_naive / t_fast:.1f}x (target >= 3x)")

    ex = task.select_examples(pool, 8, "random", seed=0)
    prefix, query = task.split_prompt(T, "en-ko", ex, test[0].source)
    n_tok = len(tok(prefix + query)["input_ids"])
    cold, warm = [], []
    for _ in range(args.repeats):
        cold.append(next(e for e in ic.stream_generate(model, tok, prefix, query, max_new_tokens=4) if e.ttft).ttft)
        eng = ic.Engine()
        eng.prefixes.get(ic.model_lane(model), model, tok, prefix)  # what the app does when it shows the prompt preview
        warm.append(next(e for e in ic.stream_generate(model, tok, prefix, query, max_new_tokens=4, engine=eng) if e.ttft).ttft)
    print(f"8-shot prompt ({n_tok} tokens) time to first token, median of {args.repeats}: "
          f"cold (prefill included) {statistics.median(cold):.3f} s; prefix cached, as in the app after the preview "
          f"{statistics.median(warm):.3f} s (target < 0.5 s); ratio cold/warm {statistics.median(cold) / statistics.median(warm):.1f}x")


if __name__ == "__main__":
    main()
