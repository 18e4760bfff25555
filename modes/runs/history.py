"""Every learner's runs: kept, bounded, private, and still running when the page reloads.

A learner is an *owner*: a 128-bit random id the server issues and the browser keeps
(gr.BrowserState), so a reload finds the same runs. Each training or sweep is a `Run` with its
settings, its whole curve and its summary; a fine-tune's adapter sits on disk beside it.

A training runs in its own thread, not in the request that started it: the request only *follows*
the run (modes/runs/drive.py: driving, following, the watchdog). A reloaded page follows it again.

Bounds: at most MAX_RUNS runs and MAX_ADAPTER_BYTES of adapters per owner (the oldest finished
runs go first, and the learner is told), and runs expire after TTL_S (HML_KEEP_DAYS, default 7) with their files.
"""

from __future__ import annotations

import itertools
import os
import re
import secrets
import shutil
import tempfile
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

from modes.runs import durable, mirror
from modes.runs.drive import FOLLOW_EVERY, Driving  # noqa: F401 - FOLLOW_EVERY: the follow pace, named here too
from modes.runs.jobs import StopFlag
from modes.runs.schema import ACTIVE

MAX_RUNS = 20  # per owner: enough to compare a morning's experiments, small enough to scan
MAX_ADAPTER_BYTES = 50 * 2**20  # per owner, on disk: about a dozen default adapters
# A run (and an owner with no runs) is forgotten this long after its last use, its files and rows too.
TTL_S = float(os.environ.get("HML_KEEP_DAYS", "7")) * 86400
GRACE_S = 60.0  # a training nobody follows (every tab closed) is stopped after this long
OWNER_RE = re.compile(r"[0-9a-f]{32}")


@dataclass
class Session:
    """One page's handle (gr.State): whose runs it shows, and how it draws curves."""

    owner: str | None = None
    view: dict = field(default_factory=dict)  # tab id -> {"smoothing": float, "log": bool}


@dataclass
class Run:
    id: str  # short and unique per app: shown to the learner ("#3f2a")
    kind: str  # the tab id: pretrain | finetune | incontext
    owner: str
    settings: dict  # what the learner chose (the compare view diffs these)
    created: float = field(default_factory=time.time)
    status: str = "starting"  # starting | queued | running, then done | stopped | failed | left
    curve: list = field(default_factory=list)  # rows {"x", "y", "series"}: the whole curve, raw
    axes: tuple = ("step", "loss")  # what x and y are
    samples: list = field(default_factory=list)  # pre-training's generated text, newest first
    summary: dict | None = None  # the result's JSON (what the API returns), once finished
    result: Any = None  # the compute's result object, to draw a reattached page's result (adapter bytes on disk)
    outcome: str | None = None  # the status the run ends with once its job has let go of the training slot
    adapter_meta: dict | None = None  # a fine-tune's Adapter fields, the bytes in `adapter_path`
    adapter_path: str | None = None
    adapter_bytes: int = 0
    replayed: Any = None  # the recording this run replays, if it does
    position: int = 0  # in the training queue, while queued
    wait: float = 0.0  # estimated seconds to wait, while queued
    error: str | None = None  # why it failed (shown as an error to whoever follows it)
    progress: Any = None  # the latest progress event
    stop: StopFlag = field(default_factory=StopFlag)
    version: int = 0  # bumped on every change: followers redraw when it moves
    followed_at: float = 0.0  # History.clock() when a page last followed it (the watchdog reads it)
    last_used: float = 0.0  # History.clock() at its last change
    interrupted_at: int | None = None  # the step it reached when the process died (a restart marks it so)
    adapter_sha256: str | None = None  # the adapter file's checksum, kept in the store
    saved_points: int = 0  # curve points already in the store
    saved_status: str = ""  # the status last written to the store
    saved_at: float = 0.0  # when it was last written (monotonic)
    here: bool = True  # driven by this process (False: another replica's run, mirrored from the database)
    db_updated: float | None = None  # the `updated` of its row as last written or read here

    @property
    def active(self) -> bool:
        return self.status in ACTIVE

    def public(self) -> dict:
        """What the API says of a run: settings and summary, no curve and no tensors."""
        return {"id": self.id, "kind": self.kind, "status": self.status, "created": time.strftime(
            "%Y-%m-%d %H:%M:%S", time.localtime(self.created)), "settings": self.settings, "summary": self.summary,
            "has_adapter": self.adapter_path is not None or self.adapter_sha256 is not None, **({"interrupted_at": self.interrupted_at}
                                                             if self.status == "interrupted" else {})}


