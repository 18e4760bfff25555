"""The fine-tune button from the outside: seconds from the /finetune call to its result, on a fresh app.

Starts `python app.py` with an empty data dir and shared-results folder, waits for the model, then presses the
button with its defaults through the API, once per direction as the first learner (the base model's side of
the scores is computed then) and once more with `fresh=True` (the base side is reused, as for every later
learner). Prints each run's seconds, its training seconds and chrF before/after, and the CPU it ran on.
Usage: python bench/button.py [--directions en-ko,ko-en]
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
    args = ap.parse_args()
    from modes.serving.precision import cpu_line

    print(cpu_line(), flush=True)
    port, scratch = free_port(), tempfile.mkdtemp(prefix="hml-button-")
    env = dict(os.environ, GRADIO_SERVER_PORT=str(port), HF_HUB_OFFLINE="1", HML_DATA_DIR=f"{scratch}/data",
               HML_SHARED_RESULTS=f"{scratch}/shared")
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
        for direction in args.directions.split(","):
            for first in (True, False):
                t = time.perf_counter()
                out = c.predict(direction=direction, fresh=not first, api_name="/finetune")[-1]
                wall = time.perf_counter() - t
                print(f"{direction} {'first learner' if first else 'base side reused'}: {wall:.0f} s from the call to the result "
                      f"(training {out['seconds']:.0f} s, {out['steps']} steps, {out['dtype']} base); chrF {out['chrf_before']} -> "
                      f"{out['chrf_after']} on {out['n_test']} held-out pairs; reverse direction "
                      f"{out['off_task']['reverse_chrf_before']} -> {out['off_task']['reverse_chrf_after']}", flush=True)
    finally:
        proc.terminate()
        proc.wait(timeout=30)


if __name__ == "__main__":
    main()
