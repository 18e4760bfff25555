"""Helpers for long-running jobs shared by the training tabs: a per-session stop flag and a throttle."""

from __future__ import annotations

import time


class StopFlag:
    """A per-session stop request. Lives in gr.State (deep-copied per session, so no locks inside)."""

    def __init__(self):
        self.requested = False

    def set(self) -> None:
        self.requested = True

    def clear(self) -> None:
        self.requested = False

    def is_set(self) -> bool:  # a method, not __call__: gr.State would call a callable to make its value
        return self.requested


class Throttle:
    """True at most every `seconds`: live plots update twice a second, not every step."""

    def __init__(self, seconds: float = 0.5):
        self.seconds, self.last = seconds, 0.0

    def __call__(self, force: bool = False) -> bool:
        now = time.perf_counter()
        if force or now - self.last >= self.seconds:
            self.last = now
            return True
        return False


def fmt_eta(seconds: float) -> str:
    seconds = max(0, int(round(seconds)))
    return f"{seconds // 60}:{seconds % 60:02d}"


class Gauge:
    """Counts jobs running at once (and the most ever seen): proof that trainings never overlap."""

    def __init__(self):
        import threading

        self._lock = threading.Lock()
        self.now = 0
        self.peak = 0

    def __enter__(self):
        with self._lock:
            self.now += 1
            self.peak = max(self.peak, self.now)
        return self

    def __exit__(self, *exc):
        with self._lock:
            self.now -= 1
        return False
