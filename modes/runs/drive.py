"""Running and following a run: History's half that drives a training and lets pages follow it.

A training runs in its own thread, not in the request that started it: the request only *follows* the run.
A reloaded page follows it again (the curve keeps growing, Stop still works), on this process or, through
the database, on another replica (modes/runs/mirror.py). When no page has followed a run for `grace_s`
seconds (every tab closed), a watchdog stops it. The watchdog looks at when a follower last ran, not at a
count of followers: a page that vanished before its first update leaves a suspended generator behind that
nobody ever closes.

In-call mode (modes/serving/heavy.py): on ZeroGPU a training's GPU call must be made by a request, so no
thread runs it; its first follower drives it (follow_driving), and the watchdog finishes it if that
follower goes quiet (drain)."""

from __future__ import annotations

import collections
import logging
import threading
import time
from typing import TYPE_CHECKING, Any, Callable, Iterator

from modes.runs import durable, mirror

if TYPE_CHECKING:
    from modes.runs.history import Run

FOLLOW_EVERY = 0.5  # seconds between a follower's redraws (it also checks in this often)


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


class Driving:
    """History's running and following (History inherits it): its runs, lock and clock are History's."""

    def update(self, run: Run, **changes) -> None:
        """Change a run and wake whoever follows it."""
        with self._cond:
            for k, v in changes.items():
                setattr(run, k, v)
            run.version += 1
            run.last_used = self.clock()
            self._cond.notify_all()
        durable.save_run(self, run)

    def start(self, run: Run, events: Iterator, fold: Callable[[Run, Any], dict | None], inline: bool = False) -> None:
        """Drive `events` (a run_job generator) in a thread of its own; `fold(run, job_event)` turns
        each event into changes of the run. The run ends (done, stopped, left or failed) only when
        the job has finished, so a finished run never still holds the training slot.
        `inline`: no thread; the first page to follow the run drives it from its own request (in-call
        mode: the GPU call must be made by the request, modes/serving/heavy.py)."""
        driver = self._drive(run, events, fold)
        if inline:
            run.driver = driver
            return
        threading.Thread(target=lambda: collections.deque(driver, 0), name=f"run-{run.id}", daemon=True).start()

    def _drive(self, run: Run, events: Iterator, fold) -> Iterator[None]:
        """Fold every event into the run (yielding after each); end it with its outcome, or as failed."""
        try:
            for ev in events:
                changes = fold(run, ev)
                if changes is not None:
                    self.update(run, **changes)
                yield
            # No outcome: a stopped replay, or a learner who left the queue, gave no result.
            self.update(run, status=run.outcome or ("left" if run.status in ("starting", "queued") else "stopped"))
        except GeneratorExit:  # the request driving it closed (in-call mode): the run ends here, stopped
            events.close()
            self.update(run, status=run.outcome or "stopped")
            raise
        except Exception as exc:  # reported to every follower, the app keeps serving

            logging.getLogger(__name__).exception("run %s failed", run.id)
            self.update(run, status="failed", error=exc)

    def follow(self, run: Run, every: float = FOLLOW_EVERY) -> Iterator[Run]:
        """Yield the run whenever it changed (at most every `every` s) until it ends, then once more.
        Each pass marks the run as followed; the watchdog stops a run nobody has followed lately.
        A run started `inline` is driven by its first follower, from that follower's request."""
        self._watch()
        with self._cond:
            driver = run.__dict__.pop("driver", None)
        if driver is not None:
            yield from follow_driving(self, run, driver, every)
            return
        seen = -1
        while True:
            run.followed_at = self.clock()
            if not run.here:  # another process drives it: its changes arrive through the database
                mirror.sync(self)
                mirror.followed_elsewhere(self, run)
            with self._cond:
                self._cond.wait_for(lambda: run.version != seen or not run.active, timeout=every)
                changed, done, seen = run.version != seen, not run.active, run.version
            run.followed_at = self.clock()
            if changed or done:
                yield run
            if done:
                return
            time.sleep(every)  # a redraw at most every `every` s, whatever the step rate

    def _watch(self) -> None:
        """Start the watchdog once: every active run followed by nobody for grace_s is stopped."""
        with self._cond:
            if getattr(self, "_watchdog", None) is not None:
                return
            self._watchdog = threading.Thread(target=self._watch_loop, name="runs-watchdog", daemon=True)
        self._watchdog.start()

    def _watch_loop(self) -> None:
        while True:
            time.sleep(min(1.0, max(0.05, self.grace_s / 4)))
            self.stop_orphans()

    def stop(self, run: Run) -> None:
        """Stop a run (or take it out of the queue), wherever it is driven: here at once, on another process
        through the database (that process checks every second)."""
        if run.here:
            run.stop.set()
        elif run.active and self.store is not None:
            try:
                self.store.request_stop(run.id)
            except Exception:
                logging.getLogger(__name__).exception("could not ask for run %s to stop", run.id)

    def _tick(self) -> None:
        """Every second, from the liveness thread: stops asked for on other processes, and runs cut by them."""
        asked = set(self.store.stop_requests(self.live.id))
        with self._cond:
            mine = [r for runs in self._owners.values() for r in runs.values() if r.id in asked and r.here]
        for run in mine:
            run.stop.set()
        mirror.sync(self)

    def stop_orphans(self) -> list[Run]:
        """Stop every active run that no page has followed for the grace period; returns them."""
        stale = self.clock() - self.grace_s - 2 * FOLLOW_EVERY  # a live follower checks in every 2 x FOLLOW_EVERY
        with self._cond:
            orphans = [r for runs in self._owners.values() for r in runs.values() if r.active and r.here and r.followed_at < stale]
        if orphans and mirror.shared(self):  # a page on another process may follow it (mirror.followed_elsewhere)
            try:
                wall = self.store.followed([r.id for r in orphans])
            except Exception:
                wall = {}
            now = time.time()
            for r in [r for r in orphans if (wall.get(r.id) or 0) > now - self.grace_s]:
                r.followed_at = self.clock() - (now - wall[r.id])
                orphans.remove(r)
        for run in orphans:
            run.stop.set()
            driving = run.__dict__.pop("driving", None)
            if driving is not None:  # an in-call run whose request went quiet: drive it to its stopped end here
                threading.Thread(target=drain, args=(driving, run), name=f"run-{run.id}-orphan", daemon=True).start()
        return orphans
