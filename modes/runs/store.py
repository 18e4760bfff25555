"""The durable store: owners, runs, whole curves and samples in a real database, so a restart loses nothing.

SQLAlchemy 2 Core, and the only code that touches the database. SQLite in WAL mode by default (one
file in the data dir, embedded, nothing to set up); any SQLAlchemy URL in HML_DATABASE_URL instead,
e.g. Postgres, so that several replicas share one store. Adapters stay files in the data dir; the
database names each with its sha256. Results are JSON (modes/codec.py), never pickles.

History (modes/runs/history.py) keeps the live objects and writes through to this; a failed write
(a full disk, a read-only dir, a lock that outlasts the busy timeout) is logged and the app keeps
serving from memory.
"""

from __future__ import annotations

import json
import logging
import os
import time
from pathlib import Path

import sqlalchemy as sa

from modes.codec import decode, encode

META = sa.MetaData()
OWNERS = sa.Table(
    "owners", META,
    sa.Column("id", sa.String(32), primary_key=True),
    sa.Column("seen_at", sa.Float, nullable=False),  # wall-clock seconds of its last use
)
RUNS = sa.Table(
    "runs", META,
    sa.Column("id", sa.String(16), primary_key=True),
    sa.Column("owner", sa.String(32), nullable=False, index=True),
    sa.Column("kind", sa.String(32), nullable=False),
    sa.Column("status", sa.String(16), nullable=False),
    sa.Column("step", sa.Integer, nullable=False, default=0),  # the last step its curve reached
    sa.Column("created", sa.Float, nullable=False),
    sa.Column("updated", sa.Float, nullable=False),
    sa.Column("doc", sa.Text, nullable=False),  # JSON: settings, axes, samples, summary, result, adapter meta
    sa.Column("adapter_file", sa.String(256)),
    sa.Column("adapter_sha256", sa.String(64)),
    sa.Column("adapter_bytes", sa.Integer, nullable=False, default=0),
)
POINTS = sa.Table(
    "points", META,
    sa.Column("run_id", sa.String(16), primary_key=True),
    sa.Column("seq", sa.Integer, primary_key=True),
    sa.Column("x", sa.Float, nullable=False),
    sa.Column("y", sa.Float),
    sa.Column("series", sa.String(64), nullable=False),
)
# A class (modes/runs/classes.py) and its learners: a few rows each, written when something changes.
CLASSES = sa.Table(
    "classes", META,
    sa.Column("code", sa.String(8), primary_key=True),  # the join code
    sa.Column("key_hash", sa.String(64), nullable=False),  # sha256 of the teacher key (the key itself is never kept)
    sa.Column("created", sa.Float, nullable=False),
    sa.Column("doc", sa.Text, nullable=False),  # JSON: names shown, closed, experiment, removed runs, last use
)
MEMBERS = sa.Table(
    "members", META,
    sa.Column("code", sa.String(8), primary_key=True),
    sa.Column("owner", sa.String(32), primary_key=True),
    sa.Column("joined", sa.Float, nullable=False),  # wall-clock seconds: runs from then on are shared
    sa.Column("doc", sa.Text, nullable=False),  # JSON: display name, assigned value, unshared runs
)


def database_url(data_dir: Path) -> str:
    """HML_DATABASE_URL, else an SQLite file in the data dir."""
    return os.environ.get("HML_DATABASE_URL") or f"sqlite:///{Path(data_dir) / 'hml.sqlite3'}"


