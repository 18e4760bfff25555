"""Idle-time work (modes/runs/warmup.py): the base model's side of the fine-tune scores, computed before any
learner asks, equals what a first run computes; a run after it reuses it; it never goes ahead of a learner."""

from __future__ import annotations

import threading

import pytest

from tests.conftest import make_tiny_model, served_app, wait_until


def _stored(ctx, direction: str) -> dict | None:
    """The default run's base side in `direction`, from the shared results."""
    from modes.data import translation as tr
    from modes.finetune import base_side
    from modes.finetune.config import FinetuneConfig

    return ctx.results.get(base_side.base_key(ctx, FinetuneConfig(direction=direction), tr.pairs_for(direction, "test"),
                                              tr.pairs_for(direction, "train")))


def _ctx(tokenizer):
    from modes.context import AppContext
    from modes.model.loader import ModelLoader

    loader = ModelLoader.from_model(make_tiny_model(len(tokenizer)), tokenizer, name="tiny random gemma3")
    return AppContext(loader, heavy="threads")


@pytest.mark.parametrize("direction", ["en-ko", "ko-en"])
def test_the_warmed_base_side_is_what_a_first_run_computes(tiny_tokenizer, direction):
    from modes.data import translation as tr
    from modes.finetune import base_side
    from modes.finetune.config import FinetuneConfig
    from modes.finetune.core import FtResult
    from modes.finetune.offtask import drain
    from modes.finetune.tab import train_in_call
    from modes.runs.jobs import StopFlag

    warmed = _ctx(tiny_tokenizer)
    drain(base_side.warm(warmed))
    cfg = FinetuneConfig(direction=direction, steps=2, r=2, batch_size=4)
    test, train = tr.pairs_for(direction, "test"), tr.pairs_for(direction, "train")
    stored = warmed.results.get(base_side.base_key(warmed, cfg, test, train))
    assert stored is not None, "the warm-up stored nothing for " + direction

    first = _ctx(tiny_tokenizer)  # the same tiny model, nothing known: the run computes the base side itself
    assert first.results.get(base_side.base_key(first, cfg, test, train)) is None
    res = [e for e in train_in_call(first, cfg, train, test, None, None, None, stop=StopFlag()) if isinstance(e, FtResult)][0]
    assert res.chrf_before == stored["chrf"]
    assert res.off_task_base == stored["off_task"]
    assert res.base_outputs == stored["outputs"] and len(stored["outputs"]) == len(test)
    assert set(stored["off_task"]) >= {"bpc", "reverse_chrf", "reverse_chrf_k4", "continuations"}
    # the base model at k=4 on the same held-out pairs, which the card compares the adapter with
    assert res.k_side == stored["k_side"] and len(stored["k_side"]["outputs"]) == len(test) and stored["k_side"]["k"] == 4
    assert res.lead["chrf_k"] == stored["k_side"]["chrf"] and res.lead["low"] <= res.lead["lead"] <= res.lead["high"]


def test_the_warmup_never_goes_ahead_of_a_learner():
    from modes.runs.jobs import TrainingSlot
    from modes.runs.warmup import Warmup

    class Ctx:
        slot = TrainingSlot()

    ctx = Ctx()
    seen, release = [], threading.Event()

    def job(_ctx):
        for i in range(3):
            seen.append((i, ctx.slot.waiting()))  # a learner queued while a piece runs would show here
            if i == 0:
                release.wait(5)
            yield

    learner = ctx.slot.join(60)  # a learner's training holds the slot: the warm-up waits
    w = Warmup(ctx, poll_s=0.02)
    w.start([("job", job)])
    wait_until(lambda: w.state == "waiting", 5, "the warm-up to wait for the slot")
    assert seen == []
    ctx.slot.leave(learner)
    wait_until(lambda: seen, 5, "the first piece once the slot is free")
    second = ctx.slot.join(60)  # a learner presses the button during the first piece: queued behind it
    assert ctx.slot.position(second) == 1
    release.set()
    wait_until(lambda: ctx.slot.position(second) == 0, 5, "the learner's turn once the piece ends")
    assert len(seen) == 1, "a second piece started ahead of the waiting learner"
    ctx.slot.leave(second)
    w.join(5)
    assert [i for i, _ in seen] == [0, 1, 2] and w.state == "done" and w.done == ["job"] and w.pieces == 3


