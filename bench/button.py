"""The fine-tune button from the outside: seconds from the /finetune call to its result, on a fresh app.

Starts `python app.py` with an empty data dir and shared-results folder, waits for the model, then presses the
button with its defaults through the API, once per direction as the first learner (the base model's side of
the scores is computed then) and once more with `fresh=True` (the base side is reused, as for every later
learner). Prints each run's seconds, its training seconds and chrF before/after, and the CPU it ran on.
With --warmup on: the app computes the base side in its idle time after the model is ready (app.py --warmup,
modes/runs/warmup.py); the bench waits until that is done, prints how long it took, and presses the button once
per direction as the first learner of an app that had that idle time.
Usage: python bench/button.py [--directions en-ko,ko-en] [--warmup off|on]
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
from bench.startup import free_port  # noqa: E402


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--directions", default="en-ko,ko-en")
    ap.add_argument("--warmup", default="off", choices=["off", "on"], help="on: let the app use its idle time first")
    args = ap.parse_args()
    from modes.serving.precision import cpu_line

    print(cpu_line(), flush=True)
    port, scratch = free_port(), tempfile.mkdtemp(prefix="hml-button-")
    env = dict(os.environ, GRADIO_SERVER_PORT=str(port), HF_HUB_OFFLINE="1", HML_DATA_DIR=f"{scratch}/data",
               HML_SHARED_RESULTS=f"{scratch}/shared", HML_WARMUP=args.warmup)
    proc = subprocess.Popen([sys.executable, "app.py"], cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    url = f"http://127.0.0.1:{port}/"
    try:
        from gradio_client import Client

        while True:
            try:
                status = Client(url, verbose=False).predict(api_name="/model_status")
                if status["state"] == "ready":
                    break
            except Exception:  # not up yet
                pass
            time.sleep(0.5)
        print(f"served {status['dtype']}; fine-tune base {status.get('train_dtype')} ({status.get('train_dtype_reason')})")
        c = Client(url, verbose=False)
        if args.warmup == "on":
            t = time.perf_counter()
            while (w := c.predict(api_name="/model_status")["warmup"])["state"] not in ("done", "failed", "stopped"):
                time.sleep(0.5)
            print(f"idle-time work {w['state']} {time.perf_counter() - t:.0f} s after the model was ready "
                  f"({w['pieces']} pieces, {w['seconds']:.0f} s in them){'; ' + w['error'] if w['error'] else ''}", flush=True)
        label = lambda first: ("first learner" + (" after the idle-time work" if args.warmup == "on" else "")) if first else "base side reused"
        for direction in args.directions.split(","):
            for first in (True, False) if args.warmup == "off" else (True,):
                t = time.perf_counter()
                out = c.predict(direction=direction, fresh=not first, api_name="/finetune")[-1]
                wall = time.perf_counter() - t
                print(f"{direction} {label(first)}: {wall:.0f} s from the call to the result "
                      f"(training {out['seconds']:.0f} s, {out['steps']} steps, {out['dtype']} base); chrF {out['chrf_before']} -> "
                      f"{out['chrf_after']} on {out['n_test']} held-out pairs; reverse direction "
                      f"{out['off_task']['reverse_chrf_before']} -> {out['off_task']['reverse_chrf_after']}", flush=True)
    finally:
        proc.terminate()
        proc.wait(timeout=30)


if __name__ == "__main__":
    main()
