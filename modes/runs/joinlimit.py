"""Failed class joins counted in the database, so that every replica sees every failure from an address."""

from __future__ import annotations

import time

import sqlalchemy as sa

from modes.runs.schema import JOIN_FAILURES

KEEP_S = 3600.0  # failures older than this are removed as new ones arrive


def record(store, address: str) -> None:
    now = time.time()
    with store.engine.begin() as c:
        c.execute(sa.insert(JOIN_FAILURES).values(address=address[:64], at=now))
        c.execute(sa.delete(JOIN_FAILURES).where(JOIN_FAILURES.c.at < now - KEEP_S))


def failures(store, address: str, window_s: float) -> int:
    """How many joins from `address` failed in the last `window_s` seconds, on any replica."""
    with store.engine.connect() as c:
        return c.execute(sa.select(sa.func.count()).select_from(JOIN_FAILURES).where(
            (JOIN_FAILURES.c.address == address[:64]) & (JOIN_FAILURES.c.at > time.time() - window_s))).scalar_one()