class Store:
    def __init__(self, url: str):
        self.url = url
        self.engine = sa.create_engine(url, future=True, pool_pre_ping=True)
        if self.engine.dialect.name == "sqlite":
            sa.event.listen(self.engine, "connect", _sqlite_pragmas)
        META.create_all(self.engine)

    # ---- owners ----
    def put_owner(self, owner: str, seen_at: float) -> None:
        with self.engine.begin() as c:
            if c.execute(sa.update(OWNERS).where(OWNERS.c.id == owner).values(seen_at=seen_at)).rowcount == 0:
                c.execute(sa.insert(OWNERS).values(id=owner, seen_at=seen_at))

    def delete_owner(self, owner: str) -> None:
        with self.engine.begin() as c:
            ids = [r.id for r in c.execute(sa.select(RUNS.c.id).where(RUNS.c.owner == owner))]
            if ids:
                c.execute(sa.delete(POINTS).where(POINTS.c.run_id.in_(ids)))
            c.execute(sa.delete(RUNS).where(RUNS.c.owner == owner))
            c.execute(sa.delete(OWNERS).where(OWNERS.c.id == owner))

    # ---- runs ----
    def put_run(self, row: dict, doc: dict, points: list[dict], first_seq: int) -> None:
        """Insert or update a run's row, and append its curve points from `first_seq` on."""
        blobs: dict = {}
        values = {**row, "doc": json.dumps(encode(doc, blobs)), "updated": time.time()}
        if blobs:
            raise TypeError("a run's document holds no bytes (adapters are files)")
        with self.engine.begin() as c:
            if c.execute(sa.update(RUNS).where(RUNS.c.id == row["id"]).values(**values)).rowcount == 0:
                c.execute(sa.insert(RUNS).values(**values))
            if points:
                c.execute(sa.insert(POINTS), [{"run_id": row["id"], "seq": first_seq + i, "x": p["x"], "y": _num(p["y"]),
                                               "series": p["series"]} for i, p in enumerate(points)])

    def delete_run(self, run_id: str) -> None:
        with self.engine.begin() as c:
            c.execute(sa.delete(POINTS).where(POINTS.c.run_id == run_id))
            c.execute(sa.delete(RUNS).where(RUNS.c.id == run_id))

    def load(self) -> tuple[dict, list[dict]]:
        """({owner: seen_at}, [run rows with "doc" decoded and "curve" filled]), runs oldest first."""
        with self.engine.connect() as c:
            owners = {r.id: r.seen_at for r in c.execute(sa.select(OWNERS))}
            runs = [dict(r._mapping) for r in c.execute(sa.select(RUNS).order_by(RUNS.c.created, RUNS.c.id))]
            curves: dict = {}
            for p in c.execute(sa.select(POINTS).order_by(POINTS.c.run_id, POINTS.c.seq)):
                curves.setdefault(p.run_id, []).append({"x": _whole(p.x), "y": float("nan") if p.y is None else p.y,
                                                        "series": p.series})
        for r in runs:
            try:
                r["doc"] = decode(json.loads(r["doc"]), {})
            except ValueError:  # written by other code (a type it no longer has): the run is skipped
                logging.getLogger(__name__).warning("run %s could not be read back; skipped", r["id"])
                r["doc"] = None
            r["curve"] = curves.get(r["id"], [])
        return owners, runs


    # ---- classes ----
    def put_class(self, code: str, key_hash: str, created: float, doc: dict) -> None:
        values = {"key_hash": key_hash, "created": created, "doc": json.dumps(doc)}
        with self.engine.begin() as c:
            if c.execute(sa.update(CLASSES).where(CLASSES.c.code == code).values(**values)).rowcount == 0:
                c.execute(sa.insert(CLASSES).values(code=code, **values))

    def put_member(self, code: str, owner: str, joined: float, doc: dict) -> None:
        values = {"joined": joined, "doc": json.dumps(doc)}
        with self.engine.begin() as c:
            where = (MEMBERS.c.code == code) & (MEMBERS.c.owner == owner)
            if c.execute(sa.update(MEMBERS).where(where).values(**values)).rowcount == 0:
                c.execute(sa.insert(MEMBERS).values(code=code, owner=owner, **values))

    def delete_member(self, code: str, owner: str) -> None:
        with self.engine.begin() as c:
            c.execute(sa.delete(MEMBERS).where((MEMBERS.c.code == code) & (MEMBERS.c.owner == owner)))

    def delete_class(self, code: str) -> None:
        with self.engine.begin() as c:
            c.execute(sa.delete(MEMBERS).where(MEMBERS.c.code == code))
            c.execute(sa.delete(CLASSES).where(CLASSES.c.code == code))

    def load_classes(self) -> list[dict]:
        """Every class as {code, key_hash, created, doc, members: [{owner, joined, doc}]} (members in join order)."""
        with self.engine.connect() as c:
            rooms = [{**dict(r._mapping), "members": []} for r in c.execute(sa.select(CLASSES).order_by(CLASSES.c.created))]
            by_code = {r["code"]: r for r in rooms}
            for m in c.execute(sa.select(MEMBERS).order_by(MEMBERS.c.joined)):
                if m.code in by_code:
                    by_code[m.code]["members"].append({"owner": m.owner, "joined": m.joined, "doc": json.loads(m.doc)})
        for r in rooms:
            r["doc"] = json.loads(r["doc"])
        return rooms


def _num(v):
    """A curve's y for the database: NaN and inf become NULL (Postgres and JSON agree on nothing else)."""
    return v if isinstance(v, (int, float)) and v == v and abs(v) != float("inf") else None


def _whole(x: float):
    return int(x) if float(x).is_integer() else x


def _sqlite_pragmas(conn, _record) -> None:
    cur = conn.cursor()
    cur.execute("PRAGMA journal_mode=WAL")  # readers never wait for the writer
    cur.execute("PRAGMA synchronous=NORMAL")  # WAL + NORMAL: a crash loses at most the last commits, never corrupts
    cur.execute("PRAGMA busy_timeout=5000")  # a locked database: wait up to 5 s, then the write fails (and is logged)
    cur.close()
