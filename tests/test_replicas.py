"""Three `python app.py` processes on one PostgreSQL database, each addressed directly (as a sticky load balancer
would send each learner to one): the class board, tokens, shared work, failed joins and a replica's death.

The teacher is on P3, learner 1 on P1, learner 2 on P2. Every wait is for an event (a run's status, a board
row), with a generous cap, and fails saying what it saw."""

from __future__ import annotations

import os
import re
import time

import pytest

from bench.storm import free_port, save_tiny_model, start_app, wait_for_page
from tests.conftest import scaled
from tests.postgres import new_postgres_db

# One xdist group (pytest.ini: --dist loadgroup): both tests run on one worker and share the three replicas.
pytestmark = [pytest.mark.restart, pytest.mark.postgres, pytest.mark.xdist_group("replicas")]
DEAD_AFTER_S = 6  # HML_DEAD_AFTER_S for these processes (the default is 20): the kill test waits less


def until(fn, why: str, cap: float = 180.0):
    """fn()'s first truthy value, polled; fails with `why` and the last value seen."""
    end, last = time.monotonic() + cap, None
    while time.monotonic() < end:
        last = fn()
        if last:
            return last
        time.sleep(0.3)
    raise AssertionError(f"{why}; last seen: {last!r}")


@pytest.fixture(scope="module")
def replicas(tmp_path_factory, postgres_server):
    """{1: (process, url), 2: ..., 3: ...}: three app processes, each with its own data dir, one database."""
    tmp = tmp_path_factory.mktemp("replicas")
    model = tmp / "model"
    save_tiny_model(model)
    env = {"HML_DATABASE_URL": new_postgres_db(postgres_server), "HML_DEAD_AFTER_S": str(DEAD_AFTER_S)}
    old = {k: os.environ.get(k) for k in (*env, "HML_DATA_DIR")}
    procs = {}
    try:
        os.environ.update(env)
        for i in (1, 2, 3):
            os.environ["HML_DATA_DIR"] = str(tmp / f"data-{i}")
            port = free_port()
            procs[i] = (start_app(str(model), str(tmp / f"cache-{i}"), port, str(tmp / f"app-{i}.log")), f"http://127.0.0.1:{port}/")
        for _, url in procs.values():
            wait_for_page(url, time.perf_counter(), timeout=scaled(300))
        yield procs
    finally:
        for k, v in old.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v
        for p, _ in procs.values():
            p.kill()
            p.wait(30)


def client(url, token=None):
    from gradio_client import Client

    return Client(url, verbose=False, **({"headers": {"X-HML-Owner": token}} if token else {}))


def runs_of(url, token) -> list:
    return client(url, token).predict(api_name="/runs")


