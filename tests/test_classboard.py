"""The class board: a class's code and key, joining, names, privacy, the experiment, restarts, and the API's doors.

Fast tests on the class rows alone (modes/runs/classes.py) and on the board as data (modes/classboard/board.py),
then one app on a tiny random model driven through the API as a teacher and six learners.
"""

from __future__ import annotations

import statistics
import time
from types import SimpleNamespace

import pytest

from modes import tabs as registry
from modes.classboard import board as boards
from modes.runs.classes import ALPHABET, MAX_LEARNERS, ClassError, Classes, clean_name, normal_code
from modes.runs.history import History
from tests.conftest import scaled, served_app

XSS = "<img src=x onerror=alert(1)>"


def owner(n: int) -> str:
    return f"{n:032x}"


def refusal(fn, *args) -> str:
    with pytest.raises(ClassError) as e:
        fn(*args)
    return e.value.key


# ---- the class rows ---------------------------------------------------------------------------------
def test_a_class_has_a_short_unambiguous_code_and_a_128_bit_key_kept_only_as_a_hash():
    classes = Classes()
    codes = set()
    for _ in range(50):
        code, key = classes.create()
        assert len(code) == 6 and set(code) <= set(ALPHABET) and not set(code) & set("0O1IL")
        assert len(key) >= 22  # token_urlsafe(16): 128 bits
        room = classes.rooms[code]
        assert key not in repr(room.doc()) and room.key_hash != key
        codes.add(code)
    assert len(codes) == 50
    assert normal_code(" ab-c 23k ") == "ABC23K"


def test_a_wrong_key_and_an_unknown_code_get_the_same_refusal_in_the_same_time():
    classes = Classes()
    code, key = classes.create()
    assert classes.teacher(code.lower(), key).code == code
    assert refusal(classes.teacher, code, "wrong") == refusal(classes.teacher, "ZZZZZZ", key) == "cl_refused"
    assert refusal(classes.teacher, code, None) == refusal(classes.teacher, None, None) == "cl_refused"

    def median_s(code_, key_, n=3000) -> float:
        times = []
        for _ in range(n):
            t0 = time.perf_counter()
            try:
                classes.teacher(code_, key_)
            except ClassError:
                pass
            times.append(time.perf_counter() - t0)
        return statistics.median(times)

    wrong_key, unknown = median_s(code, "x" * 22), median_s("ZZZZZZ", "x" * 22)
    # Both hash the key and compare digests in constant time: the medians differ by far less than a network's jitter.
    assert abs(wrong_key - unknown) < 20e-6, (wrong_key, unknown)


def test_names_are_plain_text_generated_in_the_learners_language_and_unique():
    assert clean_name("  Ada\x00\x1b[31m\u202e Lovelace\n\t ") == "Ada[31m Lovelace"
    assert clean_name("x" * 100) == "x" * 24
    assert clean_name(XSS) == XSS[:24]  # kept as text: the page shows it as text (tests/test_browser_class.py)
    classes = Classes()
    code, _ = classes.create()
    ko = classes.join(code, owner(1), "", "ko")
    en = classes.join(code, owner(2), "", "en")
    assert any("\uac00" <= ch <= "\ud7a3" for ch in ko.name) and en.name.isascii()
    a, b = classes.join(code, owner(3), "Sam"), classes.join(code, owner(4), "Sam")
    assert (a.name, b.name) == ("Sam", "Sam 2")
    assert refusal(classes.rename, owner(4), "\x07") == "cl_name_empty"


def test_a_full_class_says_so_and_a_closed_class_takes_nobody_new():
    classes = Classes()
    code, key = classes.create()
    for i in range(MAX_LEARNERS):
        classes.join(code, owner(i), "")
    assert refusal(classes.join, code, owner(10_000), "") == "cl_full"
    assert classes.join(code, owner(5), "again").name == "again"  # a member may come back
    classes.close(classes.teacher(code, key))
    assert refusal(classes.join, code, owner(10_001), "") == "cl_closed"


