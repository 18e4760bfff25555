"""Several processes on one database, in one test process: two Histories (two "replicas", each with its own data
dir) on one store. What one writes, the other reads back; a process that stops beating has its runs marked
interrupted by the other, and never resurrects them; stops, leases, classes, failed joins and the secret are
shared. On SQLite opened as shared (no server needed) and on a real PostgreSQL server."""

from __future__ import annotations

import os
import subprocess
import sys
import threading
import time

import pytest

from modes.runs import mirror
from modes.runs.classes import ClassError, Classes
from modes.runs.history import History
from modes.runs.joinlimit import PER_ADDRESS
from modes.runs.liveness import Liveness
from modes.runs.reuse import ResultStore
from modes.runs.store import Store
from tests.postgres import new_postgres_db


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def db_url(request, tmp_path):
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'hml.sqlite3'}"
    return new_postgres_db(request.getfixturevalue("postgres_server"))


class Clock:
    def __init__(self):
        self.t = 1000.0

    def __call__(self) -> float:
        return self.t


def replica(tmp_path, url, name: str) -> History:
    """One app process's History: its own data dir, the shared database."""
    return History(tmp_path / name / "runs", store=Store(url, shared=True))


def fresh(h: History) -> History:
    mirror.sync(h, force=True)
    return h


def test_what_one_process_writes_the_other_reads(tmp_path, db_url):
    a, b = replica(tmp_path, db_url, "a"), replica(tmp_path, db_url, "b")
    owner = a.issue()
    assert b.known(owner) and not b.known("f" * 32)  # a token from A works on B; a forged one nowhere
    run = a.new_run(owner, "pretrain", {"steps": 50})
    a.update(run, status="running")
    for s in range(1, 6):
        run.curve.append({"x": s, "y": 3.0 - s / 10, "series": "train"})
    from modes.runs import durable

    durable.save_run(a, run, force=True)
    seen = fresh(b).get(owner, run.id)
    assert seen is not None and not seen.here and seen.status == "running" and [p["x"] for p in seen.curve] == [1, 2, 3, 4, 5]
    version = seen.version
    run.curve.append({"x": 6, "y": 2.3, "series": "train"})
    a.update(run, status="done", summary={"val_bpc": 2.5, "steps": 6})
    fresh(b)
    assert seen.status == "done" and seen.summary == {"val_bpc": 2.5, "steps": 6} and len(seen.curve) == 6 and seen.version > version
    ft = a.new_run(owner, "finetune", {"r": 2})
    a.update(ft, status="done", summary={"chrf_after": 10.0})
    a.save_adapter(ft, b"PK zip bytes", {"direction": "en-ko"})
    got = fresh(b).adapter_bytes_of(owner, ft.id)  # the bytes come from the database into B's own data dir
    assert got is not None and got[1] == b"PK zip bytes" and str(tmp_path / "b") in got[0].adapter_path
    assert [r.id for r in b.runs(owner)] == [ft.id, run.id]  # newest first, as on A
    assert b.delete(owner, run.id)
    assert [r.id for r in fresh(a).runs(owner)] == [ft.id]  # deleted on B: gone on A too


