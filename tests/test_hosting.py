"""A class's morning on a hosted Space: the real client address behind the proxy, joins that never lock a school
out while a guesser stays held, and the warning a Space on its container's own disk gives (EN and KO)."""

from __future__ import annotations

import types

import pytest

from modes import address
from modes.runs import joinlimit, place
from tests.conftest import served_app


def req(peer: str, forwarded: str | None = None):
    headers = {} if forwarded is None else {"x-forwarded-for": forwarded}
    return types.SimpleNamespace(client=types.SimpleNamespace(host=peer), headers=headers)


def test_the_client_address_on_a_space_is_the_proxys_last_forwarded_entry(monkeypatch):
    monkeypatch.setenv("SPACE_ID", "someone/how-models-learn")
    assert address.client_address(req("10.16.3.80", "203.0.113.7")) == "203.0.113.7"
    # What the client sent itself comes first and is never read; the proxy's own entry is the last one.
    assert address.client_address(req("10.16.3.80", "1.2.3.4, 203.0.113.7")) == "203.0.113.7"
    assert address.client_address(req("10.16.3.80", "1.2.3.4, not-an-address")) == "10.16.3.80"
    assert address.client_address(req("10.16.3.80")) == "10.16.3.80"
    monkeypatch.delenv("SPACE_ID")
    # Elsewhere uvicorn has already applied the header from a trusted proxy: the peer it leaves is the address.
    assert address.client_address(req("127.0.0.1", "203.0.113.7")) == "127.0.0.1"
    assert address.client_address(None) == ""


def _join_error(c, code) -> str:
    from gradio_client.exceptions import AppError

    try:
        c.predict(code, "", api_name="/class_join")
    except AppError as exc:
        return str(exc)
    return ""


def test_on_a_space_two_learners_behind_the_proxy_are_limited_apart(tiny_tokenizer, monkeypatch):
    monkeypatch.setenv("SPACE_ID", "someone/how-models-learn")
    # As on a Space: uvicorn does not trust the peer (the platform's proxy), so only the app reads the header.
    monkeypatch.setenv("FORWARDED_ALLOW_IPS", "192.0.2.1")
    monkeypatch.setattr(joinlimit, "PER_ADDRESS", 4)  # the same rule with a smaller budget: fewer calls
    with served_app(tokenizer=tiny_tokenizer) as s:
        code = s.client().predict(api_name="/class_create")["code"]
        guesser = s.client(headers={"X-Forwarded-For": "198.51.100.1"})
        learner = s.client(headers={"X-Forwarded-For": "198.51.100.2"})
        assert all("No class" in _join_error(guesser, "WRONG9") for _ in range(4))
        assert "Too many wrong codes" in _join_error(guesser, code)
        assert _join_error(learner, code) == ""  # another visitor behind the same proxy joins


def test_off_a_space_a_forged_header_from_an_untrusted_peer_changes_nothing(tiny_tokenizer, monkeypatch):
    monkeypatch.delenv("SPACE_ID", raising=False)
    monkeypatch.setenv("FORWARDED_ALLOW_IPS", "192.0.2.1")  # the proxy uvicorn trusts: not this test's 127.0.0.1
    monkeypatch.setattr(joinlimit, "PER_ADDRESS", 4)
    with served_app(tokenizer=tiny_tokenizer) as s:
        code = s.client().predict(api_name="/class_create")["code"]
        for i in range(4):  # each try claims another address: all are counted as 127.0.0.1's
            assert "No class" in _join_error(s.client(headers={"X-Forwarded-For": f"203.0.113.{i}"}), "WRONG9")
        assert "Too many wrong codes" in _join_error(s.client(headers={"X-Forwarded-For": "203.0.113.99"}), code)


def test_a_school_behind_one_address_joins_through_the_api_despite_typos(tiny_tokenizer):
    with served_app(tokenizer=tiny_tokenizer) as s:
        made = s.client().predict(api_name="/class_create")
        typo = s.client()
        for _ in range(10):
            assert "No class" in _join_error(typo, made["code"][::-1] + "Q")
        for i in range(40):  # forty learners, each their own session, from the same address
            assert s.client().predict(made["code"], f"Learner {i}", api_name="/class_join")["name"] == f"Learner {i}"
        board = s.client().predict(made["code"], made["teacher_key"], api_name="/class_board")
        assert len(board["learners"]) == 40


def owner(i: int) -> str:
    return f"{i:032x}"


def refusal(fn, *args) -> str:
    from modes.runs.classes import ClassError

    try:
        fn(*args)
    except ClassError as exc:
        return exc.key
    return ""


