"""Load benchmark: 16 concurrent /translate calls against the app as users run it, plus a full tour.

Starts `python app.py` on a free port (embedded model, warm cache), fires 16 concurrent clients
(each its own session) and reports success count, p50/p95 latency and the server's peak RSS.
The baseline is the same 16 calls made one after another, in the same run: the ratio shows what
the queue's concurrency buys. Then one client takes the full tour (token loss, a default pre-train,
a default LoRA fine-tune, a translation and the sweep) and the peak RSS of that is reported.
Usage: python bench/load.py [--users 16] [--no-tour]
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import psutil

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
from bench.startup import free_port  # noqa: E402

SENTENCES = ["Where is the station?", "I would like a cup of coffee, please.", "The weather is nice today.",
             "Can you help me carry this box?", "What time does the store close?", "I lost my umbrella on the bus.",
             "My sister lives in Busan.", "Please call me back later."]


class Peak:
    def __init__(self, pid: int):
        self.p, self.peak, self._stop = psutil.Process(pid), 0, threading.Event()
        threading.Thread(target=self._run, daemon=True).start()

    def _run(self):
        while not self._stop.is_set():
            try:
                self.peak = max(self.peak, self.p.memory_info().rss + sum(c.memory_info().rss for c in self.p.children(recursive=True)))
            except psutil.Error:
                pass
            time.sleep(0.1)

    def reset(self):
        self.peak = 0

    def stop(self):
        self._stop.set()


def one_call(url: str, i: int) -> float:
    from gradio_client import Client

    c = Client(url, verbose=False)
    t = time.perf_counter()
    out = c.predict(text=SENTENCES[i % len(SENTENCES)], direction="en-ko", k=4, selection="random", seed=i,
                    use_adapter=False, api_name="/translate")
    assert out[-1]["weights_unchanged"] and out[-1]["translation"] is not None
    return time.perf_counter() - t


def pct(xs, q):
    xs = sorted(xs)
    return xs[min(len(xs) - 1, int(round(q * (len(xs) - 1))))]


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--users", type=int, default=16)
    ap.add_argument("--no-tour", action="store_true")
    args = ap.parse_args()
    from modes.serving.precision import cpu_line

    print(cpu_line(), flush=True)
    port = free_port()
    env = dict(os.environ, GRADIO_SERVER_PORT=str(port), HF_HUB_OFFLINE="1")
    proc = subprocess.Popen([sys.executable, "app.py"], cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    peak = Peak(proc.pid)
    url = f"http://127.0.0.1:{port}/"
    try:
        from gradio_client import Client

        while True:
            try:
                if Client(url, verbose=False).predict(api_name="/model_status")["state"] == "ready":
                    break
            except Exception:  # not up yet
                pass
            time.sleep(0.5)
        one_call(url, 0)  # warm-up
        t = time.perf_counter()
        serial = [one_call(url, i) for i in range(args.users)]
        t_serial = time.perf_counter() - t
        peak.reset()
        t = time.perf_counter()
        results, errors = [], []
        with ThreadPoolExecutor(args.users) as pool:
            for f in [pool.submit(one_call, url, i) for i in range(args.users)]:
                try:
                    results.append(f.result())
                except Exception as exc:
                    errors.append(repr(exc))
        t_conc = time.perf_counter() - t
        print(f"{args.users} concurrent /translate: {len(results)}/{args.users} succeeded in {t_conc:.1f} s; "
              f"latency p50 {pct(results, 0.5):.2f} s, p95 {pct(results, 0.95):.2f} s; peak RSS {peak.peak / 2**30:.2f} GB")
        print(f"baseline, the same {args.users} calls one after another: {t_serial:.1f} s (p50 {statistics.median(serial):.2f} s); "
              f"ratio serial/concurrent wall time {t_serial / t_conc:.2f}x")
        for e in errors[:3]:
            print("error:", e)
        if not args.no_tour:
            peak.reset()
            c = Client(url, verbose=False)
            t = time.perf_counter()
            c.predict(text="Now is the winter of our discontent", api_name="/token_loss")
            c.predict(corpus="shakespeare", size="baby", steps=2000, seed=1337, api_name="/pretrain")
            c.predict(steps=60, r=16, learning_rate=1e-3, seed=0, api_name="/finetune")
            c.predict(text="Where is the station?", use_adapter=True, api_name="/translate")
            c.predict(direction="en-ko", ks="0,1,2,4,8", n=69, api_name="/icl_sweep")
            print(f"full tour with default settings: {time.perf_counter() - t:.0f} s, peak RSS {peak.peak / 2**30:.2f} GB (target < 6 GB)")
    finally:
        peak.stop()
        proc.terminate()
        proc.wait(10)


if __name__ == "__main__":
    main()
