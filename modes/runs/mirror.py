"""History's read-through: with several processes on one database, what the others wrote comes back here.

Each process drives its own runs and writes them through (modes/runs/durable.py). Everything else it shows,
the runs another replica drives or finished, a run someone marked interrupted, an owner issued elsewhere, it
reads from the database: `sync` compares every run's last write (one narrow query) and fetches only the rows
that moved, and only the curve points it does not have. Reads call it at most once every SYNC_EVERY seconds,
so a run started, finished or cut on another process shows here within about a second.

A single SQLite process has nothing to read back (`store.shared` is False) and never calls the database here.
"""

from __future__ import annotations

import logging
import time

log = logging.getLogger(__name__)
SYNC_EVERY = 1.0  # seconds: the longest a read may lag another process's write (plus the write's own throttle)
FOLLOWED_EVERY = 5.0  # seconds between a follower's "still watching" writes for a run another process drives


def shared(history) -> bool:
    return history.store is not None and getattr(history.store, "shared", False)


def sync(history, force: bool = False) -> None:
    """Bring every run and owner up to the database's state (at most every SYNC_EVERY s unless `force`)."""
    if not shared(history):
        return
    if not history.sync_lock.acquire(blocking=force):
        return  # another thread is syncing right now: its answer is as fresh as ours would be
    try:
        if not force and time.monotonic() - history.synced_at < SYNC_EVERY:
            return
        _sync(history)
        history.synced_at = time.monotonic()
    except Exception:  # the database went away for a moment: serve what we have, try again on the next read
        log.exception("could not read the other processes' runs; serving what this process has")
    finally:
        history.sync_lock.release()


def _sync(history) -> None:
    store = history.store
    heads = store.run_heads()
    owners = store.owner_rows()
    with history._cond:
        local = {r.id: r for runs in history._owners.values() for r in runs.values()}
    ids = {h.id for h in heads}
    fetch, cut = [], []
    for h in heads:
        run = local.get(h.id)
        if run is not None and run.here:
            if h.status == "interrupted" and run.active:
                cut.append(run)  # another process took ours for dead: stop driving it (see durable.cut)
            continue
        if run is None or run.db_updated != h.updated:
            fetch.append(h.id)
    # Runs that were in the database (read before, or written here) and are gone now: deleted elsewhere (caps, expiry).
    gone = [r for i, r in local.items() if i not in ids and (i in history.db_ids or r.saved_status) and not r.active]
    since = {i: len(local[i].curve) for i in fetch if i in local}
    rows = store.runs_full(fetch, since)
    now_wall, now = time.time(), history.clock()
    with history._cond:
        for owner, seen_at in owners.items():
            if owner not in history._owners:
                history._owners[owner] = {}
                history._seen[owner] = now - max(0.0, now_wall - seen_at)
        touched = set()
        for row in rows:
            if row["doc"] is not None:
                touched.add(_apply(history, local.get(row["id"]), row, since.get(row["id"], 0)))
        for run in gone:
            history._owners.get(run.owner, {}).pop(run.id, None)
        for owner in touched:  # runs keep their age order (the caps drop the oldest, lists show the newest first)
            runs = history._owners[owner]
            history._owners[owner] = dict(sorted(runs.items(), key=lambda kv: (kv[1].created, kv[1].id)))
        history.db_ids = ids
        history._cond.notify_all()
    for run in cut:
        from modes.runs import durable

        durable.cut(history, run)


def _apply(history, run, row: dict, since: int) -> str:
    """Make (or update) the mirror of a run another process writes; returns its owner."""
    from modes.runs.history import Run

    doc = row["doc"]
    fields = dict(status=row["status"], settings=doc["settings"], axes=tuple(doc["axes"]), samples=doc["samples"],
                  summary=doc["summary"], result=doc["result"], adapter_meta=doc["adapter_meta"],
                  interrupted_at=doc.get("interrupted_at"), error=doc.get("error"), progress=doc.get("progress"),
                  position=doc.get("position") or 0, wait=doc.get("wait") or 0.0, replayed=light_recording(doc.get("replayed")),
                  adapter_sha256=row["adapter_sha256"], adapter_bytes=row["adapter_bytes"])
    now = history.clock()
    if run is None:
        run = Run(id=row["id"], kind=row["kind"], owner=row["owner"], created=row["created"], curve=list(row["curve"]), **fields)
        run.here, run.followed_at = False, now
        run.saved_points, run.saved_status = len(run.curve), run.status
        history._owners.setdefault(run.owner, {})[run.id] = run
    else:
        for k, v in fields.items():
            setattr(run, k, v)
        run.curve.extend(row["curve"])  # the points from len(curve) on (`since`: only this sync adds to a mirror's curve)
        run.version += 1
    run.last_used = now - max(0.0, time.time() - row["updated"])
    run.db_updated = row["updated"]
    return run.owner


def light_recording(info: dict | None):
    """What a mirror knows of the recording a run replays: when it was recorded and how long it took (no events)."""
    if not info:
        return None
    from modes.runs.reuse import Recording

    return Recording([], float(info["seconds"]), str(info["recorded_at"]))


def followed_elsewhere(history, run) -> None:
    """A page here follows a run another process drives: say so in the database (every FOLLOWED_EVERY s), so
    that process's watchdog does not stop a run nobody follows *there*."""
    last = run.__dict__.get("followed_written", 0.0)
    if time.monotonic() - last < FOLLOWED_EVERY:
        return
    run.__dict__["followed_written"] = time.monotonic()
    try:
        history.store.mark_followed(run.id, time.time())
    except Exception:
        log.exception("could not mark run %s followed", run.id)
