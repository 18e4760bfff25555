"""Your runs: kept per learner (owner id), private, bounded, expiring, comparable, and still running
(and followed again) after a reload; a training nobody follows stops after the grace period."""

from __future__ import annotations

import pytest

from modes.runs import curves
from modes.runs import follow as records
from modes.runs.history import FOLLOW_EVERY, History, Session
from tests.conftest import served_app, wait_until


# ---- owners: issued by the server, checked, private -------------------------------------------------
def test_owner_ids_are_issued_128_bit_and_checked():
    h = History()
    a = h.issue()
    assert h.known(a)
    # 128 random bits each: 32 lowercase hex digits, never repeated, every digit position varying.
    many = [h.issue() for _ in range(400)]
    assert all(len(x) == 32 and set(x) <= set("0123456789abcdef") for x in many) and len(set(many)) == 400
    assert all(len({x[i] for x in many}) > 8 for i in range(32))
    for forged in ("0" * 32, a.upper(), a[:-1], a + "0", "../" + a[3:], None, 12345, {"owner": a}):
        assert not h.known(forged), forged
    s = Session()
    assert h.attach(s, "f" * 32) != "f" * 32 and h.known(s.owner)  # a never-issued id gets a fresh owner
    s2 = Session()
    assert h.attach(s2, a) == a  # an issued one is taken back (the reload case)


def test_each_owner_sees_only_its_own_runs():
    h = History()
    a, b = h.issue(), h.issue()
    ra = h.new_run(a, "pretrain", {"seed": 1})
    h.new_run(b, "pretrain", {"seed": 2})
    assert [r.id for r in h.runs(a)] == [ra.id]
    assert h.get(b, ra.id) is None and not h.delete(b, ra.id)  # b cannot read or delete a's run
    assert h.runs("0" * 32) == [] and h.get("0" * 32, ra.id) is None  # a forged id sees nothing
    assert not h.delete(a, ra.id)  # still queued or running: stop it first
    h.update(ra, status="done")
    assert h.delete(a, ra.id) and h.runs(a) == []


def test_caps_drop_the_oldest_finished_runs_and_say_so(tmp_path):
    h = History(tmp_path, max_runs=3, max_adapter_bytes=1000)
    o = h.issue()
    runs = [h.new_run(o, "finetune", {"seed": i}) for i in range(3)]
    for r in runs:
        h.update(r, status="done")
    h.save_adapter(runs[0], b"x" * 600, {})
    first_file = runs[0].adapter_path
    h.save_adapter(runs[1], b"y" * 600, {})  # 1200 bytes > 1000: the oldest (with its file) goes
    assert runs[0].id not in [r.id for r in h.runs(o)] and not (tmp_path / o / f"{runs[0].id}.zip").exists()
    assert first_file and h.take_dropped(o) == [runs[0].id] and h.take_dropped(o) == []  # told once
    live = h.new_run(o, "pretrain", {})  # running: never dropped for the cap
    for i in range(3):
        h.update(h.new_run(o, "pretrain", {"i": i}), status="done")
    assert live in h.runs(o) and len(h.runs(o)) == 3


class Clock:
    """A clock the test moves by hand: the TTL and grace tests need no real sleeps."""

    def __init__(self):
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_runs_expire_with_their_files(tmp_path):
    clock = Clock()
    h = History(tmp_path, ttl_s=3600, clock=clock)
    o = h.issue()
    r = h.new_run(o, "finetune", {})
    h.update(r, status="done")
    h.save_adapter(r, b"zip", {})
    assert (tmp_path / o / f"{r.id}.zip").exists()
    clock.now += 3599
    assert h.known(o) and h.get(o, r.id) is r  # not yet: used within the TTL
    clock.now += 3599  # the look above counts as use of the owner, not of the run
    h.expire()
    assert h.get(o, r.id) is None and not (tmp_path / o / f"{r.id}.zip").exists()  # the run and its file
    clock.now += 3601
    assert not h.known(o)  # then the owner, and its folder
    assert not (tmp_path / o).exists()


def test_a_run_nobody_follows_stops_after_the_grace_period():
    clock = Clock()
    h = History(grace_s=60, clock=clock)
    r = h.new_run(h.issue(), "pretrain", {})
    h.update(r, status="running")
    page = h.follow(r, every=0.0)  # a connected page: Gradio asks the follower for its next update again and again
    for i in range(20):  # followed for 10 minutes, far longer than the grace period: never stopped
        h.update(r, progress=i)
        next(page)
        clock.now += 30
        assert h.stop_orphans() == [] and not r.stop.is_set(), "a followed run was stopped"
    # The page closed (or vanished, leaving its follower suspended): nobody asks any more.
    clock.now += 30 + 2 * FOLLOW_EVERY - 1  # 59 s + a follower's check-in interval: still within the grace period
    assert h.stop_orphans() == []
    clock.now += 2
    assert h.stop_orphans() == [r] and r.stop.is_set()
    page.close()