def test_a_school_behind_one_address_joins_despite_typos_and_a_guesser_is_held_to_the_stated_rate():
    from modes.runs import joinlimit
    from modes.runs.classes import Classes

    classes = Classes()
    code, _ = classes.create()
    # A class of 40 behind one school address: 10 typos first, then every learner gets in with the right code.
    for i in range(10):
        assert refusal(classes.join, "WRONG" + str(i), owner(i), "", "en", "10.0.0.1") == "cl_refused"
    for i in range(40):
        classes.join(code, owner(200 + i), "", "en", "10.0.0.1")
    assert len(classes.rooms[code].members) == 40
    # A guessing loop from one address: PER_ADDRESS wrong codes in the window, then nothing more, right code or not.
    for i in range(joinlimit.PER_ADDRESS):
        assert refusal(classes.join, f"GUESS{i}", owner(300 + i), "", "en", "203.0.113.5") == "cl_refused"
    assert refusal(classes.join, "GUESSX", owner(400), "", "en", "203.0.113.5") == "cl_slow_down"
    assert refusal(classes.join, code, owner(401), "", "en", "203.0.113.5") == "cl_slow_down"
    assert classes.join(code, owner(98), "", "en", "10.0.0.2").name  # another address is not held


def test_guessing_from_many_addresses_holds_each_to_a_few_tries_and_the_window_lets_go():
    from modes.runs import joinlimit

    clock = [1000.0]
    from modes.runs.classes import Classes

    classes = Classes()
    classes.limit.clock = lambda: clock[0]
    code, _ = classes.create()
    for i in range(joinlimit.GLOBAL):  # a botnet: one wrong code from each of many addresses
        assert refusal(classes.join, "NOPE22", owner(i), "", "en", f"198.51.{i // 250}.{i % 250}") == "cl_refused"
    school = "192.0.2.10"
    for i in range(joinlimit.UNDER_ATTACK):  # meanwhile a learner with a typo or two still gets in
        assert refusal(classes.join, "TYPO" + str(i), owner(900), "", "en", school) == "cl_refused"
    assert refusal(classes.join, code, owner(900), "", "en", school) == "cl_slow_down"  # the third typo was one too many
    assert classes.join(code, owner(901), "", "en", "192.0.2.11").name  # an address without typos is not held
    clock[0] += joinlimit.WINDOW_S + 1
    assert classes.join(code, owner(900), "", "en", school).name  # the window passed


MOUNTS = """22 1 0:21 / / rw,relatime - overlay overlay rw,lowerdir=/x
25 22 0:22 / /proc rw - proc proc rw
30 22 0:40 / /data rw,relatime - fuse.bucket bucket rw
31 22 0:41 / /tmp rw - tmpfs tmpfs rw
"""


@pytest.mark.parametrize("space, data_dir, db, ephemeral", [
    (True, "/home/user/app/data", "sqlite:////home/user/app/data/hml.sqlite3", True),  # the container's own disk
    (True, "/data/hml", "sqlite:////data/hml/hml.sqlite3", False),  # a Storage Bucket mounted at /data
    (True, "/tmp/hml", "sqlite:////tmp/hml/hml.sqlite3", True),  # memory
    (True, "/home/user/app/data", "postgresql+psycopg://u@db/hml", False),  # a database keeps everything
    (False, "/home/user/app/data", "sqlite:////home/user/app/data/hml.sqlite3", False),  # not a Space: no warning
])
def test_the_ephemeral_disk_is_told_only_where_it_is(monkeypatch, space, data_dir, db, ephemeral):
    if space:
        monkeypatch.setenv("SPACE_ID", "someone/how-models-learn")
    else:
        monkeypatch.delenv("SPACE_ID", raising=False)
    got = place.storage(data_dir, db, MOUNTS)
    assert got["ephemeral"] is ephemeral and got["mount"] == ("/data" if data_dir.startswith("/data") else
                                                               "/tmp" if data_dir.startswith("/tmp") else "/")


@pytest.mark.parametrize("space", [True, False])
def test_the_status_line_and_model_status_warn_in_both_languages(tiny_tokenizer, tmp_path, monkeypatch, space):
    import app
    from modes.context import AppContext
    from modes.model.loader import ModelLoader
    from tests.conftest import make_tiny_model

    if space:
        monkeypatch.setenv("SPACE_ID", "someone/how-models-learn")
    else:
        monkeypatch.delenv("SPACE_ID", raising=False)
    monkeypatch.delenv("HML_DATABASE_URL", raising=False)
    monkeypatch.setattr(place, "mount_of", lambda path, mountinfo=None: ("/", "overlay"))
    loader = ModelLoader.from_model(make_tiny_model(len(tiny_tokenizer)), tiny_tokenizer, name="tiny")
    ctx = AppContext(loader, data_dir=tmp_path / "data")
    demo = app.build_app(loader, ctx)
    try:
        status = next(b for b in demo.blocks.values() if getattr(b, "elem_id", None) == "model-status")
        fn = next(f for f in demo.fns.values() if f.api_name == "model_status")
        storage = fn.fn()["storage"]
        assert storage["ephemeral"] is space
        if space:
            assert "Storage Bucket" in storage["warning"]["en"] and "HML_DATABASE_URL" in storage["warning"]["en"]
            assert "Storage Bucket" in storage["warning"]["ko"] and "사라져요" in storage["warning"]["ko"]
            assert "lost at the next restart" in status.value
        else:
            assert storage["warning"] is None and "restart" not in status.value
    finally:
        demo.close()