def test_three_replicas_serve_one_class(replicas):
    (p1, u1), (_, u2), (_, u3) = replicas[1], replicas[2], replicas[3]
    made = client(u3).predict(api_name="/class_create")
    code, key = made["code"], made["teacher_key"]
    t1 = client(u1).predict(api_name="/owner")["owner"]
    t2 = client(u2).predict(api_name="/owner")["owner"]
    assert client(u1, t1).predict(code, "Ada", api_name="/class_join")["name"] == "Ada"
    assert client(u2, t2).predict(code, "Grace", api_name="/class_join")["name"] == "Grace"

    # Both pre-train on their own replica; P3's board shows both runs with their results.
    client(u1, t1).predict(corpus="shakespeare", size="tiny", steps=5, seed=1, api_name="/pretrain")
    client(u2, t2).predict(corpus="shakespeare", size="tiny", steps=6, seed=2, api_name="/pretrain")

    def board_has_both():
        board = client(u3).predict(code, key, api_name="/class_board")
        rows = {r["learner"]: r for r in board["runs"].get("pretrain", []) if r["status"] == "done" and r["result"].get("val_bpc")}
        return board if set(rows) == {"Ada", "Grace"} and len(board["learners"]) == 2 else None

    board = until(board_has_both, "P3's board never showed both learners' finished pre-trainings")
    assert {r["settings"]["steps"] for r in board["runs"]["pretrain"]} == {5, 6}

    # A token issued by P1 works on P3; a forged one sees nothing anywhere.
    assert [r["settings"]["seed"] for r in runs_of(u3, t1)] == [1]
    for url in (u1, u2, u3):
        assert runs_of(url, "f" * 32) == []

    # The same tiny run started at once on P2 and P3: computed once, the other replays it and says so.
    same = dict(corpus="shakespeare", size="tiny", steps=40, seed=7, api_name="/pretrain")
    jobs = [client(u2, t2).submit(**same), client(u3, t1).submit(**same)]
    outs = [j.result(timeout=scaled(300))[-1] for j in jobs]
    assert sorted(o["replay"] is None for o in outs) == [False, True], [o["replay"] for o in outs]
    assert outs[0]["val_bpc"] == outs[1]["val_bpc"]

    # P1 dies while learner 1 trains there: P2 shows the finished runs and the cut one interrupted at its step.
    client(u1, t1).submit(corpus="shakespeare", size="tiny", steps=5000, seed=3, fresh=True, api_name="/pretrain")
    until(lambda: [r for r in runs_of(u2, t1) if r["settings"].get("seed") == 3 and r["status"] == "running"],
          "P2 never saw learner 1's long run start on P1")

    def p3_board_says_training():
        """P3's board, read from the database, names a step past 0: the database holds the run's progress."""
        learners = client(u3).predict(code, key, api_name="/class_board")["learners"]
        doing = next((x["doing"] for x in learners if x["name"] == "Ada" and x["doing"].startswith("training pretrain at step")), "")
        step = re.search(r"at step (\d+)", doing)
        return doing if step and int(step.group(1)) > 0 else None

    until(p3_board_says_training, "P3's board never showed what learner 1 does on P1 at a step past 0")
    p1.kill()
    p1.wait(30)
    killed = time.monotonic()
    cut = until(lambda: next((r for r in runs_of(u2, t1) if r["settings"].get("seed") == 3 and r["status"] == "interrupted"), None),
                "P2 never marked the dead replica's run interrupted", cap=60)
    assert time.monotonic() - killed < 20 + scaled(10)  # HML_DEAD_AFTER_S (20), then a sweep and a read-back
    assert cut["interrupted_at"] > 0 and cut["summary"] is None
    mine = runs_of(u2, t1)
    assert {r["settings"]["seed"]: r["status"] for r in mine if r["id"] != cut["id"]} == {1: "done", 7: "done"}
    client(u2, t1).predict(picked=[cut["id"]], api_name="/run_again")
    again = [r for r in runs_of(u2, t1) if r["settings"].get("seed") == 3 and r["id"] != cut["id"]]
    assert len(again) == 1 and again[0]["status"] in ("starting", "queued", "running", "done")


def test_failed_joins_from_one_address_count_on_every_replica(replicas):
    (_, u2), (_, u3) = replicas[2], replicas[3]
    from gradio_client.exceptions import AppError

    from modes.runs.joinlimit import PER_ADDRESS

    made = client(u3).predict(api_name="/class_create")
    refusals, clients = [], (client(u2), client(u3))
    for i in range(PER_ADDRESS):
        with pytest.raises(AppError) as e:
            clients[i % 2].predict("ZZZZZ9", "", api_name="/class_join")
        refusals.append(str(e.value))
    assert refusals and all("Too many" not in r for r in refusals), refusals
    for url in (u2, u3):  # the next wrong code, on either replica, is held back: the failures were counted together
        with pytest.raises(AppError) as e:
            client(url).predict("ZZZZZ9", "", api_name="/class_join")
        assert "Too many wrong codes" in str(e.value), str(e.value)
    assert made["code"]
