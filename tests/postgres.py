"""A real PostgreSQL server for the `postgres` lane, and a fresh database on it per test that asks for one."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

import pytest


@pytest.fixture(scope="session")
def postgres_server(tmp_path_factory):
    """A real PostgreSQL server for the `postgres` lane: HML_TEST_POSTGRES_URL when set, else a private one
    started from the system's `postgresql` package (initdb + pg_ctl in a temp dir, on a free port).
    Yields a URL to its maintenance database; skipped, saying why, where no server can start."""
    import glob
    import shutil
    import subprocess

    from tests.conftest import free_port

    url = os.environ.get("HML_TEST_POSTGRES_URL")
    if url:
        yield url
        return
    try:
        import psycopg  # noqa: F401 - the driver SQLAlchemy's postgresql+psycopg URLs use
    except ImportError:
        pytest.skip("no psycopg: pip install 'psycopg[binary]' (requirements.txt has it)")
    bins = sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"))
    if not bins:
        pytest.skip("no PostgreSQL server here: apt-get install postgresql (.ci/run installs it)")
    bindir = os.path.dirname(bins[-1])
    root = Path(tempfile.mkdtemp(prefix="hml-pg-"))  # under /tmp itself: pytest's own folders are root's alone
    as_user = []
    if os.geteuid() == 0:  # PostgreSQL refuses to run as root: its own system user runs it
        shutil.chown(root, "postgres")
        as_user = ["runuser", "-u", "postgres", "--"]
    port = free_port()
    data = root / "data"
    run = lambda *cmd: subprocess.run([*as_user, *cmd], check=True, capture_output=True, text=True)
    try:
        run(f"{bindir}/initdb", "-D", str(data), "-U", "hml", "--auth=trust", "-E", "UTF8")
        run(f"{bindir}/pg_ctl", "-D", str(data), "-l", str(root / "log"), "-w", "-t", "60", "start",
            "-o", f"-p {port} -k {root} -c listen_addresses=127.0.0.1 -c fsync=off")
    except (subprocess.CalledProcessError, OSError) as exc:
        pytest.skip(f"PostgreSQL could not start here: {getattr(exc, 'stderr', exc)}")
    try:
        yield f"postgresql+psycopg://hml@127.0.0.1:{port}/postgres"
    finally:
        subprocess.run([*as_user, f"{bindir}/pg_ctl", "-D", str(data), "-m", "immediate", "stop"], capture_output=True)
        shutil.rmtree(root, ignore_errors=True)


def new_postgres_db(server_url: str) -> str:
    """A fresh, empty database on the test server; its URL."""
    import secrets

    import sqlalchemy as sa

    name = "t_" + secrets.token_hex(6)
    engine = sa.create_engine(server_url, isolation_level="AUTOCOMMIT")
    with engine.connect() as c:
        c.execute(sa.text(f"CREATE DATABASE {name}"))
    engine.dispose()
    return server_url.rsplit("/", 1)[0] + "/" + name
