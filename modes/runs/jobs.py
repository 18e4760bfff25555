"""Helpers for long-running jobs shared by the training tabs: a per-session stop flag and a throttle."""

from __future__ import annotations

import threading
import time

from modes.runs.events import Done, Left, Queued, Replaying, Step
from modes.runs.keys import key_of
from modes.runs.reuse import LEASE_POLL_S, Recording, replay


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


class Ticket:
    """One training's place in the slot's queue."""

    def __init__(self, est_seconds: float, owner: str | None = None):
        self.est_seconds = est_seconds  # a guess before it starts; the running job updates `eta`
        self.eta: float | None = None
        self.started: float | None = None
        self.owner = owner  # the learner it is for: one learner never has two trainings running at once


class TrainingSlot:
    """`capacity` trainings at a time (one on a shared machine's cores; a few on ZeroGPU, each in its own GPU
    call), with a visible queue: each waiting learner sees their position and an estimated wait, and can
    leave. A learner's second training waits for their first. Replays never take the slot."""

    def __init__(self, capacity: int = 1):
        self._cond = threading.Condition()
        self._queue: list[Ticket] = []  # running ones (started), then waiting ones, in arrival order
        self.capacity = max(1, capacity)
        self.gauge = Gauge()

    def join(self, est_seconds: float, owner: str | None = None) -> Ticket:
        t = Ticket(est_seconds, owner)
        with self._cond:
            self._queue.append(t)
        return t

    def take_if_idle(self, est_seconds: float) -> Ticket | None:
        """The slot, now, only when nobody holds it or waits for it: work that may wait for idle time
        (modes/runs/warmup.py) never goes ahead of a learner. Leave it like any ticket."""
        with self._cond:
            if self._queue:
                return None
            t = Ticket(est_seconds)
            t.started = time.perf_counter()
            self._queue.append(t)
            return t

    def position(self, t: Ticket) -> int:
        """0 = running (or free to run), 1 = next, ..."""
        with self._cond:
            if t not in self._queue:
                return -1
            if t.started is not None or self._may_run(t):
                return 0
            return sum(1 for x in self._queue[: self._queue.index(t)] if x.started is None) + 1

    def _may_run(self, t: Ticket) -> bool:
        """(holding the lock) Whether waiting ticket `t` is next: a place is free, and it is the first waiting
        ticket whose learner has nothing running."""
        running = [x for x in self._queue if x.started is not None]
        if len(running) >= self.capacity:
            return False
        busy = {x.owner for x in running if x.owner is not None}
        return next((x for x in self._queue if x.started is None and (x.owner is None or x.owner not in busy)), None) is t

    def wait_estimate(self, t: Ticket) -> float:
        with self._cond:
            ahead = self._queue[: self._queue.index(t)] if t in self._queue else []
        now = time.perf_counter()
        total = 0.0
        for a in ahead:
            if a.started is None:
                total += a.est_seconds
            else:
                total += a.eta if a.eta is not None else max(0.0, a.est_seconds - (now - a.started))
        return total / self.capacity  # several places drain the line that much faster

    def turn(self, t: Ticket, timeout: float = 1.0) -> bool:
        """Wait up to `timeout` for this ticket to reach the front; True when it may run."""
        with self._cond:
            if t.started is not None:
                return True
            if not self._may_run(t):
                self._cond.wait(timeout)
            if t in self._queue and self._may_run(t):
                t.started = time.perf_counter()
                self._cond.notify_all()  # the next one may be free to run too (another learner's, another place)
                return True
            return False

    def leave(self, t: Ticket) -> None:
        """Done, stopped, failed, cancelled or left the queue: the next ticket may run."""
        with self._cond:
            if t in self._queue:
                self._queue.remove(t)
            self._cond.notify_all()

    def waiting(self) -> int:
        with self._cond:
            return max(0, len(self._queue) - 1)


def run_job(ctx, key: dict | None, compute, stop: StopFlag, est_seconds: float, keep=lambda result: True,
            fresh: bool = False, replay_seconds: float = 6.0, owner: str | None = None):
    """One loop for every training: replay an identical recorded run (never holding the slot), or
    wait for the training slot (reporting the queue), run `compute()` and record it for replay.
    `key` names everything the run depends on (None: never replayed); `keep(result)` says whether
    the finished run may be replayed (not a stopped or diverged one). Yields Queued, Left or
    Replaying (modes/runs/events.py), then the compute's own events (Step, Eval, Sample, Done)."""
    replayable = key is not None and ctx.reuse and ctx.deterministic

    def recorded():
        return None if fresh or not replayable else ctx.replays.get(key)

    rec = recorded()
    ticket = lease = None
    try:
        # Another process computing this very run (a replica, on a shared database): wait for its recording and
        # replay it, labelled, rather than compute it twice. Its lease is taken over if that process dies.
        if rec is None and replayable and not fresh and ctx.replays.db is not None:
            k, lease = key_of(key), ctx.replays.live.holder()
            while not ctx.replays.live.take(k, lease):
                if stop.is_set():
                    lease = None
                    yield Left()
                    return
                rec = recorded()
                if rec:
                    lease = None
                    break
                yield Queued(1, est_seconds)
                time.sleep(LEASE_POLL_S)
            rec = rec or recorded()  # the holder records before it lets go: its recording may be there now
        ticket = None if rec else ctx.slot.join(est_seconds, owner)
        while ticket is not None:
            turn = ctx.slot.turn(ticket, 1.0)
            # An identical run ahead of us finished: replay it instead of training again. Asked once more as our
            # turn comes, since that run recorded itself just before it left the slot (the usual case).
            rec = recorded()
            if rec:
                ctx.slot.leave(ticket)
                ticket = None
                break
            if turn:
                break
            if stop.is_set():
                yield Left()
                return
            yield Queued(ctx.slot.position(ticket), ctx.slot.wait_estimate(ticket))
        if rec:
            yield Replaying(rec)
            for ev in replay(rec, stop.is_set, min(replay_seconds, rec.seconds)):  # never slower than the original
                yield ev
            return
        events, t0 = [], time.perf_counter()
        with ctx.slot.gauge:  # counts trainings running at once; exits on stop, error or cancel
            for ev in compute():
                events.append(ev)
                if isinstance(ev, Step):
                    ticket.eta = ev.eta
                if isinstance(ev, Done) and replayable and keep(ev):
                    # Recorded before the result is handed on: the caller stops reading at the result.
                    ctx.replays.put(key, Recording(list(events), time.perf_counter() - t0))
                yield ev
                if isinstance(ev, Step) and "after_step" in ctx.hooks:
                    ctx.hooks["after_step"](ev)  # a test hook: hold a run at a step while a page reloads
    finally:
        if ticket is not None:
            ctx.slot.leave(ticket)
        if lease is not None:
            ctx.replays.unlease(key_of(key), lease)
