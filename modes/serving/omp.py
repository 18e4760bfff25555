"""Idle threads give their OpenMP workers back, so the thread that computes runs at full speed.

torch on Linux parallelises each op with OpenMP (GNU libgomp), and every thread that runs torch ops
gets its own team of worker threads, kept while that thread lives. Once the process has more such
threads than CPUs, libgomp stops letting idle workers spin (it "throttles" them), and every small op
then pays to wake its workers. On 2 cores, one idle thread that had run torch ops (the generation
engine's scheduler, waiting for work) made another thread's LoRA training steps 1.9x slower
(428 -> 801 ms a step) and a small matmul loop 1.7x slower (0.56 -> 0.95 s); once that thread gave its
team back (`omp_pause_resource_all`, OpenMP 5.0), the loop ran in 0.54 s again.

So a long-lived thread calls `release()` before it waits for work (the engine's scheduler, the idle-time
work), and so does every endpoint after each step it runs in Gradio's worker threads (`ui.guard`): it frees
only the calling thread's team (the next op it runs makes a new one, in well under a millisecond). Where torch does not use
libgomp or the library has no such call, `release()` does nothing.
"""

from __future__ import annotations

import ctypes
import functools
import logging
import re
import sys

log = logging.getLogger(__name__)
OMP_PAUSE_SOFT = 1  # omp_pause_resource_t: free the resources, keep the state


@functools.lru_cache(maxsize=1)
def _pause():
    """libgomp's omp_pause_resource_all, as torch loaded it, or None."""
    try:
        import torch

        if "parallel backend: OpenMP" not in torch.__config__.parallel_info():
            return None
        with open("/proc/self/maps", encoding="utf-8") as f:  # the copy torch loaded (bundled with its wheel)
            paths = sorted(set(re.findall(r"(/\S*/libgomp[^/\s]*\.so[^/\s]*)", f.read())))
        if not paths:
            return None
        fn = ctypes.CDLL(paths[0]).omp_pause_resource_all
        fn.argtypes, fn.restype = [ctypes.c_int], ctypes.c_int
        return fn
    except (OSError, AttributeError, ImportError):  # not Linux, no libgomp, or a libgomp before OpenMP 5.0
        log.info("OpenMP workers cannot be released here; idle threads keep them")
        return None


def release() -> bool:
    """Free the calling thread's OpenMP workers (call it outside any torch op). True when released.
    Before torch is imported no thread has any, and nothing is imported here."""
    if "torch" not in sys.modules:
        return False
    fn = _pause()
    return fn is not None and fn(OMP_PAUSE_SOFT) == 0
