"""Startup benchmark: seconds to first page, to model-ready (cold and warm cache), and peak RSS.

Runs `python app.py` as a user would, with a fresh cache directory (cold) and then the same one
(warm). The baseline is the cold start: the warm/cold ratio is what the safetensors cache buys.
Usage: python bench/startup.py [--runs 3] [--python PATH]
  The cold start runs once; warm starts --runs times. --python runs app.py with another interpreter:
  a fresh venv made with `pip install -r requirements.txt` is what a new user has (this machine's
  global site-packages also hold scipy, IPython and more, which Gradio and transformers import).
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
from pathlib import Path

import psutil

ROOT = Path(__file__).resolve().parent.parent


def free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def machine_speed() -> float:
    """Seconds for a fixed pure-Python loop: this shared VM's speed drifts by 2-4x over minutes, so
    every start is printed with it (about 0.19 s here when the machine is at full speed)."""
    t = time.perf_counter()
    s = 0
    for i in range(5_000_000):
        s += i
    return time.perf_counter() - t


def one_start(cache: str, python: str = sys.executable, timeout: float = 300, root: Path = ROOT) -> dict:
    port = free_port()
    speed = machine_speed()
    env = dict(os.environ, HOW_MODELS_LEARN_CACHE=cache, GRADIO_SERVER_PORT=str(port), HF_HUB_OFFLINE="1")
    t0 = time.perf_counter()
    proc = subprocess.Popen([python, "app.py"], cwd=root, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    peak = [0]
    stop = threading.Event()

    def watch():  # sum RSS over the process tree (the tokenizer converts in a child on a cold start)
        p = psutil.Process(proc.pid)
        while not stop.is_set():
            try:
                rss = p.memory_info().rss + sum(c.memory_info().rss for c in p.children(recursive=True))
                peak[0] = max(peak[0], rss)
            except psutil.Error:
                pass
            time.sleep(0.1)

    threading.Thread(target=watch, daemon=True).start()
    url = f"http://127.0.0.1:{port}/"
    page = ready = None
    try:
        from gradio_client import Client

        while time.perf_counter() - t0 < timeout:
            try:
                urllib.request.urlopen(url, timeout=2).read()
                page = time.perf_counter() - t0
                break
            except OSError:
                time.sleep(0.1)
        client = Client(url, verbose=False)
        while time.perf_counter() - t0 < timeout:
            st = client.predict(api_name="/model_status")
            if st["state"] in ("ready", "error"):
                ready = time.perf_counter() - t0
                assert st["state"] == "ready", st
                break
            time.sleep(0.25)
    finally:
        stop.set()
        proc.terminate()
        proc.wait(10)
    return {"page_s": page, "ready_s": ready, "peak_rss_gb": peak[0] / 2**30, "speed_s": speed}


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--python", default=sys.executable, help="interpreter for app.py (default: this one)")
    args = ap.parse_args()
    print(f"app.py runs with {args.python}")
    with tempfile.TemporaryDirectory() as cache:
        cold = one_start(cache, args.python)
        print(f"cold: page {cold['page_s']:.1f}s, model-ready {cold['ready_s']:.1f}s, peak RSS {cold['peak_rss_gb']:.2f} GB"
              f"  (machine speed {cold['speed_s']:.2f})")
        warm = [one_start(cache, args.python) for _ in range(args.runs)]
    for i, w in enumerate(warm):
        print(f"warm {i + 1}: page {w['page_s']:.1f}s, model-ready {w['ready_s']:.1f}s, peak RSS {w['peak_rss_gb']:.2f} GB  (machine speed {w['speed_s']:.2f})")
    med = {k: statistics.median(w[k] for w in warm) for k in warm[0]}
    print(f"\nmedian warm: page {med['page_s']:.1f}s (target <= 5), model-ready {med['ready_s']:.1f}s (target <= 10), peak RSS {med['peak_rss_gb']:.2f} GB")
    print(f"cold model-ready {cold['ready_s']:.1f}s (target <= 60)")
    print(f"ratio cold/warm model-ready (what the safetensors cache buys): {cold['ready_s'] / med['ready_s']:.1f}x")


if __name__ == "__main__":
    main()