def test_the_experiment_hands_out_the_next_value_to_each_learner_in_join_order():
    classes = Classes()
    code, key = classes.create()
    for i in range(2):
        classes.join(code, owner(i), "")
    classes.set_experiment(classes.teacher(code, key), "finetune", "r", [1, 2, 4])
    assert [m.value for m in classes.rooms[code].members.values()] == [1, 2]
    assert [classes.join(code, owner(10 + i), "").value for i in range(3)] == [4, 1, 2]


def test_classes_survive_a_restart_and_expire_with_the_stores_retention(tmp_path):
    from modes.runs.store import Store

    url = f"sqlite:///{tmp_path / 'hml.sqlite3'}"
    clock = [1_000_000.0]
    classes = Classes(Store(url), ttl_s=3600, clock=lambda: clock[0])
    code, key = classes.create()
    classes.join(code, owner(1), "Ada")
    classes.set_experiment(classes.teacher(code, key), "pretrain", "steps", [10, 20])
    classes.join(code, owner(2), "Bo")
    classes.share(owner(2), "abc1", False)
    classes.set_names_shown(classes.teacher(code, key), False)
    again = Classes(Store(url), ttl_s=3600, clock=lambda: clock[0])
    room = again.teacher(code, key)
    assert [(m.name, m.value, m.unshared) for m in room.members.values()] == [("Ada", 10, set()), ("Bo", 20, {"abc1"})]
    assert room.show_names is False and room.experiment.values == [10, 20] and again.membership(owner(2))[0] is room
    assert again.join(code, owner(3), "").value == 10  # the next value survives too
    clock[0] += 3601
    later = Classes(Store(url), ttl_s=3600, clock=lambda: clock[0])
    assert later.rooms == {} and refusal(later.teacher, code, key) == "cl_refused"


# ---- the board as data -------------------------------------------------------------------------------
def _class_with_runs(n_learners: int = 3):
    """A class whose learners each finished a pre-training, a fine-tune and a sweep (with private text in them)."""
    history, classes = History(), Classes()
    code, key = classes.create()
    room = classes.teacher(code, key)
    owners = [history.issue() for _ in range(n_learners)]
    for i, o in enumerate(owners):
        classes.join(code, o, f"learner {i}")
        p = history.new_run(o, "pretrain", {"corpus": "diary-of-ada.txt", "size": "tiny", "steps": 10 * (i + 1), "seed": i})
        history.update(p, status="done", summary={"val_bpc": 3.0 - i / 10, "samples": ["SECRET SAMPLE"], "corpus": "diary-of-ada.txt"})
        f = history.new_run(o, "finetune", {"steps": 2, "r": 2 ** i, "direction": "en-ko", "data": "built-in"})
        history.update(f, status="done", summary={"chrf_after": 20.0 + i, "chrf_before": 5.0, "examples": [{"source": "SECRET"}],
                                                   "off_task": {"reverse_chrf_before": 10.0, "reverse_chrf_after": 8.0 - i,
                                                                "general_bpc_before": 2.0, "general_bpc_after": 2.5,
                                                                "continuations": [{"prompt": "SECRET"}]}})
        s = history.new_run(o, "incontext", {"direction": "en-ko", "ks": "0,2", "n": 8, "seed": 0, "adapter": "deadbeef"})
        history.update(s, status="done", summary={"chrf": {"0": 3.0 + i, "2": 10.0 + i}, "best_k": 2, "n": 8})
    return history, classes, room, owners


