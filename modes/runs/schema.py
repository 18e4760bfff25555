"""The database's tables: what every process of the app reads and writes, and the few columns added since.

One schema for SQLite (one process) and PostgreSQL (several replicas on one database). Everything another
process may need to read lives here: owners, runs with their curves and adapters, classes and their
learners, the processes' heartbeats, shared results and recorded trainings, leases on work in progress,
the browser secret, and failed joins. Nothing is pickled: documents are JSON (modes/codec.py), bytes are
bytes (adapter zips, a recording's tensors as safetensors).
"""

from __future__ import annotations

import sqlalchemy as sa

ACTIVE = ("starting", "queued", "running")  # a run's statuses while a process drives it

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
    # Added for replicas (NULL in rows written before): the process driving the run, a stop asked for on
    # another process, and when a page on another process last followed it (wall-clock seconds).
    sa.Column("process", sa.String(32)),
    sa.Column("stop_req", sa.Integer),
    sa.Column("followed", sa.Float),
)
POINTS = sa.Table(
    "points", META,
    sa.Column("run_id", sa.String(16), primary_key=True),
    sa.Column("seq", sa.Integer, primary_key=True),
    sa.Column("x", sa.Float, nullable=False),
    sa.Column("y", sa.Float),
    sa.Column("series", sa.String(64), nullable=False),
)
ADAPTERS = sa.Table(  # a fine-tune's adapter zip, so that any replica can serve it (its data dir keeps a copy)
    "adapters", META,
    sa.Column("run_id", sa.String(16), primary_key=True),
    sa.Column("sha256", sa.String(64), nullable=False),
    sa.Column("data", sa.LargeBinary, nullable=False),
)
# A class (modes/runs/classes.py) and its learners: a few rows each, written when something changes.
CLASSES = sa.Table(
    "classes", META,
    sa.Column("code", sa.String(8), primary_key=True),  # the join code
    sa.Column("key_hash", sa.String(64), nullable=False),  # sha256 of the teacher key (the key itself is never kept)
    sa.Column("created", sa.Float, nullable=False),
    sa.Column("doc", sa.Text, nullable=False),  # JSON: names shown, closed, experiment, removed runs, last use
    sa.Column("rev", sa.Integer),  # bumped by every write: two replicas changing one class never lose a change
)
MEMBERS = sa.Table(
    "members", META,
    sa.Column("code", sa.String(8), primary_key=True),
    sa.Column("owner", sa.String(32), primary_key=True),
    sa.Column("joined", sa.Float, nullable=False),  # wall-clock seconds: runs from then on are shared
    sa.Column("doc", sa.Text, nullable=False),  # JSON: display name, assigned value, unshared runs
)
PROCESSES = sa.Table(  # one row per live app process (modes/runs/liveness.py)
    "processes", META,
    sa.Column("id", sa.String(32), primary_key=True),
    sa.Column("place", sa.String(512)),  # host and data dir, when this process holds the data dir's lock
    sa.Column("started", sa.Float, nullable=False),
    sa.Column("beat", sa.Integer, nullable=False),  # a counter: others see it move (no clocks compared)
    sa.Column("seen", sa.Float, nullable=False),  # wall-clock seconds of its last beat (shown, never trusted)
)
RESULTS = sa.Table(  # modes/runs/reuse.py: small results every learner shares (JSON)
    "results", META,
    sa.Column("key", sa.String(64), primary_key=True),
    sa.Column("doc", sa.Text, nullable=False),
    sa.Column("created", sa.Float, nullable=False),
)
RECORDINGS = sa.Table(  # modes/runs/reuse.py: recorded trainings, replayed by identical runs
    "recordings", META,
    sa.Column("key", sa.String(64), primary_key=True),
    sa.Column("doc", sa.Text, nullable=False),  # JSON events (modes/codec.py)
    sa.Column("blobs", sa.LargeBinary),  # their bytes as one safetensors file, or NULL
    sa.Column("created", sa.Float, nullable=False),
)
LEASES = sa.Table(  # work one process is computing now: the others wait for its result instead
    "leases", META,
    sa.Column("key", sa.String(64), primary_key=True),
    sa.Column("holder", sa.String(80), nullable=False),  # "<process id>/<token>"
    sa.Column("taken", sa.Float, nullable=False),
)
SETTINGS = sa.Table(  # values every process must agree on: the browser secret
    "settings", META,
    sa.Column("name", sa.String(64), primary_key=True),
    sa.Column("value", sa.Text, nullable=False),
)
JOIN_FAILURES = sa.Table(  # failed class joins, counted across every process
    "join_failures", META,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("address", sa.String(64), nullable=False, index=True),
    sa.Column("at", sa.Float, nullable=False, index=True),  # wall-clock seconds
)


def create(engine) -> None:
    """Create what is missing, and add the columns that older databases lack. On PostgreSQL an advisory lock
    makes replicas that start at once create the tables one after another (CREATE TABLE races otherwise)."""
    with engine.begin() as c:
        if engine.dialect.name == "postgresql":
            c.execute(sa.text("SELECT pg_advisory_xact_lock(7247001)"))
        META.create_all(c)
        have = sa.inspect(c)
        for table in META.sorted_tables:
            names = {col["name"] for col in have.get_columns(table.name)}
            for col in table.columns:
                if col.name not in names:  # only nullable columns are ever added
                    c.execute(sa.text(f"ALTER TABLE {table.name} ADD COLUMN {col.name} {col.type.compile(engine.dialect)}"))
