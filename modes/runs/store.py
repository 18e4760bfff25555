"""The durable store: owners, runs, whole curves, adapters and classes in a real database, the truth for every process.

SQLAlchemy 2 Core, and the only code that touches the database (the tables are in schema.py). SQLite in WAL
mode by default (one file in the data dir, embedded, one process: a second process on the same file is
refused at start, naming HML_DATABASE_URL); any SQLAlchemy URL in HML_DATABASE_URL instead, e.g. PostgreSQL,
so that several replicas share one store. Adapters are kept as bytes in the database (any replica serves
them) and as files in the data dir (the local copy). Results are JSON (modes/codec.py), never pickles.

History (modes/runs/history.py) keeps live objects and writes through to this; with several processes it
also reads back what the others wrote (modes/runs/mirror.py). A failed write (a full disk, a read-only dir,
a lock that outlasts the busy timeout) is logged and the app keeps serving from memory.
"""

from __future__ import annotations

import fcntl
import json
import logging
import os
import time
from pathlib import Path

import sqlalchemy as sa

from modes.codec import decode, encode
from modes.runs.schema import ACTIVE, ADAPTERS, CLASSES, MEMBERS, OWNERS, POINTS, RUNS, create

_LOCKS: dict[str, int] = {}  # SQLite files this OS process holds the lock of: path -> fd


class StoreBusy(SystemExit):
    """A second process opened the SQLite file another process serves from: refused, never half-working."""


class Conflict(Exception):
    """A class row changed under us (another process wrote it): read it again and retry."""


def database_url(data_dir: Path) -> str:
    """HML_DATABASE_URL, else an SQLite file in the data dir."""
    return os.environ.get("HML_DATABASE_URL") or f"sqlite:///{Path(data_dir) / 'hml.sqlite3'}"


def upsert(engine, table, keys: dict, values: dict, update: bool = True):
    """INSERT ... ON CONFLICT DO UPDATE on SQLite and PostgreSQL (one statement: no race between two writers);
    `update=False`: ON CONFLICT DO NOTHING (the statement's rowcount says whether it inserted)."""
    name = engine.dialect.name
    if name == "postgresql":
        from sqlalchemy.dialects.postgresql import insert
    elif name == "sqlite":
        from sqlalchemy.dialects.sqlite import insert
    else:
        raise NotImplementedError(f"the store speaks SQLite and PostgreSQL, not {name}")
    stmt = insert(table).values(**keys, **values)
    if update and values:
        return stmt.on_conflict_do_update(index_elements=list(keys), set_=values)
    return stmt.on_conflict_do_nothing(index_elements=list(keys))


