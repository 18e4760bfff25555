"""Idle-time work: what every learner's first run would compute identically, computed before a learner
asks for it, while the machine has nothing else to do.

A tab offers such work as a generator (Tab.warm(ctx)): each step of it is one piece of a few seconds
(one held-out decode, say), and the results go to the shared results (ctx.results, on disk), where the
learners' runs look first. Each piece runs while this holds the training slot, which it takes only
when no learner holds it or waits for it (TrainingSlot.take_if_idle) and the engine decodes no
learner's rows: a learner who presses a training button during a piece waits for that piece only
(their queue line shows it ahead of them), and no training of a learner runs beside a piece. A
translation asked for during a piece shares its decode steps with the piece's rows, as with any
other learner's.

After a restart nothing is redone: the pieces find their results on disk and yield nothing.
"""

from __future__ import annotations

import logging
import threading
import time
from typing import Callable, Iterator

from modes.serving import omp

log = logging.getLogger(__name__)

PIECE_SECONDS = 15.0  # what a learner queued behind a piece is told to expect (one held-out decode on 2 cores)


class Warmup:
    """Runs the tabs' idle-time generators in a daemon thread, one piece at a time, in the slot's idle time."""

    def __init__(self, ctx, poll_s: float = 1.0):
        self.ctx = ctx
        self.poll_s = poll_s
        self.state = "off"  # off | waiting | running | done | stopped | failed
        self.done: list[str] = []  # jobs finished (their results are in ctx.results)
        self.current: str | None = None
        self.pieces = 0  # pieces run in all
        self.seconds = 0.0  # time spent in pieces
        self.error: str | None = None
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def start(self, jobs: list[tuple[str, Callable[[object], Iterator]]]) -> threading.Thread | None:
        """Begin the jobs, (name, warm(ctx) -> generator), in order; once per app."""
        if self._thread is not None or not jobs:
            return self._thread
        self.state = "waiting"
        self._thread = threading.Thread(target=self._run, args=(jobs,), name="warmup", daemon=True)
        self._thread.start()
        return self._thread

    def stop(self) -> None:
        """No new piece starts (the one running ends first)."""
        self._stop.set()

    def join(self, timeout: float | None = None) -> None:
        if self._thread is not None:
            self._thread.join(timeout)

    def _idle_slot(self):
        """The training slot once nobody holds it or waits for it; None when stopped."""
        decoding = getattr(self.ctx, "decoding", lambda: 0)
        while not self._stop.is_set():
            ticket = None if decoding() else self.ctx.slot.take_if_idle(PIECE_SECONDS)
            if ticket is not None:
                return ticket
            self.state = "waiting"
            self._stop.wait(self.poll_s)
        return None

    def _run(self, jobs) -> None:
        for name, warm in jobs:
            gen = None
            while True:
                ticket = self._idle_slot()
                if ticket is None:
                    self.state = "stopped"
                    return
                self.state, self.current = "running", name
                t0 = time.perf_counter()
                try:
                    gen = gen or warm(self.ctx)
                    next(gen)  # one piece
                    self.pieces += 1
                except StopIteration:
                    break
                except Exception as e:  # idle-time work never takes the app down: the learners' runs compute it instead
                    log.exception("idle-time work %s failed", name)
                    self.error = f"{name}: {type(e).__name__}: {e}"
                    self.state, self.current = "failed", None
                    return
                finally:
                    self.seconds += time.perf_counter() - t0
                    self.ctx.slot.leave(ticket)
                    omp.release()  # it waits now: its OpenMP team would slow the learners' threads (modes/serving/omp.py)
            self.done.append(name)
            self.current = None
        self.state = "done"

    def as_dict(self) -> dict:
        return {"state": self.state, "done": list(self.done), "running": self.current, "pieces": self.pieces,
                "seconds": round(self.seconds, 1), "error": self.error}
