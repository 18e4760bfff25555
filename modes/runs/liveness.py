"""Which app processes are alive, what happens to the runs of one that died, and leases on shared work.

Each process keeps a row in `processes` with a beat counter it moves every second. Another process never
compares clocks: it remembers when it last saw each counter move, and a counter that has not moved for
`dead_after` seconds (HML_DEAD_AFTER_S, default 20) by its own clock belongs to a dead process. Any live
process then marks that process's active runs "interrupted at step N" (with Run again) and removes its row.
Those runs' rows are changed only while still active, and the dead process's later writes to them are refused
(Store.put_run), so a process that comes back never resurrects a run someone else marked.

At start a process also marks at once the runs of processes that are surely gone: with SQLite (one process,
locked) every other process; with PostgreSQL the earlier process in the same place (this host and data dir,
whose lock this process now holds), and runs written by code older than this (no process named).

A lease names work one process is computing (a training identical runs would replay, a shared result): the
other processes wait for its result instead of computing it again, and take the lease over if its holder dies.
"""

from __future__ import annotations

import logging
import os
import secrets
import threading
import time
from typing import Callable

import sqlalchemy as sa

from modes.runs.schema import LEASES, PROCESSES

log = logging.getLogger(__name__)
DEAD_AFTER_S = 20.0  # default: a process whose beat has not moved for this long is dead (HML_DEAD_AFTER_S)
EVERY_S = 1.0  # seconds between beats (and sweeps, and checks for stop requests)


def dead_after_default() -> float:
    try:
        return max(2.0, float(os.environ.get("HML_DEAD_AFTER_S", DEAD_AFTER_S)))
    except ValueError:
        return DEAD_AFTER_S


class Liveness:
    def __init__(self, store, place: str | None = None, dead_after: float | None = None,
                 clock: Callable[[], float] = time.monotonic):
        self.store, self.place, self.clock = store, place, clock
        self.dead_after = dead_after if dead_after is not None else dead_after_default()
        self.id = secrets.token_hex(8)
        self._seen: dict[str, tuple[int, float]] = {}  # process id -> (its beat, my clock when it last moved)
        self.ticks: list[Callable[[], None]] = []  # called after each beat (History: stop requests, cut runs)
        self._thread: threading.Thread | None = None
        self._register()

    def _register(self) -> None:
        now = time.time()
        with self.store.engine.begin() as c:
            c.execute(self.store.upsert(PROCESSES, {"id": self.id}, {"place": self.place, "started": now, "beat": 0, "seen": now}))

    def rows(self) -> list:
        with self.store.engine.connect() as c:
            return list(c.execute(sa.select(PROCESSES)))

    def beat(self) -> None:
        """Move this process's counter (its row is made again if another process took it for dead)."""
        with self.store.engine.begin() as c:
            moved = c.execute(sa.update(PROCESSES).where(PROCESSES.c.id == self.id)
                              .values(beat=PROCESSES.c.beat + 1, seen=time.time())).rowcount
        if not moved:
            log.warning("process %s was taken for dead by another replica: its runs were marked interrupted", self.id)
            self._register()

    def dead(self, rows: list) -> dict[str, int]:
        """{process id: its beat} of the processes whose beat has not moved for dead_after seconds (by my clock)."""
        now, out = self.clock(), {}
        for r in rows:
            if r.id == self.id:
                continue
            seen = self._seen.get(r.id)
            if seen is None or seen[0] != r.beat:
                self._seen[r.id] = (r.beat, now)
            elif now - seen[1] >= self.dead_after:
                out[r.id] = r.beat
        return out

    def _predicate(self, dead: set) -> Callable[[str | None], bool]:
        """is_dead(process) for Store.interrupt. The live processes are read when it is first asked, after the active
        runs were read: a process that started in between already has its row, so its new runs are never taken."""
        live: list = []

        def is_dead(process) -> bool:
            if not live:
                live.append({r.id for r in self.rows()})
            return process != self.id and (process is None or process not in live[0] or process in dead)

        return is_dead

    def sweep(self) -> list[str]:
        """Mark the runs of processes that stopped beating (and of none at all) interrupted; returns their ids."""
        dead = self.dead(self.rows())
        cut = self.store.interrupt(self._predicate(set(dead)))
        self._forget(dead)
        return cut

    def at_start(self, exclusive: bool) -> list[str]:
        """A process starting: the runs of processes that are surely gone are marked now (see the module's doc)."""
        rows = self.rows()
        gone = {r.id: r.beat for r in rows if r.id != self.id and (exclusive or (self.place is not None and r.place == self.place))}
        cut = self.store.interrupt(self._predicate(set(gone)))
        self._forget(gone)
        return cut

    def _forget(self, dead: dict) -> None:
        for pid, beat in dead.items():  # only if it has not beaten since: a process that came back keeps its row
            with self.store.engine.begin() as c:
                c.execute(sa.delete(PROCESSES).where((PROCESSES.c.id == pid) & (PROCESSES.c.beat == beat)))
            self._seen.pop(pid, None)

    def start(self, every: float = EVERY_S) -> None:
        """Beat, sweep and run the ticks every `every` seconds in a thread, for as long as the process lives."""
        if self._thread is not None:
            return

        def loop():
            while True:
                try:
                    self.beat()
                    cut = self.sweep()
                    if cut:
                        log.warning("runs of a process that stopped beating marked interrupted: %s", ", ".join(cut))
                    for tick in list(self.ticks):
                        tick()
                except Exception:  # a database that went away for a moment: try again next time
                    log.exception("liveness: could not beat or sweep")
                time.sleep(every)

        self._thread = threading.Thread(target=loop, name="liveness", daemon=True)
        self._thread.start()

    # ---- leases ----
    def holder(self) -> str:
        """A new holder name for one piece of work of this process."""
        return f"{self.id}/{secrets.token_hex(4)}"

    def take(self, key: str, holder: str) -> bool:
        """The lease on `key` for `holder`: True when it is (now) theirs. A lease whose process is dead (no row, or
        not beating) is taken over; one held by a live process, this one included, is not."""
        for _ in range(3):
            with self.store.engine.begin() as c:
                stmt = self.store.upsert(LEASES, {"key": key}, {"holder": holder, "taken": time.time()}, update=False)
                if c.execute(stmt.returning(LEASES.c.key)).first() is not None:  # (rowcount is -1 here on psycopg)
                    return True
                row = c.execute(sa.select(LEASES.c.holder).where(LEASES.c.key == key)).first()
            if row is not None:
                break
        else:  # taken and released three times over while we looked: let the caller wait and ask again
            return False
        if row.holder == holder:
            return True
        rows = self.rows()
        process = row.holder.split("/", 1)[0]
        if process in {r.id for r in rows} and process not in self.dead(rows):
            return False
        with self.store.engine.begin() as c:
            return bool(c.execute(sa.update(LEASES).where((LEASES.c.key == key) & (LEASES.c.holder == row.holder))
                                  .values(holder=holder, taken=time.time())).rowcount)

    def release(self, key: str, holder: str) -> None:
        with self.store.engine.begin() as c:
            c.execute(sa.delete(LEASES).where((LEASES.c.key == key) & (LEASES.c.holder == holder)))