# ---- curves ---------------------------------------------------------------------------------------
def test_ema_matches_tensorboard_and_zero_is_raw():
    assert curves.ema([1.0, 2.0, 3.0], 0.0) == [1.0, 2.0, 3.0]
    s = curves.ema([1.0, 2.0], 0.5)  # debiased: the first value is itself, then (0.25 + 0.5)/(1 - 0.25)
    assert s[0] == pytest.approx(1.0) and s[1] == pytest.approx(5 / 3)


def test_frame_keeps_raw_faint_under_smoothed_and_marks_the_lowest_held_out_loss():
    rows = [{"x": i, "y": 5 - i if i < 3 else i - 1, "series": "held-out eval"} for i in range(6)]
    rows += [{"x": i, "y": float(10 - i), "series": "train"} for i in range(6)]
    df = curves.frame(rows, smoothing=0.6, mark="held-out eval")
    assert set(df["series"]) == {"train", "train" + curves.RAW, "held-out eval", curves.BEST}
    assert list(df[df["series"] == "train" + curves.RAW]["y"]) == [10.0, 9.0, 8.0, 7.0, 6.0, 5.0]
    assert set(df[df["series"] == curves.BEST]["x"]) == {3}  # lowest at step 3, then it rose
    logged = curves.frame(rows, log=True)
    assert logged[logged["series"] == "train"]["y"].iloc[0] == pytest.approx(1.0)  # log10(10)
    falling = [{"x": i, "y": 5.0 - i, "series": "held-out eval"} for i in range(4)]
    assert curves.lowest_point(falling, "held-out eval") is None  # still falling: nothing to mark


def test_settings_diff_names_only_what_differs():
    h = History()
    o = h.issue()
    a = h.new_run(o, "pretrain", {"size": "tiny", "steps": 30, "seed": 1})
    b = h.new_run(o, "pretrain", {"size": "tiny", "steps": 30, "seed": 2})
    assert curves.settings_diff([a, b]) == {"seed": [1, 2]}


# ---- through the app ------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def served(tiny_tokenizer):

    with served_app(tokenizer=tiny_tokenizer) as s:
        yield s.client, s.demo


def test_two_learners_each_see_only_their_runs_and_compare_them(served):
    new_client, demo = served
    a, b = new_client(), new_client(headers={"Accept-Language": "ko-KR,ko;q=0.9"})  # one English, one Korean
    for seed in (1, 2):
        a.predict(corpus="shakespeare", size="tiny", steps=10, seed=seed, api_name="/pretrain")
    b.predict(corpus="shakespeare", size="tiny", steps=10, seed=3, api_name="/pretrain")
    mine, theirs = a.predict(api_name="/runs"), b.predict(api_name="/runs")
    assert [r["settings"]["seed"] for r in mine] == [2, 1] and [r["settings"]["seed"] for r in theirs] == [3]
    assert all("curve" not in r and r["summary"]["val_bpc"] > 0 for r in mine)  # settings and summary, no curves
    out = a.predict(picked=[r["id"] for r in mine], api_name="/compare")[-1]
    assert out["diff"] == {"seed": [2, 1]}
    assert len(out["curves"]["train"]["x"]) == 10 and set(out["curves"]["train"]) == {"x", mine[0]["id"], mine[1]["id"]}
    with pytest.raises(Exception, match="두 개 이상"):  # b cannot reach a's runs: they are not there for b (said in Korean)
        b.predict(picked=[r["id"] for r in mine], api_name="/compare")


@pytest.mark.threads_only
def test_a_training_reattaches_after_a_reload_and_finishes_with_its_whole_curve(served):
    """A page that reloads gets the same owner id from the browser; page load then follows the
    running training again (the same generator the page-load event runs)."""
    from modes.pretrain import tab as pretrain

    new_client, demo = served
    ctx = demo.ctx
    job = new_client().submit(corpus="shakespeare", size="tiny", steps=150, seed=5, fresh=True, api_name="/pretrain")
    wait_until(lambda: any(r.kind == "pretrain" and r.settings["seed"] == 5 and r.progress is not None
                           for o in list(ctx.history._owners) for r in ctx.history.runs(o)), 60, "the run never started")
    owner = next(o for o in list(ctx.history._owners) for r in ctx.history.runs(o) if r.settings.get("seed") == 5)
    job.cancel()  # the page goes away mid-run
    wait_until(job.done, 60, "the page's request was never cancelled")
    run = ctx.history.active(owner, "pretrain")
    assert run is not None and not run.stop.is_set(), "the run did not survive its page closing"
    reloaded = Session()
    records.attach(ctx, owner, reloaded)  # what the page-load event does with the browser's id
    assert reloaded.owner == owner
    outs = list(pretrain.resume(ctx, reloaded))
    summary = outs[-1][pretrain.OUT.names.index("summary")]
    assert summary["steps"] == 150 and not summary["stopped"]
    assert [r["x"] for r in run.curve if r["series"] == "train"] == list(range(1, 151))  # the whole curve
    assert run.status == "done" and ctx.slot.gauge.now == 0  # ended only once it let go of the slot