class Store:
    def __init__(self, url: str, shared: bool | None = None):
        self.url = url
        self.engine = sa.create_engine(url, future=True, pool_pre_ping=True)
        self.sqlite = self.engine.dialect.name == "sqlite"
        if self.sqlite:
            sa.event.listen(self.engine, "connect", _sqlite_pragmas)
            _lock_sqlite(self.engine.url.database)
        # shared: other processes may write this database, so reads go to it (modes/runs/mirror.py). SQLite is
        # one process's (locked above); tests pass shared=True to check the mirror without a server.
        self.shared = (not self.sqlite) if shared is None else shared
        create(self.engine)

    def upsert(self, table, keys: dict, values: dict, update: bool = True):
        return upsert(self.engine, table, keys, values, update)

    # ---- owners ----
    def put_owner(self, owner: str, seen_at: float) -> None:
        with self.engine.begin() as c:
            c.execute(self.upsert(OWNERS, {"id": owner}, {"seen_at": seen_at}))

    def owner_exists(self, owner: str) -> bool:
        with self.engine.connect() as c:
            return c.execute(sa.select(OWNERS.c.id).where(OWNERS.c.id == owner)).first() is not None

    def owner_rows(self) -> dict:
        with self.engine.connect() as c:
            return {r.id: r.seen_at for r in c.execute(sa.select(OWNERS))}

    def delete_owner(self, owner: str) -> None:
        with self.engine.begin() as c:
            ids = [r.id for r in c.execute(sa.select(RUNS.c.id).where(RUNS.c.owner == owner))]
            if ids:
                c.execute(sa.delete(POINTS).where(POINTS.c.run_id.in_(ids)))
                c.execute(sa.delete(ADAPTERS).where(ADAPTERS.c.run_id.in_(ids)))
            c.execute(sa.delete(RUNS).where(RUNS.c.owner == owner))
            c.execute(sa.delete(OWNERS).where(OWNERS.c.id == owner))

    # ---- runs ----
    def put_run(self, row: dict, doc: dict, points: list[dict], first_seq: int) -> tuple[str, float]:
        """Insert or update a run's row, and append its curve points from `first_seq` on. Returns ("ok", updated),
        or ("cut", updated) when another process has marked the run interrupted (its process stopped beating):
        nothing is written then, so a process that comes back never resurrects a run someone else marked."""
        blobs: dict = {}
        values = {**row, "doc": json.dumps(encode(doc, blobs)), "updated": time.time()}
        if blobs:
            raise TypeError("a run's document holds no bytes (adapters are kept apart)")
        with self.engine.begin() as c:
            done = c.execute(sa.update(RUNS).where((RUNS.c.id == row["id"]) & (RUNS.c.status != "interrupted"))
                             .values(**values)).rowcount
            if done == 0:
                if c.execute(sa.select(RUNS.c.id).where(RUNS.c.id == row["id"])).first() is not None:
                    return "cut", values["updated"]
                c.execute(sa.insert(RUNS).values(**values))
            if points:
                c.execute(sa.insert(POINTS), [{"run_id": row["id"], "seq": first_seq + i, "x": p["x"], "y": _num(p["y"]),
                                               "series": p["series"]} for i, p in enumerate(points)])
        return "ok", values["updated"]

    def delete_run(self, run_id: str) -> None:
        with self.engine.begin() as c:
            c.execute(sa.delete(POINTS).where(POINTS.c.run_id == run_id))
            c.execute(sa.delete(ADAPTERS).where(ADAPTERS.c.run_id == run_id))
            c.execute(sa.delete(RUNS).where(RUNS.c.id == run_id))

    def load(self) -> tuple[dict, list[dict]]:
        """({owner: seen_at}, [run rows with "doc" decoded and "curve" filled]), runs oldest first."""
        with self.engine.connect() as c:
            ids = [r.id for r in c.execute(sa.select(RUNS.c.id))]
        return self.owner_rows(), self.runs_full(ids, {})

    def run_heads(self) -> list:
        """Every run's id, owner, status, process and last write: what a mirror compares (no documents)."""
        with self.engine.connect() as c:
            return list(c.execute(sa.select(RUNS.c.id, RUNS.c.owner, RUNS.c.status, RUNS.c.process, RUNS.c.updated)))

    def runs_full(self, ids: list[str], since: dict) -> list[dict]:
        """The rows of `ids` (oldest first), "doc" decoded, "curve" holding the points from `since[id]` (default 0) on."""
        if not ids:
            return []
        rows, curves = [], {}
        with self.engine.connect() as c:
            for chunk in _chunks(ids, 500):
                rows += [dict(r._mapping) for r in c.execute(sa.select(RUNS).where(RUNS.c.id.in_(chunk)))]
                q = sa.select(POINTS).where(POINTS.c.run_id.in_(chunk)).order_by(POINTS.c.run_id, POINTS.c.seq)
                for p in c.execute(q):
                    if p.seq >= since.get(p.run_id, 0):
                        curves.setdefault(p.run_id, []).append({"x": _whole(p.x), "y": float("nan") if p.y is None else p.y,
                                                                "series": p.series})
        rows.sort(key=lambda r: (r["created"], r["id"]))
        for r in rows:
            try:
                r["doc"] = decode(json.loads(r["doc"]), {})
            except ValueError:  # written by other code (a type it no longer has): the run is skipped
                logging.getLogger(__name__).warning("run %s could not be read back; skipped", r["id"])
                r["doc"] = None
            r["curve"] = curves.get(r["id"], [])
        return rows

    def interrupt(self, is_dead) -> list[str]:
        """Mark every active run whose process `is_dead(process)` as interrupted at its step; returns their ids.
        Each row is changed only if it is still active and still that process's (another marker may have won)."""
        with self.engine.connect() as c:
            rows = list(c.execute(sa.select(RUNS.c.id, RUNS.c.process, RUNS.c.step, RUNS.c.doc).where(RUNS.c.status.in_(ACTIVE))))
        cut = []
        for r in rows:
            if not is_dead(r.process):
                continue
            doc = json.loads(r.doc)
            doc["interrupted_at"] = r.step
            same = RUNS.c.process.is_(None) if r.process is None else RUNS.c.process == r.process
            with self.engine.begin() as c:
                if c.execute(sa.update(RUNS).where((RUNS.c.id == r.id) & RUNS.c.status.in_(ACTIVE) & same)
                             .values(status="interrupted", doc=json.dumps(doc), updated=time.time())).rowcount:
                    cut.append(r.id)
        return cut

    def request_stop(self, run_id: str) -> None:
        with self.engine.begin() as c:
            c.execute(sa.update(RUNS).where(RUNS.c.id == run_id).values(stop_req=1))

    def stop_requests(self, process: str) -> list[str]:
        with self.engine.connect() as c:
            return [r.id for r in c.execute(sa.select(RUNS.c.id).where(
                (RUNS.c.process == process) & (RUNS.c.stop_req == 1) & RUNS.c.status.in_(ACTIVE)))]

    def mark_followed(self, run_id: str, at: float) -> None:
        with self.engine.begin() as c:
            c.execute(sa.update(RUNS).where(RUNS.c.id == run_id).values(followed=at))

    def followed(self, ids: list[str]) -> dict:
        """{run id: wall-clock seconds a page on another process last followed it} (None: never)."""
        with self.engine.connect() as c:
            return {r.id: r.followed for r in c.execute(sa.select(RUNS.c.id, RUNS.c.followed).where(RUNS.c.id.in_(ids)))}

    # ---- adapters ----
    def put_adapter(self, run_id: str, sha256: str, data: bytes) -> None:
        with self.engine.begin() as c:
            c.execute(self.upsert(ADAPTERS, {"run_id": run_id}, {"sha256": sha256, "data": data}))

    def adapter(self, run_id: str) -> tuple[str, bytes] | None:
        with self.engine.connect() as c:
            r = c.execute(sa.select(ADAPTERS.c.sha256, ADAPTERS.c.data).where(ADAPTERS.c.run_id == run_id)).first()
        return None if r is None else (r.sha256, bytes(r.data))

    # ---- classes ----
    def put_class(self, code: str, key_hash: str, created: float, doc: dict, rev: int | None = None) -> int:
        """Write a class; `rev`: the revision it was read at (None: a new class). Returns the new revision, or
        raises Conflict when another process wrote it since (the caller reads it again and retries)."""
        values = {"key_hash": key_hash, "created": created, "doc": json.dumps(doc)}
        with self.engine.begin() as c:
            if rev is None:
                c.execute(sa.insert(CLASSES).values(code=code, rev=1, **values))
                return 1
            have = sa.func.coalesce(CLASSES.c.rev, 0)
            if c.execute(sa.update(CLASSES).where((CLASSES.c.code == code) & (have == rev)).values(rev=rev + 1, **values)).rowcount == 0:
                raise Conflict(code)
        return rev + 1

    def put_member(self, code: str, owner: str, joined: float, doc: dict) -> None:
        with self.engine.begin() as c:
            c.execute(self.upsert(MEMBERS, {"code": code, "owner": owner}, {"joined": joined, "doc": json.dumps(doc)}))

    def delete_member(self, code: str, owner: str) -> None:
        with self.engine.begin() as c:
            c.execute(sa.delete(MEMBERS).where((MEMBERS.c.code == code) & (MEMBERS.c.owner == owner)))

    def delete_class(self, code: str) -> None:
        with self.engine.begin() as c:
            c.execute(sa.delete(MEMBERS).where(MEMBERS.c.code == code))
            c.execute(sa.delete(CLASSES).where(CLASSES.c.code == code))

    def load_classes(self, code: str | None = None) -> list[dict]:
        """Every class (or the one with `code`) as {code, key_hash, created, rev, doc, members: [{owner, joined, doc}]}
        (members in join order)."""
        with self.engine.connect() as c:
            q, mq = sa.select(CLASSES).order_by(CLASSES.c.created), sa.select(MEMBERS).order_by(MEMBERS.c.joined)
            if code is not None:
                q, mq = q.where(CLASSES.c.code == code), mq.where(MEMBERS.c.code == code)
            rooms = [{**dict(r._mapping), "members": []} for r in c.execute(q)]
            by_code = {r["code"]: r for r in rooms}
            for m in c.execute(mq):
                if m.code in by_code:
                    by_code[m.code]["members"].append({"owner": m.owner, "joined": m.joined, "doc": json.loads(m.doc)})
        for r in rooms:
            r["doc"], r["rev"] = json.loads(r["doc"]), r["rev"] or 0
        return rooms


