"""Results that are the same for every learner, computed once; trainings identical to a recorded one, replayed.

Like Gradio's cached examples: a key names everything a result depends on (settings, seed, a hash of
the data, the model's weights hash, the code's own hash, the torch version, the device and thread
count); the same key gives the same figures. ResultStore keeps small JSON results (the base model's
chrF for a given k-sweep point). ReplayStore keeps a whole training's recorded events (curve, samples,
result, adapter) so an identical run streams back in seconds instead of minutes. Both live in memory
and, when given a folder, on disk beside the model cache: results as JSON, recordings as JSON with their
bytes (an adapter's zip) in a safetensors file. With several processes on one database (`attach`), they
live in its `results` and `recordings` tables instead, the bytes as one safetensors blob, and a lease row
makes two processes that start the same work at once compute it once (the other waits and reuses it).
Nothing is pickled: a file or row is data, never code, and it decodes only into the dataclasses
registered with `recordable`.
"""

from __future__ import annotations

import json
import logging
import threading
import time
from collections import OrderedDict
from pathlib import Path

from modes.codec import blobs_from_bytes, blobs_from_file, blobs_to_bytes, blobs_to_file, decode, encode
from modes.runs.keys import key_of

LEASE_POLL_S = 1.0  # seconds between looks for the result of work another process holds the lease on

class _Shared:
    """The database behind a store, when other processes share it (None: memory and the folder only)."""

    db = live = None

    def attach(self, store, live) -> None:
        """Keep results in `store`'s tables (a shared database), with `live`'s leases (modes/runs/liveness.py)."""
        self.db, self.live = store, live

    def leased(self, k: str, ready, wait=time.sleep):
        """Run the body of a `with` as the only process computing key `k`: while another live process holds the
        lease, wait (LEASE_POLL_S) until `ready()` gives its result, and return that; else None, lease held.
        Without a shared database: None at once."""
        if self.db is None:
            return None, None
        holder = self.live.holder()
        while not self.live.take(k, holder):
            found = ready()
            if found is not None:
                return found, None
            wait(LEASE_POLL_S)
        return None, holder

    def unlease(self, k: str, holder) -> None:
        if holder is not None:
            try:
                self.live.release(k, holder)
            except Exception:  # the lease is taken over once this process stops beating
                pass


class ResultStore(_Shared):
    """Small JSON results by key, in memory and (with a folder) on disk, or in a shared database."""

    def __init__(self, folder: Path | None):
        self.folder = Path(folder) / "results" if folder else None
        self._d: dict = {}
        self._lock = threading.Lock()
        self._once = Once()

    def once(self, parts: dict, compute) -> tuple[dict, bool]:
        """(value, reused): the stored value, or compute() once while identical callers wait for it (callers in
        this process on a lock, callers on other processes on the database's lease)."""
        k = key_of(parts)
        with self._once(k):
            hit = self.get(parts)
            if hit is not None:
                return hit, True
            hit, holder = self.leased(k, lambda: self.get(parts))
            if hit is not None:
                return hit, True
            try:
                hit = self.get(parts)  # finished while we took the lease
                if hit is not None:
                    return hit, True
                t0 = time.perf_counter()
                value = compute()
                return self.put(parts, {**value, "seconds": round(time.perf_counter() - t0, 2)}), False
            finally:
                self.unlease(k, holder)

    def get(self, parts: dict) -> dict | None:
        k = key_of(parts)
        with self._lock:
            if k in self._d:
                return self._d[k]
        if self.db is not None:
            v = _db_get(self.db, k, with_blobs=False)
            if v is not None:
                v = json.loads(v[0])
                with self._lock:
                    self._d[k] = v
            return v
        if self.folder and (self.folder / f"{k}.json").exists():
            try:
                v = json.loads((self.folder / f"{k}.json").read_text(encoding="utf-8"))
            except (OSError, ValueError):
                return None
            with self._lock:
                self._d[k] = v
            return v
        return None

    def put(self, parts: dict, value: dict) -> dict:
        value = {**value, "computed_at": time.strftime("%Y-%m-%d %H:%M:%S")}
        k = key_of(parts)
        with self._lock:
            self._d[k] = value
        if self.db is not None:
            _db_put(self.db, k, json.dumps(value), None)
        elif self.folder:
            try:
                self.folder.mkdir(parents=True, exist_ok=True)
                tmp = self.folder / f"{k}.tmp"
                tmp.write_text(json.dumps(value), encoding="utf-8")
                tmp.replace(self.folder / f"{k}.json")
            except OSError:
                pass  # a read-only disk: memory only
        return value


class Recording:
    """A training's events as its compute yielded them, plus when and how long it ran."""

    def __init__(self, events: list, seconds: float, recorded_at: str | None = None):
        self.events, self.seconds = events, seconds
        self.recorded_at = recorded_at or time.strftime("%Y-%m-%d %H:%M:%S")


