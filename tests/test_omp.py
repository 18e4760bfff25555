"""Idle threads give their OpenMP workers back (modes/serving/omp.py): the engine's scheduler once it waits,
and any thread that calls release(). Counted as the process's OS threads (Linux, torch on libgomp)."""

from __future__ import annotations

import os
import threading
import time

import pytest
import torch

from modes.serving import omp

pytestmark = pytest.mark.skipif(not os.path.isdir("/proc/self/task") or omp._pause() is None or (os.cpu_count() or 1) < 2,
                                reason="needs Linux, torch on libgomp with omp_pause_resource_all, and 2+ cores")


@pytest.fixture(autouse=True)
def two_threads():
    """torch on 2 threads, as the app runs (a test worker runs on one: tests/conftest.py), so a team exists to count."""
    was = torch.get_num_threads()
    torch.set_num_threads(2)
    yield
    torch.set_num_threads(was)


def _os_threads() -> int:
    return len(os.listdir("/proc/self/task"))


def _in_a_thread_that_stays(release: bool, before: int = 0) -> int:
    """OS threads while a thread that ran a parallel op (and released its team, or not) waits alive. A released team's
    workers exit on their own time: the count is read again until it is `before` + 1 (the thread alone), for up to 30 s."""
    ran, done = threading.Event(), threading.Event()

    def body():
        a = torch.randn(512, 512)
        for _ in range(5):
            a @ a  # large enough to run on every intra-op thread
        if release:
            assert omp.release()
        ran.set()
        done.wait(60)

    t = threading.Thread(target=body)
    t.start()
    ran.wait(60)
    n, end = _os_threads(), time.monotonic() + 30
    while release and n > before + 1 and time.monotonic() < end:
        time.sleep(0.05)
        n = _os_threads()
    done.set()
    t.join()
    return n


def test_a_released_thread_keeps_no_workers_and_an_unreleased_one_does():
    """Counted in a fresh process: in a test worker, threads other tests left (watchdogs, servers winding down)
    come and go between two counts, and a count of the whole process then says nothing (seen with -n 2)."""
    import subprocess
    import sys

    script = (
        "import torch\n"
        "from tests import test_omp as t\n"
        "before = t._os_threads()\n"
        "kept = t._in_a_thread_that_stays(release=False)\n"
        "released = t._in_a_thread_that_stays(release=True, before=before)\n"
        "print(before, kept, released, torch.get_num_threads())\n"
    )
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    # torch's own thread count, not the test worker's one-thread budget (an OMP_NUM_THREADS of 1 would also be
    # every new thread's team size, so no team would form to count)
    env = {k: v for k, v in os.environ.items() if k != "OMP_NUM_THREADS"}
    out = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, cwd=root, timeout=300, env=env)
    assert out.returncode == 0, out.stderr[-2000:]
    before, kept, released, threads = map(int, out.stdout.split()[-4:])
    assert kept >= before + 1 + (threads - 1), (before, kept, threads)  # the thread and its OpenMP workers
    assert released <= before + 1, (before, released)  # the thread alone


def test_an_idle_engine_keeps_no_workers(tiny_loader):
    from modes.serving.engine import Engine

    model, tok = tiny_loader.get()
    eng = Engine()
    before = _os_threads()
    eng.generate(model, tok, "", ["Where is the station?"] * 4, lane="t", session="t", max_new=8)
    end = time.monotonic() + 5
    while eng.active_rows() or _os_threads() > before + 1:
        assert time.monotonic() < end, f"{_os_threads() - before} threads more than before the engine ran"
        time.sleep(0.05)


def test_release_is_harmless_where_nothing_was_made():
    assert omp.release() in (True, False)  # the main thread: a team or none, either way no error
    t = threading.Thread(target=omp.release)
    t.start()
    t.join()
