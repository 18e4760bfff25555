"""History's writes through to the store (modes/runs/store.py), and its read back after a restart.

What a restart keeps: every owner, every run with its settings, status, whole curve, samples, summary
and result, and each fine-tune's adapter file (checked against its sha256). A run that was running when
the process died comes back as *interrupted*, at the last step its curve reached. Curve points are
written at most once a second while a run trains, and at once when its status changes: a kill loses at
most the last second of a curve, never a finished run. What a restart drops: live followers and queue
places (a page reloads and finds the run interrupted), replays in flight, and the sessions' own copies.
"""

from __future__ import annotations

import hashlib
import logging
import time
from pathlib import Path

from modes.runs.events import Step

log = logging.getLogger(__name__)
SAVE_EVERY = 1.0  # seconds between a training run's curve writes
TOUCH_EVERY = 60.0  # seconds between writes of an owner's last use


def _write(history, fn, *args) -> bool:
    """One store write; a failure (full disk, read-only dir, a lock past its timeout) is logged, and
    the app goes on from memory (`history.unsaved` says so)."""
    try:
        fn(*args)
        return True
    except Exception:  # any database or disk error: the learner's work stays in memory
        log.exception("the store could not save; serving from memory")
        history.unsaved = True
        return False


def save_run(history, run, force: bool = False) -> None:
    """Write the run's row and its new curve points (throttled while it trains, at once on a status change)."""
    if history.store is None:
        return
    with history.save_lock:
        _save_run(history, run, force)


def _save_run(history, run, force: bool) -> None:
    if not getattr(run, "here", True):
        return  # another process drives it and writes it; this one only mirrors it (modes/runs/mirror.py)
    now = time.monotonic()
    if not force and run.status == run.saved_status and now - run.saved_at < SAVE_EVERY:
        return
    points = run.curve[run.saved_points:]
    step = max((int(p["x"]) for p in run.curve if isinstance(p["x"], (int, float))), default=0)
    row = {"id": run.id, "owner": run.owner, "kind": run.kind, "status": run.status, "step": step, "created": run.created,
           "adapter_file": Path(run.adapter_path).name if run.adapter_path else None, "adapter_sha256": run.adapter_sha256,
           "adapter_bytes": run.adapter_bytes, "process": history.live.id if history.live else None}
    replayed = run.replayed
    # What a page on another process needs to draw the run as this one does: its progress line, its place in the
    # queue, and whether it replays a recording (when and how long the original took).
    doc = {"settings": run.settings, "axes": list(run.axes), "samples": run.samples, "summary": run.summary,
           "result": run.result, "adapter_meta": run.adapter_meta, "interrupted_at": run.interrupted_at,
           "error": None if run.error is None else str(run.error), "progress": run.progress if run.active and isinstance(run.progress, Step) else None,
           "position": run.position, "wait": run.wait,
           "replayed": None if replayed is None else {"recorded_at": replayed.recorded_at, "seconds": replayed.seconds}}
    try:
        state, updated = history.store.put_run(row, doc, points, run.saved_points)
    except Exception:  # any database or disk error: the learner's work stays in memory
        log.exception("the store could not save; serving from memory")
        history.unsaved = True
        return
    if state == "cut":
        cut(history, run)
        return
    run.saved_points += len(points)
    run.saved_status, run.saved_at, run.db_updated = run.status, now, updated


def cut(history, run) -> None:
    """Another process marked this process's run interrupted (it took this process for dead): stop driving it,
    and show it as the database has it. Nothing more of it is written."""
    run.stop.set()
    with history._cond:
        if run.status != "interrupted":
            run.status, run.here = "interrupted", False
            run.interrupted_at = max((int(p["x"]) for p in run.curve if isinstance(p["x"], (int, float))), default=0)
            run.version += 1
            history._cond.notify_all()


def owner_seen(history, owner: str, force: bool = False) -> None:
    if history.store is None:
        return
    now = time.monotonic()
    if force or now - history.owner_saved_at.get(owner, -1e9) >= TOUCH_EVERY:
        if _write(history, history.store.put_owner, owner, time.time()):
            history.owner_saved_at[owner] = now