class ReplayStore(_Shared):
    """Recorded trainings by key: an LRU in memory, and on disk as JSON plus a safetensors file of bytes (or in
    a shared database: a row of JSON and one safetensors blob)."""

    def __init__(self, folder: Path | None, size: int = 32):
        self.folder = Path(folder) / "replays" if folder else None
        self.size = size
        self._d: OrderedDict = OrderedDict()
        self._lock = threading.Lock()

    def get(self, parts: dict) -> Recording | None:
        k = key_of(parts)
        with self._lock:
            if k in self._d:
                self._d.move_to_end(k)
                return self._d[k]
        if self.db is not None:
            row = _db_get(self.db, k, with_blobs=True)
            if row is None:
                return None
            try:
                doc = json.loads(row[0])
                rec = Recording(decode(doc["events"], blobs_from_bytes(row[1]) if row[1] else {}), float(doc["seconds"]),
                                str(doc["recorded_at"]))
            except Exception:  # written by other code: not a recording this code can replay
                return None
            self._remember(k, rec)
            return rec
        path = self.folder / f"{k}.json" if self.folder else None
        if path and path.exists():
            try:
                doc = json.loads(path.read_text(encoding="utf-8"))
                blobs = blobs_from_file(self.folder / f"{k}.safetensors") if doc.get("blobs") else {}
                rec = Recording(decode(doc["events"], blobs), float(doc["seconds"]), str(doc["recorded_at"]))
            except Exception:  # a stale, partial or foreign file is simply not a recording
                return None
            self._remember(k, rec)
            return rec
        return None

    def put(self, parts: dict, rec: Recording) -> None:
        k = key_of(parts)
        self._remember(k, rec)
        if self.db is not None:
            try:
                blobs: dict = {}
                doc = {"format": 1, "seconds": rec.seconds, "recorded_at": rec.recorded_at, "events": encode(rec.events, blobs)}
                _db_put(self.db, k, json.dumps(doc), blobs_to_bytes(blobs) if blobs else None, recording=True)
            except Exception:  # an event that cannot be recorded, or a database that failed: memory only
                logging.getLogger(__name__).exception("a recording could not be kept in the database")
        elif self.folder:
            try:
                blobs: dict = {}
                doc = {"format": 1, "seconds": rec.seconds, "recorded_at": rec.recorded_at,
                       "events": encode(rec.events, blobs), "blobs": sorted(blobs)}
                self.folder.mkdir(parents=True, exist_ok=True)
                if blobs:  # the bytes first: the JSON's presence says the recording is whole
                    blobs_to_file(blobs, self.folder / f"{k}.safetensors.tmp")
                    (self.folder / f"{k}.safetensors.tmp").replace(self.folder / f"{k}.safetensors")
                tmp = self.folder / f"{k}.json.tmp"
                tmp.write_text(json.dumps(doc), encoding="utf-8")
                tmp.replace(self.folder / f"{k}.json")
            except (OSError, TypeError):
                pass  # a read-only disk, or an event that cannot be recorded: memory only

    def _remember(self, k: str, rec: Recording) -> None:
        with self._lock:
            self._d[k] = rec
            self._d.move_to_end(k)
            while len(self._d) > self.size:
                self._d.popitem(last=False)


def _db_get(store, k: str, with_blobs: bool):
    """(doc, blobs) of a result or recording row, or None."""
    import sqlalchemy as sa

    from modes.runs.schema import RECORDINGS, RESULTS

    t = RECORDINGS if with_blobs else RESULTS
    cols = [t.c.doc, t.c.blobs] if with_blobs else [t.c.doc]
    try:
        with store.engine.connect() as c:
            row = c.execute(sa.select(*cols).where(t.c.key == k)).first()
    except Exception:
        logging.getLogger(__name__).exception("a shared result could not be read")
        return None
    if row is None:
        return None
    return (row[0], bytes(row[1]) if with_blobs and row[1] is not None else None)


def _db_put(store, k: str, doc: str, blobs: bytes | None, recording: bool = False) -> None:
    from modes.runs.schema import RECORDINGS, RESULTS

    values = {"doc": doc, "created": time.time(), **({"blobs": blobs} if recording else {})}
    try:
        with store.engine.begin() as c:  # the first one written stays: an identical result, by its key
            c.execute(store.upsert(RECORDINGS if recording else RESULTS, {"key": k}, values, update=False))
    except Exception:
        logging.getLogger(__name__).exception("a shared result could not be kept in the database")


def replay(rec: Recording, should_stop=lambda: False, seconds: float = 6.0, sleep=time.sleep):
    """Yield a recording's events again at a readable pace: the whole run in about `seconds`."""
    n = max(1, len(rec.events) - 1)
    pause = seconds / n
    for i, ev in enumerate(rec.events):
        if should_stop() and i < len(rec.events) - 1:
            return  # a stopped replay ends without its result; the learner can train anew
        yield ev
        if i < len(rec.events) - 1:
            sleep(pause)


class Once:
    """Per-key locks: learners who ask for the same result at the same moment wait for one computation."""

    def __init__(self):
        self._locks: dict = {}
        self._lock = threading.Lock()

    def __call__(self, key: str) -> threading.Lock:
        with self._lock:
            return self._locks.setdefault(key, threading.Lock())
