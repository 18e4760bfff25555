"""A restart keeps every run: through the API, with the app killed (SIGKILL) mid-training and started again
on the same data dir (SQLite in a temp folder), the token's runs are all there, the cut one interrupted."""

from __future__ import annotations

import os
import time
from pathlib import Path

import pytest

from bench.storm import free_port, save_tiny_model, start_app, wait_for_page
from tests.conftest import scaled, wait_until
from tests.postgres import new_postgres_db

pytestmark = pytest.mark.restart


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def app_on(request, tmp_path, monkeypatch):
    """start() -> (process, url) of `python app.py` on a tiny local model, its data dir in tmp_path, its
    database SQLite there (the default) or one on a real PostgreSQL server (HML_DATABASE_URL)."""
    model = tmp_path / "model"
    save_tiny_model(model)
    monkeypatch.setenv("HML_DATA_DIR", str(tmp_path / "data"))
    monkeypatch.delenv("HML_DATABASE_URL", raising=False)
    if request.param == "postgres":
        monkeypatch.setenv("HML_DATABASE_URL", new_postgres_db(request.getfixturevalue("postgres_server")))
    procs = []

    def start():
        port = free_port()
        proc = start_app(str(model), str(tmp_path / "cache"), port, str(tmp_path / f"app-{port}.log"))
        procs.append(proc)
        url = f"http://127.0.0.1:{port}/"
        wait_for_page(url, time.perf_counter(), timeout=scaled(180))
        return proc, url

    yield start
    for p in procs:
        p.kill()
        p.wait(30)


def _db_step(tmp_path, seed: int) -> int:
    """The step the database holds for the run with this seed (0 when none): read directly, as a restart reads it."""
    import json

    import sqlalchemy as sa

    from modes.runs.store import database_url

    engine = sa.create_engine(database_url(tmp_path / "data"))
    try:
        with engine.connect() as c:
            rows = c.execute(sa.text("SELECT step, doc FROM runs")).all()
    finally:
        engine.dispose()
    return max((int(step) for step, doc in rows if json.loads(doc).get("settings", {}).get("seed") == seed), default=0)


def _runs(url, token):
    from gradio_client import Client

    return Client(url, verbose=False, headers={"X-HML-Owner": token}).predict(api_name="/runs")


def test_a_killed_app_comes_back_with_every_run(app_on, tmp_path):
    from gradio_client import Client

    proc, url = app_on()
    token = Client(url, verbose=False).predict(api_name="/owner")["owner"]
    me = Client(url, verbose=False, headers={"X-HML-Owner": token})
    me.predict(corpus="shakespeare", size="tiny", steps=5, seed=1, api_name="/pretrain")
    me.predict(corpus="shakespeare", size="tiny", steps=6, seed=2, api_name="/pretrain")
    me.predict(steps=2, r=2, seed=0, api_name="/finetune")
    me.submit(corpus="shakespeare", size="tiny", steps=5000, seed=3, fresh=True, api_name="/pretrain")
    end = time.monotonic() + scaled(120)
    while not any(r["settings"].get("seed") == 3 and r["status"] == "running" for r in _runs(url, token)):
        assert time.monotonic() < end, "the long run never started"
        time.sleep(0.2)
    # The cut comes once the database holds a step of the run (curve writes land at most once a second): the event
    # itself, read from the database, not a fixed wait a slow machine outlives.
    wait_until(lambda: _db_step(tmp_path, seed=3) > 0, 120, "no step of the long run reached the database")
    proc.kill()  # SIGKILL: no shutdown code runs
    proc.wait(30)

    _, url = app_on()  # the same data dir
    runs = {(r["kind"], r["settings"].get("seed")): r for r in _runs(url, token)}
    assert set(runs) == {("pretrain", 1), ("pretrain", 2), ("finetune", 0), ("pretrain", 3)}
    assert [runs[("pretrain", s)]["status"] for s in (1, 2)] == ["done", "done"]
    assert runs[("pretrain", 1)]["summary"]["steps"] == 5 and runs[("finetune", 0)]["has_adapter"]
    cut = runs[("pretrain", 3)]
    assert cut["status"] == "interrupted" and cut["interrupted_at"] > 0 and cut["summary"] is None
    me = Client(url, verbose=False, headers={"X-HML-Owner": token})
    cmp = me.predict(picked=[runs[("pretrain", 1)]["id"], runs[("pretrain", 2)]["id"]], api_name="/compare")[-1]
    assert len(cmp["curves"]["train"]["x"]) == 6 and cmp["diff"]["steps"] == [5, 6]
    me.predict(picked=[runs[("finetune", 0)]["id"]], api_name="/use_adapter")  # the kept adapter, read back from disk
    out = me.predict(text="Where is the station?", k=1, use_adapter=True, max_new_tokens=3, api_name="/translate")[-1]
    assert out["used_adapter"] is True
    other = Client(url, verbose=False).predict(api_name="/owner")["owner"]
    assert _runs(url, other) == [] and _runs(url, "f" * 32) == []
    # Run again: the interrupted run's settings, as a new run (the old one stays, interrupted).
    me.predict(picked=[cut["id"]], api_name="/run_again")
    again = [r for r in _runs(url, token) if r["settings"].get("seed") == 3]
    assert len(again) == 2 and {r["status"] for r in again} >= {"interrupted"}
    new = next(r for r in again if r["id"] != cut["id"])
    assert new["settings"] == cut["settings"] and new["status"] in ("starting", "queued", "running")
    assert (Path(tmp_path) / "data" / "hml.sqlite3").exists() == ("HML_DATABASE_URL" not in os.environ)


def test_the_idle_time_work_runs_once_and_is_kept_across_a_restart(tmp_path, monkeypatch):
    """`python app.py` with its idle-time work on (the default; the tests turn it off elsewhere): it computes the
    shared base-model figures once the model is ready; started again on the same folders, it finds them on disk."""
    from gradio_client import Client

    model = tmp_path / "model"
    save_tiny_model(model)
    monkeypatch.setenv("HML_WARMUP", "on")
    monkeypatch.setenv("HML_DATA_DIR", str(tmp_path / "data"))
    monkeypatch.delenv("HML_SHARED_RESULTS", raising=False)  # beside the model cache, the default

    def start_and_wait() -> tuple:
        port = free_port()
        proc = start_app(str(model), str(tmp_path / "cache"), port, str(tmp_path / f"app-{port}.log"))
        url = f"http://127.0.0.1:{port}/"
        try:
            wait_for_page(url, time.perf_counter(), timeout=scaled(180))
            end = time.monotonic() + scaled(180)
            while (w := Client(url, verbose=False).predict(api_name="/model_status")["warmup"])["state"] != "done":
                assert w["state"] in ("off", "waiting", "running") and time.monotonic() < end, w
                time.sleep(0.3)
            return proc, w
        except BaseException:
            proc.kill()
            raise

    proc, first = start_and_wait()
    proc.kill()  # SIGKILL: what it computed is already on disk
    proc.wait(30)
    assert first["done"] == ["finetune", "incontext"] and first["pieces"] > 0 and first["error"] is None
    assert any((tmp_path / "cache" / "shared-results" / "results").glob("*.json"))
    proc, again = start_and_wait()
    try:
        assert again["done"] == ["finetune", "incontext"] and again["pieces"] == 0  # nothing computed twice
    finally:
        proc.kill()
        proc.wait(30)