def test_the_board_has_a_row_per_learner_leaders_scatters_and_the_three_ways_with_counts():
    history, classes, room, owners = _class_with_runs(3)
    tabs = registry.load()
    full = boards.board(room, history.runs_of(owners), tabs)
    assert [x["name"] for x in full["learners"]] == ["learner 0", "learner 1", "learner 2"]
    assert all(x["doing"] == "idle" and x["runs"] == 3 for x in full["learners"])
    assert [r["learner"] for r in full["leaders"]["pretrain"]] == ["learner 2", "learner 1", "learner 0"]  # lowest bpc first
    assert [p["x"] for p in boards.scatter("finetune", full["runs"]["finetune"], "r")] == [1, 2, 4]
    assert len(boards.scatter("incontext", full["runs"]["incontext"], "k")) == 6
    tw = full["three_ways"]["directions"]["en-ko"]
    assert tw["k0"] == {"median": 4.0, "low": 3.0, "high": 5.0, "runs": 3, "learners": 3}
    assert tw["lora"]["median"] == 21.0 and tw["reverse_chrf_drop"]["median"] == 3.0 and tw["most_common_k"] == 2
    assert full["three_ways"]["pretrain"]["runs"] == 3
    # Privacy: settings and numbers only.
    text = repr(full)
    assert "SECRET" not in text and "diary-of-ada" not in text and "deadbeef" not in text


def test_unshared_removed_and_pre_class_runs_stay_off_the_board_and_hidden_names_are_numbers():
    history, classes, room, owners = _class_with_runs(2)
    early = history.new_run(owners[0], "pretrain", {"steps": 5})
    early.created = room.members[owners[0]].joined - 10  # made before joining: never shared
    mine = [r for r in history.runs(owners[0]) if r.kind == "finetune"][0]
    classes.share(owners[0], mine.id, False)
    theirs = [r for r in history.runs(owners[1]) if r.kind == "pretrain"][0]
    classes.remove_run(room, theirs.id)
    classes.set_names_shown(room, False)
    full = boards.board(room, history.runs_of(owners), registry.load())
    ids = {r["id"] for rows in full["runs"].values() for r in rows}
    assert mine.id not in ids and theirs.id not in ids and early.id not in ids
    assert [x["name"] for x in full["learners"]] == ["Learner 1", "Learner 2"]
    # What a learner sees: aggregates and their own name, never another learner's name or runs.
    seen = boards.for_learner(full, room.members[owners[0]])
    assert "learner 1" not in repr(seen) and "runs" not in seen and seen["learners"] == 2


def test_the_experiment_curve_has_a_point_per_learner_in_the_order_of_the_values():
    history, classes, room, owners = _class_with_runs(0)
    classes.set_experiment(room, "finetune", "r", [32, 1, 8])
    for i, v in enumerate([32, 1, 8, 32]):
        o = history.issue()
        assert classes.join(room.code, o, f"s{i}").value == v
        r = history.new_run(o, "finetune", {"r": v, "direction": "en-ko"})
        history.update(r, status="done", summary={"chrf_after": float(v + i)})
    full = boards.board(room, history.runs_of(list(room.members)), registry.load())
    exp = full["experiment"]
    assert [p["value"] for p in exp["points"]] == [32, 32, 1, 8]
    assert [(c["value"], c["learners"]) for c in exp["curve"]] == [(32, 2), (1, 1), (8, 1)]
    assert exp["assigned"] == {"32": 2, "1": 1, "8": 1}


def test_the_csv_has_one_row_per_run_with_settings_and_results():
    history, classes, room, owners = _class_with_runs(2)
    import csv
    import io

    from modes.classboard import tab as classtab

    ctx = SimpleNamespace(history=history, classes=classes)
    other, key = classes.create()
    room.key_hash = classes.rooms[other].key_hash  # the class under test, opened with a key we know
    rows = list(csv.DictReader(io.StringIO(classtab.class_csv(ctx, registry.load(), room.code, key))))
    assert len(rows) == 6 and {r["kind"] for r in rows} == {"pretrain", "finetune", "incontext"}
    ft = [r for r in rows if r["kind"] == "finetune"]
    assert {r["setting.r"] for r in ft} == {"1", "2"} and {r["result.chrf_after"] for r in ft} == {"20.0", "21.0"}
    assert all("SECRET" not in repr(r) for r in rows)


