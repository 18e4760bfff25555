"""The "weights unchanged" proof without its per-request cost: hash once at load, then coalesce.

A request needs a hash of the weights computed *after* it finished. One hash computation that starts
after several requests finished answers all of them, so 16 concurrent requests cost one or two
hashes (about 0.25 s each for the 270M model) instead of 32.
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass

from modes.metrics import weights_hash


@dataclass
class Proof:
    before: str  # the hash taken when the model was loaded
    after: str  # a hash computed after the request finished
    unchanged: bool
    shared_with: int  # callers waiting on the hash computation that answered this one (1 = computed alone)
    seconds: float  # how long the caller waited for its `after` hash


class WeightsProof:
    """Coalesced weights hashing for one model."""

    def __init__(self, model, hasher=weights_hash):
        self.model, self._hash = model, hasher
        self.reference = hasher(model)  # at load: every later proof compares against it
        self._lock = threading.Condition()
        self._running_since: float | None = None  # start time of the hash in progress
        self._last: tuple[float, str, int] | None = None  # (start time, hash, waiters answered)
        self._waiting = 0
        self.computations = 0

    def after(self, finished_at: float | None = None) -> Proof:
        """A proof for a request that finished at `finished_at` (now, by default)."""
        t_req = time.perf_counter() if finished_at is None else finished_at
        t0 = time.perf_counter()
        with self._lock:
            self._waiting += 1
            while True:
                if self._last is not None and self._last[0] >= t_req:  # a hash that began after we finished
                    h, shared = self._last[1], self._last[2]
                    break
                if self._running_since is None:  # nobody hashing: this caller computes for everyone waiting
                    start = self._running_since = time.perf_counter()
                    self._lock.release()
                    try:
                        h = self._hash(self.model)
                    finally:
                        self._lock.acquire()
                        self._running_since = None
                        self._lock.notify_all()  # waiters re-check (and one computes if this one failed)
                    self.computations += 1
                    self._last = (start, h, self._waiting)
                    shared = self._waiting
                    break
                self._lock.wait()  # a hash is running; it may have begun before we finished, so loop
            self._waiting -= 1
        return Proof(self.reference, h, h == self.reference, shared, round(time.perf_counter() - t0, 3))
