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
    now = time.monotonic()
    if not force and run.status == run.saved_status and now - run.saved_at < SAVE_EVERY:
        return
    points = run.curve[run.saved_points:]
    step = max((int(p["x"]) for p in run.curve if isinstance(p["x"], (int, float))), default=0)
    row = {"id": run.id, "owner": run.owner, "kind": run.kind, "status": run.status, "step": step, "created": run.created,
           "adapter_file": Path(run.adapter_path).name if run.adapter_path else None, "adapter_sha256": run.adapter_sha256,
           "adapter_bytes": run.adapter_bytes}
    doc = {"settings": run.settings, "axes": list(run.axes), "samples": run.samples, "summary": run.summary,
           "result": run.result, "adapter_meta": run.adapter_meta, "interrupted_at": run.interrupted_at,
           "error": None if run.error is None else str(run.error)}
    if _write(history, history.store.put_run, row, doc, points, run.saved_points):
        run.saved_points += len(points)
        run.saved_status, run.saved_at = run.status, now


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
    """Read every owner and run back (History.__init__); returns the highest run number seen. Runs that
    were active are marked interrupted; an adapter whose file is missing or altered is dropped."""
    owners, rows = history.store.load()
    now_wall, now = time.time(), history.clock()
    top = 0
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
        run.saved_points, run.saved_status = len(run.curve), run.status
        path = history.folder / r["owner"] / r["adapter_file"] if r["adapter_file"] else None
        if path is not None and path.is_file() and sha256_of(path.read_bytes()) == r["adapter_sha256"]:
            run.adapter_path, run.adapter_bytes, run.adapter_sha256 = str(path), r["adapter_bytes"], r["adapter_sha256"]
            history.chosen[run.owner] = run.id  # the newest kept adapter is the owner's chosen one
        if run.status in active:  # the process died while it ran
            run.status, run.interrupted_at = "interrupted", r["step"]
            save_run(history, run, force=True)
        history._owners.setdefault(run.owner, {})[run.id] = run
        try:
            top = max(top, int(run.id[:-2], 16))
        except ValueError:
            pass
    _remove_orphan_files(history)
    return top


def _remove_orphan_files(history) -> None:
    """Adapter files that no kept run names (a crash between writing a file and its row) are removed."""
    named = {Path(r.adapter_path) for runs in history._owners.values() for r in runs.values() if r.adapter_path}
    for path in Path(history.folder).glob("*/*.zip"):
        if path not in named:
            path.unlink(missing_ok=True)
