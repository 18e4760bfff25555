"""The durable store: a restart keeps every owner, run, curve, sample, result and adapter; a run cut by a
kill comes back interrupted at its step; a failing store never fails the learner; 16 writers lose nothing."""

from __future__ import annotations

import threading

import pytest

from modes.pretrain.core import PretrainResult
from modes.runs import durable
from modes.runs.history import History
from modes.runs.store import Store
from tests.postgres import new_postgres_db


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def db_url(request, tmp_path):
    """A fresh database: SQLite in tmp_path (the default), or one on a real PostgreSQL server."""
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'hml.sqlite3'}"
    return new_postgres_db(request.getfixturevalue("postgres_server"))


def _open(tmp_path, url) -> History:
    """A History on the store at `url` (adapters in tmp_path), as a (re)started app opens it."""
    return History(tmp_path / "runs", store=Store(url))


def _train(h: History, run, steps: range) -> None:
    h.update(run, status="running")
    for s in steps:
        run.curve.append({"x": s, "y": 3.0 - s / 100, "series": "train"})
        h.update(run, progress=s)


def test_a_restart_keeps_finished_runs_and_marks_the_cut_one(tmp_path, db_url):
    h = _open(tmp_path, db_url)
    owner, other = h.issue(), h.issue()
    done = h.new_run(owner, "pretrain", {"size": "tiny", "steps": 5, "seed": 1})
    _train(h, done, range(1, 6))
    done.samples.insert(0, "— step 5 —\nTo be")
    result = PretrainResult(steps=5, params=10, train_loss=2.95, val_loss=3.0, val_bpc=4.3, pretrained_val_bpc=None,
                            tokens_per_s=1e3, seconds=0.1, samples=[{"step": 5, "text": "To be"}])
    h.update(done, status="done", summary={"val_bpc": 4.3, "steps": 5}, result=result)
    ft = h.new_run(owner, "finetune", {"r": 2})
    h.update(ft, status="done", summary={"chrf_after": 12.5})
    h.save_adapter(ft, b"PK adapter zip", {"direction": "en-ko"})
    cut = h.new_run(owner, "pretrain", {"size": "tiny", "steps": 500, "seed": 2})
    _train(h, cut, range(1, 41))
    durable.save_run(h, cut, force=True)  # a second later the throttle would have written it too
    cut.curve.append({"x": 41, "y": 0.0, "series": "train"})  # never written: the process dies now

    h2 = _open(tmp_path, db_url)  # the restart
    runs = {r.id: r for r in h2.runs(owner)}
    assert set(runs) == {done.id, ft.id, cut.id} and h2.runs(other) == []
    back = runs[done.id]
    assert back.status == "done" and back.curve == done.curve and back.samples == done.samples
    assert back.summary == done.summary and back.result == result and back.settings == done.settings
    assert runs[ft.id].adapter_path and h2.adapter_bytes_of(owner)[1] == b"PK adapter zip"
    again = runs[cut.id]
    assert again.status == "interrupted" and again.interrupted_at == 40 and not again.active
    assert [p["x"] for p in again.curve] == list(range(1, 41))  # the partial curve, all that was written
    assert again.public()["interrupted_at"] == 40
    fresh = h2.new_run(owner, "incontext", {})
    assert fresh.id not in runs  # run ids go on after the restored ones

    h3 = _open(tmp_path, db_url)  # a second restart: the run that was starting is cut too; nothing else changes
    assert {r.id: r.status for r in h3.runs(owner)} == {**{i: r.status for i, r in runs.items()}, fresh.id: "interrupted"}


def test_an_altered_adapter_file_is_written_again_or_dropped_and_orphans_are_removed(tmp_path, db_url):
    """The database keeps each adapter's bytes (any replica serves them): an altered file is written again from
    it; one whose bytes are gone from the database too is dropped; files no run names are removed."""
    import sqlalchemy as sa

    from modes.runs.schema import ADAPTERS

    h = _open(tmp_path, db_url)
    owner = h.issue()
    ft, lost = h.new_run(owner, "finetune", {}), h.new_run(owner, "finetune", {"r": 2})
    for run, data in ((lost, b"lost bytes"), (ft, b"good bytes")):
        h.update(run, status="done", summary={})
        h.save_adapter(run, data, {})
    for run in (ft, lost):
        (tmp_path / "runs" / owner / f"{run.id}.zip").write_bytes(b"tampered")
    with h.store.engine.begin() as c:
        c.execute(sa.delete(ADAPTERS).where(ADAPTERS.c.run_id == lost.id))
    orphan = tmp_path / "runs" / owner / "zz99.zip"
    orphan.write_bytes(b"left by a crash")
    h2 = _open(tmp_path, db_url)
    assert h2.adapter_bytes_of(owner, ft.id)[1] == b"good bytes"
    assert (tmp_path / "runs" / owner / f"{ft.id}.zip").read_bytes() == b"good bytes"
    assert h2.get(owner, lost.id).adapter_path is None and h2.adapter_bytes_of(owner, lost.id) is None
    assert not orphan.exists()


def test_a_failing_store_never_reaches_the_learner(tmp_path, db_url, monkeypatch):
    h = _open(tmp_path, db_url)
    owner = h.issue()

    def full_disk(*a, **kw):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(h.store, "put_run", full_disk)
    run = h.new_run(owner, "pretrain", {})
    _train(h, run, range(1, 4))
    h.update(run, status="done", summary={"val_bpc": 3.0})  # no exception: memory keeps it
    assert h.unsaved and h.runs(owner)[0].summary == {"val_bpc": 3.0}


def test_sixteen_owners_writing_at_once_lose_no_point(tmp_path, db_url):
    h = _open(tmp_path, db_url)
    owners = [h.issue() for _ in range(16)]
    runs = [h.new_run(o, "pretrain", {"i": i}) for i, o in enumerate(owners)]

    def write(run):
        for s in range(1, 61):
            run.curve.append({"x": s, "y": s / 10, "series": "train"})
            h.update(run, status="running", progress=s)
            if s % 10 == 0:
                durable.save_run(h, run, force=True)
        h.update(run, status="done", summary={"n": 60})

    threads = [threading.Thread(target=write, args=(r,)) for r in runs]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert not h.unsaved  # no "database is locked" (or anything else) failed a write
    h2 = _open(tmp_path, db_url)
    for o in owners:
        (back,) = h2.runs(o)
        assert back.status == "done" and [p["x"] for p in back.curve] == list(range(1, 61))


@pytest.mark.parametrize("bad", ["postgresql://nobody@127.0.0.1:1/none", "not a url"])
def test_an_unreachable_database_leaves_the_app_in_memory(tmp_path, monkeypatch, bad):
    from modes.context import AppContext

    monkeypatch.setenv("HML_DATABASE_URL", bad)
    ctx = AppContext(loader=None, data_dir=tmp_path)
    assert ctx.history.store is None
    assert ctx.history.known(ctx.history.issue())
