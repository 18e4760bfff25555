"""Where a learner's things are kept, and the secret that lets a browser's owner id outlive the process.

The data dir is HML_DATA_DIR; else /data/hml when a Space has persistent storage mounted at /data;
else `data` beside the model cache (the user's cache directory), so `python app.py` needs no set-up.
The browser keeps its owner id encrypted (gr.BrowserState) with a secret that Gradio otherwise draws
at random per process, so after a restart the id could not be read back. The secret is HML_SECRET,
else one drawn once and kept in the data dir with mode 0600.
"""

from __future__ import annotations

import os
import secrets
from pathlib import Path

SECRET_FILE = "browser-secret"


def data_dir(cache_dir: Path | str) -> Path:
    """The app's data dir (made if missing)."""
    env = os.environ.get("HML_DATA_DIR")
    if env:
        path = Path(env).expanduser()
    elif Path("/data").is_dir() and os.access("/data", os.W_OK):
        path = Path("/data/hml")
    else:
        path = Path(cache_dir) / "data"
    path.mkdir(parents=True, exist_ok=True)
    return path


def browser_secret(folder: Path, store=None) -> str:
    """HML_SECRET, else the one kept in the database (`store`: drawn once, atomically, so that every replica
    encrypts and reads a browser's owner id alike), else the one kept in `folder` (drawn and written with mode
    0600 on first use). A folder that cannot be written gives a secret for this process only: the app still runs."""
    env = os.environ.get("HML_SECRET")
    if env:
        return env
    if store is not None:
        try:
            return _secret_in(store, folder)
        except Exception:  # a database that cannot be written: the file, as before
            import logging

            logging.getLogger(__name__).exception("the secret could not be kept in the database; using the data dir's")
    path = Path(folder) / SECRET_FILE
    try:
        return path.read_text(encoding="utf-8").strip()
    except FileNotFoundError:
        pass
    except OSError:
        return secrets.token_hex(32)
    value = secrets.token_hex(32)  # 256 bits
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:  # another process wrote it first: use theirs
        return path.read_text(encoding="utf-8").strip()
    except OSError:
        return value
    with os.fdopen(fd, "w", encoding="utf-8") as f:
        f.write(value)
    return value


def _secret_in(store, folder: Path) -> str:
    """The database's secret; the first process to ask puts one in (a data dir's existing secret, so that the
    browsers of an app that kept it in a file still find their runs, else a new one). INSERT ... ON CONFLICT DO
    NOTHING: two replicas starting at once agree on the first one written."""
    import sqlalchemy as sa

    from modes.runs.schema import SETTINGS

    try:
        first = (Path(folder) / SECRET_FILE).read_text(encoding="utf-8").strip() or secrets.token_hex(32)
    except OSError:
        first = secrets.token_hex(32)  # 256 bits
    with store.engine.begin() as c:
        c.execute(store.upsert(SETTINGS, {"name": "browser_secret"}, {"value": first}, update=False))
        return c.execute(sa.select(SETTINGS.c.value).where(SETTINGS.c.name == "browser_secret")).scalar_one()


_HELD: dict[str, int] = {}  # data dirs whose lock this OS process holds: path -> fd


def place_of(folder) -> str | None:
    """"host:data dir" when this process holds the data dir's lock (so an earlier process with the same place is
    surely dead: modes/runs/liveness.py), else None (another live process uses the same data dir)."""
    import fcntl
    import socket

    path = str(Path(folder).resolve())
    if path not in _HELD:
        try:
            Path(path).mkdir(parents=True, exist_ok=True)
            fd = os.open(os.path.join(path, ".process.lock"), os.O_RDWR | os.O_CREAT, 0o600)
        except OSError:
            return None
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            os.close(fd)
            return None
        _HELD[path] = fd
    return f"{socket.gethostname()}:{path}"[:512]


def mount_of(path, mountinfo: str | None = None) -> tuple[str, str]:
    """(mount point, filesystem type) of the filesystem `path` is on, from /proc/self/mountinfo (or the text
    given): the longest mount point that contains it. ("", "") where that cannot be read."""
    if mountinfo is None:
        try:
            mountinfo = Path("/proc/self/mountinfo").read_text()
        except OSError:
            return "", ""
    target = str(Path(path).resolve())
    best = ("", "")
    for line in mountinfo.splitlines():
        fields = line.split()
        if len(fields) < 10 or "-" not in fields:
            continue
        point = fields[4].replace("\\040", " ")
        fstype = fields[fields.index("-") + 1]
        inside = target == point or target.startswith(point.rstrip("/") + "/")
        if inside and len(point) >= len(best[0]):
            best = (point, fstype)
    return best


EPHEMERAL_FS = ("overlay", "tmpfs", "aufs", "ramfs")  # a container's own disk, or memory: gone at a restart


def storage(data_dir, database: str | None, mountinfo: str | None = None) -> dict:
    """Where the learners' work is kept, and whether a Space will lose it at its next restart: on a Space
    (SPACE_ID set) whose store is SQLite (or none) in a data dir on the container's own disk or in memory.
    A PostgreSQL database (HML_DATABASE_URL) keeps everything, adapters included, whatever the disk."""
    point, fstype = mount_of(data_dir, mountinfo) if data_dir is not None else ("", "")
    local = database is None or database.startswith("sqlite")
    ephemeral = bool(os.environ.get("SPACE_ID")) and local and (data_dir is None or point == "/" or fstype in EPHEMERAL_FS)
    return {"data_dir": None if data_dir is None else str(data_dir), "mount": point, "filesystem": fstype,
            "database": "none" if database is None else database.split(":", 1)[0].split("+", 1)[0], "ephemeral": ephemeral}