def forget_run(history, run) -> None:
    if history.store is not None:
        _write(history, history.store.delete_run, run.id)


def forget_owner(history, owner: str) -> None:
    if history.store is not None:
        _write(history, history.store.delete_owner, owner)


def sha256_of(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def restore(history, run_cls, active: tuple) -> int:
    """Read every owner and run back (History.__init__); returns how many runs there are. Runs of processes that are
    surely gone are marked interrupted first (modes/runs/liveness.py); the runs other live processes drive come back
    as mirrors. An adapter whose local file is missing or altered is written again from the database, or dropped."""
    history.live.at_start(exclusive=not history.store.shared)
    owners, rows = history.store.load()
    now_wall, now = time.time(), history.clock()
    for owner, seen_at in owners.items():
        history._owners[owner] = {}
        history._seen[owner] = now - max(0.0, now_wall - seen_at)
    for r in rows:
        doc = r["doc"]
        if doc is None:
            continue  # a row this code cannot read (logged by the store): skipped, not fatal
        run = run_cls(id=r["id"], kind=r["kind"], owner=r["owner"], settings=doc["settings"], created=r["created"],
                      status=r["status"], curve=r["curve"], axes=tuple(doc["axes"]), samples=doc["samples"],
                      summary=doc["summary"], result=doc["result"], adapter_meta=doc["adapter_meta"],
                      interrupted_at=doc.get("interrupted_at"), error=doc.get("error"))
        run.followed_at, run.last_used = now, now - max(0.0, now_wall - r["updated"])
        run.saved_points, run.saved_status, run.db_updated = len(run.curve), run.status, r["updated"]
        run.here = False  # this process drives none of them: a live one's runs are another process's
        if r["adapter_file"] and _local_adapter(history, r):
            run.adapter_path = str(history.folder / r["owner"] / r["adapter_file"])
            run.adapter_bytes, run.adapter_sha256 = r["adapter_bytes"], r["adapter_sha256"]
            history.chosen[run.owner] = run.id  # the newest kept adapter is the owner's chosen one
        history._owners.setdefault(run.owner, {})[run.id] = run
    history.db_ids = {r["id"] for r in rows}
    if history.live.place is not None:  # no other live process writes files into this data dir (its lock is ours)
        _remove_orphan_files(history)
    return len(rows)


def _local_adapter(history, r: dict) -> bool:
    """The run's adapter file is in the data dir with its sha256, written again from the database if need be."""
    path = history.folder / r["owner"] / r["adapter_file"]
    if path.is_file() and sha256_of(path.read_bytes()) == r["adapter_sha256"]:
        return True
    try:
        kept = history.store.adapter(r["id"])
    except Exception:
        log.exception("the store could not read an adapter")
        kept = None
    if kept is None or sha256_of(kept[1]) != r["adapter_sha256"]:
        return False
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(kept[1])
    return True


def adapter_here(history, run) -> bool:
    """A run's adapter in this process's data dir: a run another replica trained has its bytes in the database."""
    if run.adapter_path and Path(run.adapter_path).is_file():
        return True
    if not run.adapter_sha256 or history.store is None:
        return False
    row = {"id": run.id, "owner": run.owner, "adapter_file": f"{run.id}.zip", "adapter_sha256": run.adapter_sha256}
    if not _local_adapter(history, row):
        return False
    run.adapter_path = str(history.folder / run.owner / f"{run.id}.zip")
    return True


def save_adapter(history, run, zip_bytes: bytes) -> None:
    if history.store is not None:
        _write(history, history.store.put_adapter, run.id, run.adapter_sha256, zip_bytes)


def _remove_orphan_files(history) -> None:
    """Adapter files that no kept run names (a crash between writing a file and its row) are removed."""
    named = {Path(r.adapter_path) for runs in history._owners.values() for r in runs.values() if r.adapter_path}
    for path in Path(history.folder).glob("*/*.zip"):
        if path not in named:
            path.unlink(missing_ok=True)
