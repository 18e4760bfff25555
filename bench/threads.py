"""What an idle thread's OpenMP workers cost the thread that computes (modes/serving/omp.py).

Times the same loop of small matmuls (64 x 640 by 640 x 640, then GELU: the size of a decode step's ops)
in the main thread: alone; while another thread that ran torch ops waits alive with its OpenMP team;
and while such a thread waits after `omp.release()`. Medians of 5, their ratios, and the CPU.
Usage: python bench/threads.py
"""

from __future__ import annotations

import statistics
import sys
import threading
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from modes.serving import omp
from modes.serving.precision import cpu_line

X, W = torch.randn(64, 640), torch.randn(640, 640)


def loop(n: int = 2000) -> float:
    t0 = time.perf_counter()
    for _ in range(n):
        torch.nn.functional.gelu(X @ W)
    return time.perf_counter() - t0


def beside(release: bool | None) -> float:
    """The loop's median seconds while another thread (None: no other thread) waits, released or not."""
    if release is None:
        return statistics.median(loop() for _ in range(5))
    ran, done = threading.Event(), threading.Event()

    def other():
        loop(200)
        if release:
            omp.release()
        ran.set()
        done.wait()

    t = threading.Thread(target=other)
    t.start()
    ran.wait()
    try:
        return statistics.median(loop() for _ in range(5))
    finally:
        done.set()
        t.join()


def main() -> None:
    print(cpu_line(), f"| torch threads {torch.get_num_threads()} | release available: {omp._pause() is not None}")
    alone, kept, released = beside(None), beside(False), beside(True)
    print(f"alone {alone:.2f} s; beside an idle thread with its OpenMP team {kept:.2f} s ({kept / alone:.2f}x); "
          f"beside one that released it {released:.2f} s ({released / alone:.2f}x)")


if __name__ == "__main__":
    main()