class History(Driving):
    def __init__(self, folder: Path | str | None = None, grace_s: float = GRACE_S, ttl_s: float = TTL_S,
                 max_runs: int = MAX_RUNS, max_adapter_bytes: int = MAX_ADAPTER_BYTES,
                 clock: Callable[[], float] = time.monotonic, store=None):

        self.folder = Path(folder) if folder else Path(tempfile.mkdtemp(prefix="hml-runs-"))
        self.grace_s, self.ttl_s = grace_s, ttl_s
        self.clock = clock  # seconds, for the TTL and the grace period: tests pass a clock they move by hand
        self.max_runs, self.max_adapter_bytes = max_runs, max_adapter_bytes
        self._owners: dict[str, dict[str, Run]] = {}  # owner -> run id -> run (insertion order = age)
        self._seen: dict[str, float] = {}  # owner -> last use
        self._cond = threading.Condition()
        self._ids = itertools.count(1)
        self.dropped: dict[str, list[str]] = {}  # owner -> ids dropped by the caps, not yet told
        self.chosen: dict[str, str] = {}  # owner -> the fine-tune run whose adapter the in-context tab uses
        # The durable store (modes/runs/store.py), or None: memory only (tests, and a store that failed to open).
        self.store = store
        self.unsaved = False  # a write to the store failed: some work lives only in memory
        self.owner_saved_at: dict[str, float] = {}
        self.save_lock = threading.Lock()  # one store write at a time: a run's points are numbered in order
        # With several processes on one database (modes/runs/mirror.py): when runs were last read back, under
        # which lock, and which run ids the database held then (a run gone since was deleted elsewhere).
        self.sync_lock, self.synced_at, self.db_ids = threading.Lock(), -1e9, set()
        self.live = None  # this process's row and heartbeat (modes/runs/liveness.py), with a store
        if store is not None:
            from modes.runs.liveness import Liveness
            from modes.runs.place import place_of

            self.live = Liveness(store, place_of(self.folder))
            self.live.ticks.append(self._tick)
            self._ids = itertools.count(durable.restore(self, Run, ACTIVE) + 1)

    # ---- owners ----------------------------------------------------------------------------------
    def issue(self) -> str:
        owner = secrets.token_hex(16)  # 128 random bits
        with self._cond:
            self._owners[owner], self._seen[owner] = {}, self.clock()
        durable.owner_seen(self, owner, force=True)
        return owner

    def known(self, owner) -> bool:
        """Only ids this server issued (and has not expired) count; anything else is nobody."""
        if not isinstance(owner, str) or not OWNER_RE.fullmatch(owner):
            return False
        self.expire()
        with self._cond:
            if owner in self._owners:
                return True
        if not mirror.shared(self):
            return False
        try:  # issued by another process a moment ago (its token works on every replica)
            found = self.store.owner_exists(owner)
        except Exception:
            return False
        if found:
            with self._cond:
                self._owners.setdefault(owner, {})
                self._seen[owner] = self.clock()
        return found

    def owner_of(self, session: Session | None) -> str:
        """The session's owner, issued on first use (an API client gets one per client session)."""
        if session is None:
            return self.issue()  # no session to keep it in: a run nobody can list later
        if not self.known(session.owner):
            session.owner = self.issue()
        self._touch(session.owner)
        return session.owner

    def attach(self, session: Session, browser_owner) -> str:
        """A page opened: take the browser's owner id if this server issued it, else a new one."""
        session.owner = browser_owner if self.known(browser_owner) else self.issue()
        self._touch(session.owner)
        return session.owner

    def claim(self, session: Session, token) -> None:
        """An API call carrying an owner token (X-HML-Owner) acts as that owner when this server issued it.
        Any other token (unknown, malformed, expired) acts as nobody: the session is given no owner, so
        it sees no runs (a run it starts gets a new owner), and nothing says why."""
        if self.known(token):
            session.owner = token
            self._touch(token)
        else:
            session.owner = None

    def _touch(self, owner: str) -> None:
        with self._cond:
            self._seen[owner] = self.clock()
        durable.owner_seen(self, owner)

    # ---- runs ------------------------------------------------------------------------------------
    def new_run(self, owner: str, kind: str, settings: dict, axes: tuple = ("step", "loss")) -> Run:
        mirror.sync(self)  # the owner's runs on other processes count toward the caps
        run = Run(id=f"{next(self._ids):x}{secrets.token_hex(2)}", kind=kind, owner=owner, settings=settings, axes=axes)
        run.followed_at = run.last_used = self.clock()
        with self._cond:
            runs = self._owners.setdefault(owner, {})
            runs[run.id] = run
            self._enforce(owner)
        durable.save_run(self, run, force=True)
        return run

    def runs(self, owner: str | None, kind: str | None = None) -> list[Run]:
        """The owner's runs, newest first (none for an id this server did not issue)."""
        if not self.known(owner):
            return []
        mirror.sync(self)
        with self._cond:
            out = [r for r in self._owners.get(owner, {}).values() if kind is None or r.kind == kind]
        return out[::-1]

    def runs_of(self, owners) -> dict[str, list[Run]]:
        """Many owners' runs at once, oldest first (a class board's read: one lock, no expiry pass per owner)."""
        mirror.sync(self)
        with self._cond:
            return {o: list(self._owners.get(o, {}).values()) for o in owners}

    def get(self, owner: str | None, run_id) -> Run | None:
        if not self.known(owner):
            return None
        mirror.sync(self)
        with self._cond:
            return self._owners.get(owner, {}).get(str(run_id))

    def active(self, owner: str | None, kind: str) -> Run | None:
        return next((r for r in self.runs(owner, kind) if r.active), None)

    def best(self, owner: str | None, kind: str, score: Callable[[dict], float]) -> tuple[Run | None, int]:
        """The owner's best finished run of a kind (higher score is better) and how many there are."""
        done = [r for r in self.runs(owner, kind) if r.summary is not None]
        return (max(done, key=lambda r: score(r.summary)) if done else None), len(done)

    def delete(self, owner: str | None, run_id) -> bool:
        run = self.get(owner, run_id)
        if run is None or run.active:
            return False
        with self._cond:
            self._owners[owner].pop(run.id, None)
        self._remove_files(run)
        durable.forget_run(self, run)
        return True

    def take_dropped(self, owner: str | None) -> list[str]:
        with self._cond:
            return self.dropped.pop(owner, []) if owner else []

    def adapter_bytes_of(self, owner: str | None, run_id=None) -> tuple[Run, bytes] | None:
        """(run, adapter zip) of the owner's chosen fine-tune (or of `run_id`), if it is still kept."""
        run = self.get(owner, run_id if run_id is not None else self.chosen.get(owner or ""))
        if run is None and run_id is None and owner not in self.chosen:  # none chosen here: the newest one kept (it may be another replica's)
            run = next((r for r in self.runs(owner, "finetune") if r.adapter_sha256 or r.adapter_path), None)
        if run is None or not durable.adapter_here(self, run):
            return None
        return run, Path(run.adapter_path).read_bytes()

    def save_adapter(self, run: Run, zip_bytes: bytes, meta: dict) -> None:
        """Keep a fine-tune's adapter on disk with its run (the session holds its own copy); the
        newest one is the owner's chosen adapter until they pick another."""
        folder = self.folder / run.owner
        folder.mkdir(parents=True, exist_ok=True)
        path = folder / f"{run.id}.zip"
        path.write_bytes(zip_bytes)
        with self._cond:
            run.adapter_path, run.adapter_bytes, run.adapter_meta = str(path), len(zip_bytes), meta
            run.adapter_sha256 = durable.sha256_of(zip_bytes)
            self.chosen[run.owner] = run.id
            self._enforce(run.owner)
        durable.save_adapter(self, run, zip_bytes)  # before the row names it: any replica can then serve it
        durable.save_run(self, run, force=True)

    def _enforce(self, owner: str) -> None:
        """The caps (holding the lock): drop the oldest finished runs until both hold."""
        runs = self._owners[owner]

        def over() -> bool:
            return len(runs) > self.max_runs or sum(r.adapter_bytes for r in runs.values()) > self.max_adapter_bytes

        for run in [r for r in runs.values() if not r.active]:  # oldest first
            if not over():
                break
            del runs[run.id]
            self.dropped.setdefault(owner, []).append(run.id)
            self._remove_files(run)
            durable.forget_run(self, run)

    def _remove_files(self, run: Run) -> None:
        if run.adapter_path:
            Path(run.adapter_path).unlink(missing_ok=True)

    def expire(self) -> None:
        """Forget runs unused for ttl_s (files too), and owners with no runs left and no recent use."""
        now = self.clock()
        with self._cond:
            for owner in list(self._owners):
                runs = self._owners[owner]
                for run in [r for r in runs.values() if not r.active and now - r.last_used > self.ttl_s]:
                    del runs[run.id]
                    self._remove_files(run)
                    durable.forget_run(self, run)
                if not runs and now - self._seen.get(owner, 0) > self.ttl_s:
                    del self._owners[owner]
                    durable.forget_owner(self, owner)
                    self._seen.pop(owner, None)
                    shutil.rmtree(self.folder / owner, ignore_errors=True)