def test_closing_every_page_stops_the_training_after_the_grace_period(served):
    new_client, demo = served
    ctx = demo.ctx
    ctx.history.grace_s = 0.5
    try:
        job = new_client().submit(corpus="shakespeare", size="baby", steps=5000, seed=9, api_name="/pretrain")
        wait_until(lambda: ctx.slot.gauge.now == 1, 60, "the training never started")
        job.cancel()
        wait_until(lambda: ctx.slot.gauge.now == 0 and ctx.slot.waiting() == 0, 60, "the orphaned training kept the slot")
        run = next(r for o in list(ctx.history._owners) for r in ctx.history.runs(o) if r.settings.get("seed") == 9)
        assert run.status == "stopped" and run.summary["stopped"] and run.summary["steps"] < 5000
    finally:
        ctx.history.grace_s = 60.0


def test_an_api_caller_keeps_one_owner_across_clients_with_its_token(served):
    """/owner gives a token; every client that sends it as X-HML-Owner acts as that owner. A forged, malformed
    or absent token acts as nobody and learns nothing."""
    new_client, demo = served
    token = new_client().predict(api_name="/owner")["owner"]
    assert demo.ctx.history.known(token)
    me = new_client(headers={"X-HML-Owner": token})
    me.predict(corpus="shakespeare", size="tiny", steps=3, seed=41, api_name="/pretrain")
    again = new_client(headers={"X-HML-Owner": token}).predict(api_name="/runs")  # another client, the same owner
    assert [(r["kind"], r["settings"]["seed"], r["status"]) for r in again] == [("pretrain", 41, "done")]
    compared = new_client(headers={"X-HML-Owner": token})
    for forged in ("0" * 32, token[:-1] + ("0" if token[-1] != "0" else "1"), "not-a-token", ""):
        assert new_client(headers={"X-HML-Owner": forged}).predict(api_name="/runs") == [], forged
    assert new_client().predict(api_name="/runs") == []
    assert compared.predict(api_name="/runs") == again  # still its own, after the others asked


def test_a_stored_adapter_in_a_new_session_as_the_readme_shows(served):
    """README, Use via API: a new session holds no adapter until it picks one: /runs, /use_adapter, then
    /translate(use_adapter=True) uses it (without the pick it is refused, saying so)."""
    from gradio_client.exceptions import AppError

    new_client, _ = served
    token = new_client().predict(api_name="/owner")["owner"]
    new_client(headers={"X-HML-Owner": token}).predict(steps=2, r=2, seed=0, api_name="/finetune")
    later = new_client(headers={"X-HML-Owner": token})
    with pytest.raises(AppError):
        later.predict(text="Where is the station?", direction="en-ko", k=0, use_adapter=True, max_new_tokens=2, api_name="/translate")
    ft = next(r for r in later.predict(api_name="/runs") if r["kind"] == "finetune" and r["has_adapter"])
    later.predict(picked=[ft["id"]], api_name="/use_adapter")
    out = later.predict(text="Where is the station?", direction="en-ko", k=0, use_adapter=True, max_new_tokens=2, api_name="/translate")
    assert out[-1]["used_adapter"] is True


@pytest.mark.parametrize("tab, settings", [("pretrain", {"corpus": "my-notes.txt", "size": "tiny", "steps": 5, "seed": 1}),
                                           ("finetune", {"steps": 2, "r": 2, "direction": "en-ko", "data": "upload"})])
def test_a_run_on_an_upload_cannot_run_again(tab, settings):
    """Uploads are not kept: Run again says so (in the learner's language) instead of training on something else."""
    import gradio as gr

    from modes.finetune import tab as finetune
    from modes.pretrain import tab as pretrain

    mod = {"pretrain": pretrain, "finetune": finetune}[tab]
    for lang, text in (("en", "upload it again"), ("ko", "다시 업로드")):
        with pytest.raises(gr.Error, match=text):
            mod.rerun(None, None, settings, lang)