def test_a_process_that_stops_beating_has_its_runs_marked_and_never_resurrects_them(tmp_path, db_url):
    a, b = replica(tmp_path, db_url, "a"), replica(tmp_path, db_url, "b")
    clock = Clock()
    b.live = Liveness(b.store, None, dead_after=20, clock=clock)  # B watches with a clock the test moves
    owner = a.issue()
    run = a.new_run(owner, "pretrain", {"steps": 500})
    a.update(run, status="running")
    run.curve += [{"x": s, "y": 1.0, "series": "train"} for s in range(1, 8)]
    from modes.runs import durable

    durable.save_run(a, run, force=True)
    assert b.live.sweep() == []  # first sight of A's beat
    a.live.beat()
    clock.t += 19
    assert b.live.sweep() == []  # A beat since: alive
    clock.t += 19.5
    assert b.live.sweep() == []  # 19.5 s without a beat: not yet
    clock.t += 1
    assert b.live.sweep() == [run.id]  # 20.5 s: dead, its run cut
    seen = fresh(b).get(owner, run.id)
    assert seen.status == "interrupted" and seen.interrupted_at == 7 and seen.public()["interrupted_at"] == 7
    # A was only paused: it comes back and writes its run; the write is refused and A stops driving it.
    run.curve.append({"x": 8, "y": 1.0, "series": "train"})
    a.update(run, status="done", summary={"val_bpc": 1.0})
    assert run.stop.is_set() and run.status == "interrupted"
    assert fresh(b).get(owner, run.id).status == "interrupted" and len(b.get(owner, run.id).curve) == 7
    a.live.beat()  # its row was removed as dead: it is made again, and later runs are A's as before
    assert a.live.id in {r.id for r in b.live.rows()}


def test_a_restarted_process_marks_its_earlier_runs_at_once(tmp_path, db_url):
    """Same place (host and data dir, whose lock the new process holds): the earlier process is surely dead."""
    a = replica(tmp_path, db_url, "a")
    owner = a.issue()
    run = a.new_run(owner, "pretrain", {})
    a.update(run, status="running")
    other = replica(tmp_path, db_url, "b")  # another live replica: its running run is left alone
    theirs = other.new_run(owner, "pretrain", {"seed": 2})
    other.update(theirs, status="running")
    again = replica(tmp_path, db_url, "a")
    assert again.get(owner, run.id).status == "interrupted"
    assert again.get(owner, theirs.id).status == "running" and not again.get(owner, theirs.id).here


def test_stop_asked_on_another_process_reaches_the_driver(tmp_path, db_url):
    a, b = replica(tmp_path, db_url, "a"), replica(tmp_path, db_url, "b")
    owner = a.issue()
    run = a.new_run(owner, "pretrain", {})
    a.update(run, status="running")
    b.stop(fresh(b).get(owner, run.id))
    assert not run.stop.is_set()
    a._tick()  # what A's liveness thread does every second
    assert run.stop.is_set()


def test_a_run_followed_on_another_process_is_not_an_orphan(tmp_path, db_url):
    a, b = replica(tmp_path, db_url, "a"), replica(tmp_path, db_url, "b")
    clock = Clock()
    a.clock, a.grace_s = clock, 10.0
    owner = a.issue()
    run = a.new_run(owner, "pretrain", {})
    a.update(run, status="running")
    mirror.followed_elsewhere(b, fresh(b).get(owner, run.id))  # a page on B follows it
    clock.t += 30
    assert a.stop_orphans() == [] and not run.stop.is_set()
    with a.store.engine.begin() as c:  # that page went away 60 s ago
        import sqlalchemy as sa

        from modes.runs.schema import RUNS

        c.execute(sa.update(RUNS).where(RUNS.c.id == run.id).values(followed=time.time() - 60))
    clock.t += 30
    assert a.stop_orphans() == [run] and run.stop.is_set()


def test_leases_make_two_processes_compute_once(tmp_path, db_url):
    a, b = Store(db_url, shared=True), Store(db_url, shared=True)
    la, lb = Liveness(a, None), Liveness(b, None, dead_after=20, clock=(clock := Clock()))
    ra, rb = ResultStore(None), ResultStore(None)
    ra.attach(a, la)
    rb.attach(b, lb)
    calls, started, b_waits = [], threading.Event(), threading.Event()
    take = lb.take

    def b_take(k, holder):  # B's try for the lease: A's work goes on until B has found it held
        got = take(k, holder)
        if not got:
            b_waits.set()
        return got

    lb.take = b_take

    def compute(who):
        def go():
            calls.append(who)
            started.set()
            assert who != "a" or b_waits.wait(60), "B never asked for the lease A holds"
            return {"chrf": 12.5}
        return go

    out = {}
    t = threading.Thread(target=lambda: out.setdefault("a", ra.once({"k": 1}, compute("a"))))
    t.start()
    assert started.wait(30)
    out["b"] = rb.once({"k": 1}, compute("b"))  # waits for A's lease, then reads A's result
    t.join(30)
    assert calls == ["a"] and out["a"][1] is False and out["b"][1] is True and out["b"][0]["chrf"] == 12.5
    # A lease whose holder stopped beating is taken over.
    holder = la.holder()
    assert la.take("job", holder) and not lb.take("job", lb.holder())
    lb.dead(lb.rows())
    clock.t += 25
    assert lb.take("job", lb.holder()) and not la.take("job", la.holder())


