"""Results that are the same for every learner, computed once; trainings identical to a recorded one, replayed.

Like Gradio's cached examples: a key names everything a result depends on (settings, seed, a hash of
the data, the model's weights hash, the code's own hash, the torch version, the device and thread
count); the same key gives the same figures. ResultStore keeps small JSON results (the base model's
chrF for a given k-sweep point). ReplayStore keeps a whole training's recorded events (curve, samples,
result, adapter) so an identical run streams back in seconds instead of minutes. Both live in memory
and, when given a folder, on disk beside the model cache: results as JSON, recordings as JSON with their
bytes (an adapter's zip) in a safetensors file. Nothing is pickled: a file in a shared folder is data,
never code, and it decodes only into the dataclasses registered with `recordable`.
"""

from __future__ import annotations

import hashlib
import json
import threading
import time
from collections import OrderedDict
from pathlib import Path

from modes.codec import blobs_from_file, blobs_to_file, decode, encode

MODES_DIR = Path(__file__).resolve().parents[1]
_code_hashes: dict = {}


def code_version(*parts: str) -> str:
    """A hash of the named parts of modes/: a package folder ("serving": every .py in it) or a module
    ("metrics"). Naming packages, not files, keeps a result's key right when a package gains a file.
    A code change makes old results unusable."""
    key = tuple(sorted(parts))
    if key not in _code_hashes:
        h = hashlib.sha256()
        for name in key:
            path = MODES_DIR / name
            files = sorted(path.rglob("*.py")) if path.is_dir() else [MODES_DIR / f"{name}.py"]
            if not files or not files[0].exists():
                raise FileNotFoundError(f"code_version: no modes/{name} (package or module)")
            for f in files:
                h.update(str(f.relative_to(MODES_DIR)).encode())
                h.update(f.read_bytes())
        _code_hashes[key] = h.hexdigest()[:16]
    return _code_hashes[key]


def runtime() -> dict:
    """What else can change a float: torch version, device and thread count."""
    import torch

    return {"torch": torch.__version__, "threads": torch.get_num_threads()}


def key_of(parts: dict) -> str:
    return hashlib.sha256(json.dumps(parts, sort_keys=True, default=str).encode()).hexdigest()[:32]


def text_hash(*texts) -> str:
    h = hashlib.sha256()
    for t in texts:
        h.update(json.dumps(t, ensure_ascii=False, default=str).encode())
    return h.hexdigest()[:16]


class ResultStore:
    """Small JSON results by key, in memory and (with a folder) on disk."""

    def __init__(self, folder: Path | None):
        self.folder = Path(folder) / "results" if folder else None
        self._d: dict = {}
        self._lock = threading.Lock()
        self._once = Once()

    def once(self, parts: dict, compute) -> tuple[dict, bool]:
        """(value, reused): the stored value, or compute() once while identical callers wait for it."""
        with self._once(key_of(parts)):
            hit = self.get(parts)
            if hit is not None:
                return hit, True
            t0 = time.perf_counter()
            value = compute()
            return self.put(parts, {**value, "seconds": round(time.perf_counter() - t0, 2)}), False

    def get(self, parts: dict) -> dict | None:
        k = key_of(parts)
        with self._lock:
            if k in self._d:
                return self._d[k]
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
        if self.folder:
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


class ReplayStore:
    """Recorded trainings by key: an LRU in memory, and on disk as JSON plus a safetensors file of bytes."""

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
        if self.folder:
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
