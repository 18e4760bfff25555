"""Few-shot translation in both directions, through the /translate endpoint, on the built-in held-out pairs.

Launches the app on the embedded model and calls /translate as an API user would: with its
defaults (the built-in pool, `pool` left out), greedy, for every held-out pair, at k=0 and k=4, in
both directions. Prints chrF per (direction, k) and the k=4/k=0 difference: the baseline is k=0
in the same run.
Usage: python bench/directions.py [--n 69] [--ks 0,4]
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--n", type=int, default=69)
    ap.add_argument("--ks", default="0,4")
    args = ap.parse_args()
    from gradio_client import Client

    import app
    from modes.data import translation as task
    from modes.metrics import chrf
    from modes.model.loader import ModelLoader
    from tests.conftest import free_port

    loader = ModelLoader()
    loader.get()
    demo = app.build_app(loader)
    _, url, _ = app.launch(demo, prevent_thread_lock=True, server_port=free_port(), quiet=True)
    client = Client(url, verbose=False)
    ks = [int(k) for k in args.ks.split(",")]
    scores = {}
    try:
        for direction in task.DIRECTIONS:
            test = task.pairs_for(direction, "test")[: args.n]
            for k in ks:
                t0, hyps, secs = time.perf_counter(), [], []
                for p in test:
                    s = client.predict(text=p.source, direction=direction, k=k, api_name="/translate")[-1]
                    hyps.append(s["translation"])
                    secs.append(s["seconds"])
                scores[(direction, k)] = chrf(hyps, [p.target for p in test])
                print(f"{direction} k={k}: chrF {scores[(direction, k)]:6.2f} on {len(test)} held-out pairs "
                      f"(median {statistics.median(secs):.2f} s per request, {time.perf_counter() - t0:.0f} s)", flush=True)
                print(f"   e.g. {test[0].source!r} -> {hyps[0]!r}", flush=True)
        for direction in task.DIRECTIONS:
            base = scores[(direction, ks[0])]
            for k in ks[1:]:
                print(f"{direction}: k={k} vs k={ks[0]}: {scores[(direction, k)] - base:+.2f} chrF")
    finally:
        demo.close()


if __name__ == "__main__":
    main()