def test_classes_on_two_processes(tmp_path, db_url):
    sa_, sb = Store(db_url, shared=True), Store(db_url, shared=True)
    ca, cb = Classes(sa_), Classes(sb)
    code, key = ca.create()
    room_a = ca.teacher(code, key)
    ca.set_experiment(room_a, "finetune", "r", [1, 2, 4, 8])
    joined = []
    threads = [threading.Thread(target=lambda o=o, c=c: joined.append(c.join(code, o, "", "en", "10.0.0.1")))
               for o, c in zip([f"{i:032x}" for i in range(8)], [ca, cb] * 4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)
    assert len(joined) == 8
    assert sorted(m.value for m in joined) == [1, 1, 2, 2, 4, 4, 8, 8]  # each value handed out twice: none lost
    ca.sync(force=True)
    assert len(ca.teacher(code, key).members) == 8 and ca.membership(f"{3:032x}") is not None
    cb.set_names_shown(cb.teacher(code, key), False)
    ca.remove_run(room_a, "abc")  # written at an older revision: read again, applied, both kept
    cb.sync(force=True)
    room_b = cb.teacher(code, key)
    assert room_b.show_names is False and room_b.removed == {"abc"}


def test_failed_joins_count_across_processes(tmp_path, db_url):
    ca, cb = Classes(Store(db_url, shared=True)), Classes(Store(db_url, shared=True))
    code, _ = ca.create()
    for i in range(PER_ADDRESS):
        with pytest.raises(ClassError) as e:
            (ca, cb)[i % 2].join("WRONG1", f"{i:032x}", "", "en", "203.0.113.9")
        assert e.value.key == "cl_refused"
    for c in (ca, cb):
        with pytest.raises(ClassError) as e:
            c.join(code, "e" * 32, "", "en", "203.0.113.9")
        assert e.value.key == "cl_slow_down"
    assert cb.join(code, "e" * 32, "", "en", "198.51.100.7").name  # another address is not held


def test_one_secret_for_every_process(tmp_path, db_url, monkeypatch):
    from modes.runs import place

    monkeypatch.delenv("HML_SECRET", raising=False)
    (tmp_path / "a").mkdir()
    (tmp_path / "a" / place.SECRET_FILE).write_text("kept-in-a-file")
    first = place.browser_secret(tmp_path / "a", Store(db_url, shared=True))
    second = place.browser_secret(tmp_path / "b", Store(db_url, shared=True))
    assert first == second == "kept-in-a-file"  # an existing data dir's secret moves into the database
    monkeypatch.setenv("HML_SECRET", "from-env")
    assert place.browser_secret(tmp_path / "b", Store(db_url, shared=True)) == "from-env"


def test_a_second_process_on_one_sqlite_file_is_refused(tmp_path):
    url = f"sqlite:///{tmp_path / 'hml.sqlite3'}"
    Store(url)  # this process holds it
    code = "from modes.runs.store import Store; Store(%r); print('opened')" % url
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120,
                         cwd=os.path.dirname(os.path.dirname(__file__)))
    assert out.returncode != 0 and "opened" not in out.stdout
    assert "HML_DATABASE_URL" in out.stderr and "SQLite serves one process" in out.stderr