def test_the_three_ways_are_measured_per_direction_en_ko_and_ko_en():
    history, classes, room, owners = _class_with_runs(0)
    for i, d in enumerate(["en-ko", "ko-en", "ko-en"]):
        o = history.issue()
        classes.join(room.code, o, f"s{i}")
        s = history.new_run(o, "incontext", {"direction": d, "ks": "0,4"})
        history.update(s, status="done", summary={"chrf": {"0": 10.0 * (i + 1), "4": 30.0 + i}, "best_k": 4})
        f = history.new_run(o, "finetune", {"direction": d, "r": 4})
        history.update(f, status="done", summary={"chrf_after": 40.0 + i, "chrf_before": 9.0})
    tw = boards.board(room, history.runs_of(list(room.members)), registry.load())["three_ways"]["directions"]
    assert set(tw) == {"en-ko", "ko-en"}
    assert (tw["en-ko"]["k0"]["runs"], tw["ko-en"]["k0"]["runs"]) == (1, 2)
    assert tw["ko-en"]["k0"]["median"] == 25.0 and tw["ko-en"]["lora"] == {"median": 41.5, "low": 41.0, "high": 42.0,
                                                                            "runs": 2, "learners": 2}
    assert tw["en-ko"]["most_common_k"] == 4 and tw["ko-en"]["reverse_chrf_drop"] is None  # no off-task figures: no claim


def test_a_masked_pre_training_and_a_summary_fine_tune_are_not_ranked_with_the_other_task():
    """Their figures are another task's (bits per masked character; summary chrF): on the board they are listed,
    out of the leaderboards and the three ways."""
    history, classes, room, owners = _class_with_runs(2)
    o = owners[0]
    m = history.new_run(o, "pretrain", {"corpus": "shakespeare", "size": "tiny", "steps": 10, "seed": 9, "objective": "masked"})
    history.update(m, status="done", summary={"val_bpc": 0.5, "objective": "masked", "fill_in_accuracy": 0.4})
    f = history.new_run(o, "finetune", {"steps": 2, "r": 2, "direction": "en-ko", "task": "dialogue-summary", "summary_lang": "en"})
    history.update(f, status="done", summary={"chrf_after": 90.0, "chrf_before": 0.0, "task": "dialogue-summary"})
    full = boards.board(room, history.runs_of(owners), registry.load())
    assert [r["figure"] for r in full["runs"]["pretrain"] if r["settings"].get("objective") == "masked"] == [None]
    assert 0.5 not in [r["figure"] for r in full["leaders"]["pretrain"]]
    assert 90.0 not in [r["figure"] for r in full["leaders"]["finetune"]]
    tw = full["three_ways"]
    assert tw["pretrain"]["runs"] == 2 and tw["directions"]["en-ko"]["lora"]["runs"] == 2  # the two learners' translation runs


def test_an_experiment_takes_a_presettable_setting_checked_by_its_tabs_config():
    import gradio as gr

    from modes.classboard import tab as classtab

    tabs = registry.load()
    assert classtab.parse_values(tabs, "finetune", "r", "1, 2,4", "en") == [1, 2, 4]
    assert classtab.parse_values(tabs, "finetune", "direction", "en-ko, ko-en", "en") == ["en-ko", "ko-en"]
    assert classtab.parse_values(tabs, "pretrain", "steps", "100,2000", "ko") == [100, 2000]
    for kind, setting, values, why in (("finetune", "r", "0", "r: must be"), ("finetune", "eval_every", "5", "no setting"),
                                       ("finetune", "direction", "fr-de", "direction: must be one of"),
                                       ("incontext", "k", "1", "one of these tabs"), ("finetune", "r", "2.5", "r: must be a whole number, got '2.5'")):
        with pytest.raises(gr.Error, match=why):
            classtab.parse_values(tabs, kind, setting, values, "en")


