"""Failed class joins, limited so that guessing a code stays infeasible and a school never locks its class out.

Only failed joins (an unknown code) are counted, never successful ones, per client address (modes/address.py):
- an address may fail PER_ADDRESS times in WINDOW_S: 40 learners behind one school address, each typing a
  wrong code once or twice, still all get in;
- when the whole app has seen more than GLOBAL failures in the window (someone guessing from many addresses),
  each address may fail only UNDER_ATTACK times: a learner with a typo or two still gets in, a guesser does not.
Over its limit, an address is refused (right code or not: else the limit would not limit guessing) until its
failures age out of the window. The arithmetic is in the README (*Teaching with it*, Privacy).

With one process the failures are kept in memory; with several on one database they are rows in it
(`join_failures`), so every replica counts every failure.
"""

from __future__ import annotations

import threading
import time
from collections import deque
from typing import Callable

import sqlalchemy as sa

from modes.runs.schema import JOIN_FAILURES

WINDOW_S = 600.0  # seconds a failure counts for
PER_ADDRESS = 60  # failures per address per window (a class of 40 behind one address, with typos)
GLOBAL = 300  # failures per window across every address, above which each address is held to UNDER_ATTACK
UNDER_ATTACK = 3  # failures per address per window while the app is being guessed at from many addresses
KEEP_S = 3600.0  # rows older than this are removed as new ones arrive


class JoinLimit:
    def __init__(self, store=None, clock: Callable[[], float] = time.time):
        self.store = store  # a shared database (several processes), or None: memory
        self.clock = clock
        self._mem: deque = deque()  # (time, address), oldest first
        self._lock = threading.Lock()

    def counts(self, address: str) -> tuple[int, int]:
        """(this address's failures, everyone's) in the window."""
        since = self.clock() - WINDOW_S
        address = address[:64]
        if self.store is not None:
            with self.store.engine.connect() as c:
                row = c.execute(sa.select(
                    sa.func.count().filter(JOIN_FAILURES.c.address == address), sa.func.count())
                    .where(JOIN_FAILURES.c.at > since)).one()
            return int(row[0]), int(row[1])
        with self._lock:
            while self._mem and self._mem[0][0] <= since:
                self._mem.popleft()
            return sum(a == address for _, a in self._mem), len(self._mem)

    def allowed(self, address: str) -> bool:
        mine, everyone = self.counts(address)
        return mine < PER_ADDRESS and (everyone < GLOBAL or mine < UNDER_ATTACK)

    def failed(self, address: str) -> None:
        now = self.clock()
        if self.store is not None:
            with self.store.engine.begin() as c:
                c.execute(sa.insert(JOIN_FAILURES).values(address=address[:64], at=now))
                c.execute(sa.delete(JOIN_FAILURES).where(JOIN_FAILURES.c.at < now - KEEP_S))
            return
        with self._lock:
            self._mem.append((now, address[:64]))
