"""How many GPU seconds a ZeroGPU call asks for: measured per kind of training and GPU, not guessed.

ZeroGPU checks each call's *requested* duration against the visitor's remaining daily quota (about 2 minutes
without an account, 5 with a free one, 40 with PRO), and refuses a call that asks for more. Asking too much
refuses a learner who has quota left; asking too little cuts the run. So each training's GPU call is timed:
the seconds from the call to its first step (the worker's start, the model's move to the GPU), the seconds
per step (from the steps' own clock, inside the worker), and the seconds after the last step (scoring). A
running estimate per (kind, GPU) keeps the larger of the last measurement and the mean of the earlier ones,
and a call asks for start + steps x per step + tail, times MARGIN, plus SLACK_S. Until a kind has been
measured on this GPU, the CPU-derived guess (modes/serving/heavy.py: gpu_seconds) is used, with its margin.
"""

from __future__ import annotations

import threading
from dataclasses import asdict, dataclass

MARGIN = 1.25  # measured seconds times this: a busier GPU slice, a longer held-out decode
SLACK_S = 10.0  # and this much more: the fork and the pickling of the events
GUESS_MARGIN = 1.5  # the CPU-derived guess's margin, until the first measurement


@dataclass
class Measured:
    start_s: float  # the call to its first step
    step_s: float  # one training step
    tail_s: float  # after the last step: scoring, the result
    runs: int = 1

    def seconds(self, steps: int) -> float:
        return self.start_s + max(0, steps) * self.step_s + self.tail_s


class GpuBudget:
    def __init__(self):
        self._est: dict[tuple[str, str], Measured] = {}
        self._lock = threading.Lock()

    def ask(self, kind: str, steps: int, guess_s: float, gpu: str) -> tuple[float, bool]:
        """(seconds to ask for, measured?) for a `kind` run of `steps` steps on `gpu`; `guess_s`: the CPU-derived
        guess (without its margin), used until a run of this kind was measured on this GPU."""
        with self._lock:
            m = self._est.get((kind, gpu))
        if m is None:
            return guess_s * GUESS_MARGIN, False
        return m.seconds(steps) * MARGIN + SLACK_S, True

    def record(self, kind: str, gpu: str, start_s: float, step_s: float, tail_s: float) -> Measured:
        """One measured run: the estimate keeps the larger of it and the mean of the runs before (a slow call is
        never forgotten at once, a fast one never trusted at once)."""
        new = Measured(max(0.0, start_s), max(0.0, step_s), max(0.0, tail_s))
        with self._lock:
            old = self._est.get((kind, gpu))
            if old is not None:
                n = old.runs
                mean = Measured(*(((getattr(old, f) * n + getattr(new, f)) / (n + 1)) for f in ("start_s", "step_s", "tail_s")))
                new = Measured(max(new.start_s, mean.start_s), max(new.step_s, mean.step_s), max(new.tail_s, mean.tail_s), n + 1)
            self._est[(kind, gpu)] = new
        return new

    def as_dict(self) -> dict:
        with self._lock:
            return {f"{k}@{g}": {**asdict(m), "margin": MARGIN, "slack_s": SLACK_S} for (k, g), m in self._est.items()}


class StepClock:
    """Times one GPU call from the parent as its events arrive: `step(elapsed, step)` for each training step
    (elapsed: the worker's own seconds since training began), `done()` at the end -> (start, per step, tail)."""

    def __init__(self, now: float):
        self.t0 = now
        self.first: tuple[float, float, int] | None = None  # (arrival, elapsed, step) of the first step
        self.last: tuple[float, float, int] | None = None

    def step(self, now: float, elapsed: float, step: int) -> None:
        if self.first is None:
            self.first = (now, elapsed, step)
        self.last = (now, elapsed, step)

    def done(self, now: float) -> tuple[float, float, float] | None:
        if self.first is None or self.last is None or self.last[2] <= self.first[2]:
            return None  # fewer than two steps: nothing to measure a step by
        (a0, e0, s0), (a1, e1, s1) = self.first, self.last
        step_s = (e1 - e0) / (s1 - s0)
        start_s = (a0 - self.t0) - e0  # the call to the moment training began (elapsed counts from there)
        return max(0.0, start_s), step_s, max(0.0, now - a1)
