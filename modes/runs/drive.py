"""Driving an in-call run from a request (modes/serving/heavy.py): on ZeroGPU a training's GPU call must be
made by a request, so no thread runs it; its first follower drives it, and the watchdog finishes it if
that follower goes quiet. History.start(inline=True) and History.follow use these."""

from __future__ import annotations

import collections
import time
from typing import Iterator


def follow_driving(history, run, driver: Iterator[None], every: float) -> Iterator:
    """Drive `driver` (History._drive) from this follower, yielding the run when it changed (at most every
    `every` s), then once more at the end."""
    shown, last = -1, 0.0
    run.__dict__["driving"] = driver  # the watchdog drives it on if this follower goes quiet (stop_orphans)
    try:
        for _ in driver:
            run.followed_at = history.clock()
            if run.version != shown and time.monotonic() - last >= every:
                shown, last = run.version, time.monotonic()
                yield run
    finally:
        if run.__dict__.pop("driving", None) is not None:  # (else the watchdog drives it to its end)
            driver.close()  # the page went away: the run stops with it
    yield run


def drain(driver, run) -> None:
    """Drive an orphaned in-call run on: its stop flag is set, so it ends soon, stopped, with its result.
    While its own request is inside a step (the generator is executing) this waits and tries again: that
    request may never ask for the next event."""
    while run.active:
        try:
            collections.deque(driver, 0)
            return
        except ValueError:  # "generator already executing"
            time.sleep(0.2)