def _chunks(items: list, n: int):
    for i in range(0, len(items), n):
        yield items[i:i + n]


def _num(v):
    """A curve's y for the database: NaN and inf become NULL (Postgres and JSON agree on nothing else)."""
    return v if isinstance(v, (int, float)) and v == v and abs(v) != float("inf") else None


def _whole(x: float):
    return int(x) if float(x).is_integer() else x


def _lock_sqlite(database: str | None) -> None:
    """One process per SQLite file: an exclusive lock beside it, held while the process lives (the kernel lets go
    when it dies, SIGKILL included). A second process is refused with a message that says what to do instead.
    Within one process (tests that reopen a store) the lock is already ours."""
    if not database or database == ":memory:":
        return
    path = str(Path(database).resolve()) + ".lock"
    if path in _LOCKS:
        return
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o600)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError:
        os.close(fd)
        raise StoreBusy(f"Another How Models Learn process is using {database}. SQLite serves one process: to run "
                        "several app processes (replicas), point them all at one PostgreSQL database with "
                        "HML_DATABASE_URL=postgresql+psycopg://user:pass@host/db, and give each its own HML_DATA_DIR "
                        "(README, 'Running several replicas').") from None
    _LOCKS[path] = fd


def _sqlite_pragmas(conn, _record) -> None:
    cur = conn.cursor()
    cur.execute("PRAGMA journal_mode=WAL")  # readers never wait for the writer
    cur.execute("PRAGMA synchronous=NORMAL")  # WAL + NORMAL: a crash loses at most the last commits, never corrupts
    cur.execute("PRAGMA busy_timeout=5000")  # a locked database: wait up to 5 s, then the write fails (and is logged)
    cur.close()