def test_a_board_is_built_once_per_change():
    from modes.classboard import tab as classtab

    history, classes, room, owners = _class_with_runs(2)
    ctx, tabs = SimpleNamespace(history=history, classes=classes), registry.load()
    first = classtab.board_of(ctx, tabs, room)
    assert classtab.board_of(ctx, tabs, room)["runs"] is first["runs"]  # an unchanged class: the same build
    run = history.new_run(owners[0], "pretrain", {"steps": 7})
    history.update(run, status="running")
    moved = classtab.board_of(ctx, tabs, room)
    assert moved["learners"][0]["doing"].startswith("training pretrain") and moved["runs"] is not first["runs"]
    classes.leave(owners[1])
    assert [x["name"] for x in classtab.board_of(ctx, tabs, room)["learners"]] == ["learner 0"]


# ---- through the API: a teacher and six learners -------------------------------------------------------
def test_a_class_experiment_through_the_api(tiny_tokenizer):
    from gradio_client import Client

    with served_app(tokenizer=tiny_tokenizer) as s:
        teacher = s.client()
        made = teacher.predict(api_name="/class_create")
        code, key = made["code"], made["teacher_key"]
        # Bad input gets the same short refusal, and an out-of-bounds value is refused by the config's field name.
        for bad in ((code, "nope"), ("ZZZZZZ", key)):
            with pytest.raises(Exception, match="No class with that code and key"):
                teacher.predict(*bad, api_name="/class_board")
        with pytest.raises(Exception, match="r: must be a whole number from 1 to 256"):
            teacher.predict(code, key, "finetune", "r", "1, 999", api_name="/class_experiment")
        teacher.predict(code, key, "finetune", "r", "1, 2, 4, 8, 16, 32", api_name="/class_experiment")

        learners = []
        for i in range(6):
            token = s.client().predict(api_name="/owner")["owner"]
            me = Client(s.url, verbose=False, headers={"X-HML-Owner": token})
            joined = me.predict(code.lower(), f"student {i}", api_name="/class_join")
            assert joined["assigned"] == {"kind": "finetune", "setting": "r", "value": [1, 2, 4, 8, 16, 32][i]}
            learners.append((me, joined))
        jobs = [me.submit(steps=2, r=j["assigned"]["value"], seed=0, api_name="/finetune") for me, j in learners]
        for job in jobs:
            job.result(timeout=scaled(600))

        full = teacher.predict(code, key, api_name="/class_board")
        assert len(full["learners"]) == 6 and all(x["runs"] == 1 for x in full["learners"])
        exp = full["experiment"]
        assert [p["value"] for p in exp["points"]] == [1, 2, 4, 8, 16, 32]
        assert [p["learner"] for p in exp["points"]] == [f"student {i}" for i in range(6)]
        assert all(isinstance(p["result"], float) for p in exp["points"])
        # A learner sees the aggregates (the experiment's medians), never the others' names.
        mine = learners[0][0].predict(api_name="/my_class")
        assert mine["you"] == "student 0" and len(mine["experiment"]["curve"]) == 6 and "student 1" not in repr(mine)
        # Unsharing a run takes it off the board; the teacher can remove one; the CSV names every run left.
        run_id = learners[0][0].predict(api_name="/runs")[0]["id"]
        learners[0][0].predict(run_id, False, api_name="/class_share")
        gone = teacher.predict(code, key, "remove_run", learners[1][0].predict(api_name="/runs")[0]["id"], api_name="/class_teacher")
        assert len(gone["experiment"]["points"]) == 4
        csv_text = teacher.predict(code, key, api_name="/class_csv")
        assert csv_text.count("\n") == 1 + 4 and "student 5" in csv_text
        hidden = teacher.predict(code, key, "hide_names", "", api_name="/class_teacher")
        assert {x["name"] for x in hidden["learners"]} == {f"Learner {i}" for i in range(1, 7)}
        closed = teacher.predict(code, key, "close", "", api_name="/class_teacher")
        assert closed["closed"] is True
        late = Client(s.url, verbose=False)
        with pytest.raises(Exception, match="This class is closed"):
            late.predict(code, "", api_name="/class_join")