def test_a_failing_piece_is_reported_and_leaves_the_slot_free():
    from modes.runs.jobs import TrainingSlot
    from modes.runs.warmup import Warmup

    class Ctx:
        slot = TrainingSlot()

    def job(_ctx):
        yield
        raise RuntimeError("boom")

    w = Warmup(Ctx(), poll_s=0.02)
    w.start([("job", job), ("never", job)])
    w.join(5)
    assert w.state == "failed" and "boom" in w.error and w.done == []
    assert Ctx.slot.take_if_idle(1) is not None  # nothing left holding it


def test_a_run_after_the_warmup_decodes_the_base_model_no_more(tiny_loader, monkeypatch):
    """Through the API with its defaults (but 2 steps): the run finds the base side in the shared results,
    its chrF and its answers, and decodes nothing on the base model."""
    from modes.finetune import scoring

    calls = []
    real = scoring.heldout_chrf
    monkeypatch.setattr(scoring, "heldout_chrf", lambda model, *a, **k: calls.append(model) or real(model, *a, **k))
    with served_app(tiny_loader, heavy="threads") as s:
        assert s.demo.ctx.start_warmup(s.demo.tabs)
        wait_until(lambda: s.demo.ctx.warmup.state in ("done", "failed"), 120, "the warm-up")
        client = s.client()
        status = client.predict(api_name="/model_status")
        assert status["warmup"]["state"] == "done" and status["warmup"]["done"] == ["finetune", "incontext"], status["warmup"]
        base = tiny_loader.get()[0]
        assert [m is base for m in calls] == [True, True]  # one held-out decode of the base model per direction
        calls.clear()
        engine, decoded_for = s.demo.ctx.engine, []
        real_generate = engine.generate
        monkeypatch.setattr(engine, "generate", lambda model, *a, **k: decoded_for.append(model) or real_generate(model, *a, **k))
        for direction in ("en-ko", "ko-en"):
            res = client.predict(steps=2, direction=direction, api_name="/finetune")[-1]
            assert res["chrf_before"] == _stored(s.demo.ctx, direction)["chrf"]
        assert [m is base for m in calls] == [False, False]  # the tuned models only
        assert decoded_for and not any(m is base for m in decoded_for)  # not even the few answers shown beside the adapter's


def test_the_warmed_sweep_points_serve_a_learners_sweep(tiny_tokenizer):
    """The in-context tab's idle-time work: a learner's default sweep afterwards reuses every base-model point."""
    from modes.data import translation as tr
    from modes.finetune.offtask import drain
    from modes.incontext.core import sweep_points, warm_sweep

    ctx = _ctx(tiny_tokenizer)
    drain(warm_sweep(ctx))
    for direction in tr.DIRECTIONS:
        scores, reused = sweep_points(ctx, direction, [0, 1, 2, 4, 8], tr.pairs_for(direction, "test"), 0, "learner", lambda k: None)
        assert [r["k"] for r in reused] == [0, 1, 2, 4, 8] and len(scores) == 5
    fresh = _ctx(tiny_tokenizer)  # the same figures computed by a learner's own sweep on the same model
    scores, reused = sweep_points(fresh, "ko-en", [0, 4], tr.pairs_for("ko-en", "test"), 0, "learner", lambda k: None)
    assert reused == [] and scores == {k: ctx.results.get(_point(ctx, "ko-en", k))["chrf"] for k in (0, 4)}


def _point(ctx, direction: str, k: int) -> dict:
    from modes.data import translation as tr
    from modes.incontext.core import sweep_point_key

    return sweep_point_key(ctx, direction, k, len(tr.pairs_for(direction, "test")), 0)


def test_no_base_model_answer_is_decoded_twice(tiny_tokenizer, monkeypatch):
    """The fine-tune's base side (both directions) and the default sweep ask for the same held-out answers more
    than once (k=0 is one direction's "before" and the other's reverse row, and a sweep point; k=4 likewise):
    each distinct set of base-model prompts is decoded once (ctx.base_answers)."""
    from modes.finetune import base_side
    from modes.finetune.offtask import drain
    from modes.incontext.core import warm_sweep

    ctx = _ctx(tiny_tokenizer)
    base = ctx.loader.get()[0]
    engine, asked = ctx.engine, []
    real = engine.generate
    monkeypatch.setattr(engine, "generate", lambda model, tok, prefix, queries, **k: (
        asked.append((prefix, tuple(queries))) if model is base else None) or real(model, tok, prefix, queries, **k))
    drain(base_side.warm(ctx))
    drain(warm_sweep(ctx))
    assert len(asked) == len(set(asked)), "a set of base-model prompts was decoded twice"
    assert len(asked) == 11  # k = 0, 1, 2, 4, 8 in both directions, and the continuation probes
