"""ZeroGPU's quota, under the emulator (tests/zerogpu.py): a run asks for the GPU seconds its kind measured, the
learner sees them before it starts, a refusal for quota is told in the learner's language, two learners'
trainings run at once in in-call mode, and the queue keeps the app's own size there."""

from __future__ import annotations

import threading

from modes.serving import gpu_budget
from modes.serving.heavy import IN_CALL, gpu_seconds
from tests.conftest import scaled, served_app


def _error_of(job) -> str:
    from gradio_client.exceptions import AppError

    try:
        job.result(timeout=scaled(240))
    except AppError as exc:
        return str(exc)
    return ""


def test_a_run_over_the_quota_is_refused_before_it_starts_in_the_learners_language(zerogpu, tiny_tokenizer):
    zerogpu.quota_s = 5  # an anonymous visitor near the end of their day
    with served_app(tokenizer=tiny_tokenizer, heavy=IN_CALL) as s:
        for lang, words in (("en", ("quota", "fewer steps", "sign in")), ("ko", ("할당량", "스텝 수", "로그인"))):
            c = s.client(headers={"Accept-Language": lang})
            said = _error_of(c.submit(corpus="shakespeare", size="tiny", steps=20, seed=1, api_name="/pretrain"))
            asked = round(gpu_seconds(20 * 0.05 + 10) * gpu_budget.GUESS_MARGIN)  # the guess, before any measurement
            assert all(w in said for w in words) and f"{asked}" in said, said
        assert zerogpu.refused == 2 and not zerogpu.walls  # refused before any GPU call started


def test_after_one_measured_run_the_next_asks_for_what_it_measured(zerogpu, tiny_tokenizer):
    with served_app(tokenizer=tiny_tokenizer, heavy=IN_CALL) as s:
        c = s.client()
        kind = "pretrain:tiny:next-token"
        c.predict(corpus="shakespeare", size="tiny", steps=40, seed=1, api_name="/pretrain")
        first_ask, first_wall = zerogpu.durations[-1], zerogpu.walls[-1]
        assert first_ask == int(gpu_seconds(40 * 0.05 + 10) * gpu_budget.GUESS_MARGIN) + 1  # the CPU-derived guess
        measured = s.ctx.heavy.budget.as_dict()
        assert [k.split("@")[0] for k in measured] == [kind]
        m = gpu_budget.Measured(**{k: v for k, v in next(iter(measured.values())).items() if k in ("start_s", "step_s", "tail_s")})
        assert 0 < m.seconds(40) <= first_wall + 0.5  # what was measured is the call's own time (the worker's steps)
        c.predict(corpus="shakespeare", size="tiny", steps=40, seed=2, fresh=True, api_name="/pretrain")
        second_ask = zerogpu.durations[-1]
        assert m.seconds(40) <= second_ask <= m.seconds(40) * gpu_budget.MARGIN + gpu_budget.SLACK_S + 1
        assert second_ask < first_ask  # a tiny model's run asks for far less than the guess once measured
        status = c.predict(api_name="/model_status")["gpu"]
        assert status["concurrent_trainings"] == 3 and kind + "@cpu" in status["measured"]


def test_the_learner_sees_the_seconds_before_the_run(zerogpu, tiny_tokenizer):
    from modes.pretrain import tab as pretrain_tab

    with served_app(tokenizer=tiny_tokenizer, heavy=IN_CALL) as s:
        line = pretrain_tab.gpu_line(s.ctx, "tiny", 40, "next-token")
        guess = round(gpu_seconds(40 * 0.05 + 10) * gpu_budget.GUESS_MARGIN)
        assert f"**{guess} s**" in line and "estimate" in line
        s.client().predict(corpus="shakespeare", size="tiny", steps=40, seed=1, api_name="/pretrain")
        line = pretrain_tab.gpu_line(s.ctx, "tiny", 40, "next-token")
        assert "measured" in line and f"**{guess} s**" not in line
        assert "초" in pretrain_tab.gpu_line(s.ctx, "tiny", 40, "next-token", _korean())
        assert "over ZeroGPU" in pretrain_tab.gpu_line(s.ctx, "small", 100000, "next-token")


def _korean():
    import types

    return types.SimpleNamespace(headers={"accept-language": "ko"})


def test_two_learners_trainings_run_at_once_in_call_mode(zerogpu, tiny_tokenizer):
    with served_app(tokenizer=tiny_tokenizer, heavy=IN_CALL) as s:
        started = threading.Barrier(2)

        def learner(seed, out):
            c = s.client()
            started.wait(60)
            out[seed] = c.predict(corpus="shakespeare", size="tiny", steps=150, seed=seed, api_name="/pretrain")[-1]

        out: dict = {}
        threads = [threading.Thread(target=learner, args=(seed, out)) for seed in (1, 2)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(300)
        assert {o["steps"] for o in out.values()} == {150} and all(o["replay"] is None for o in out.values())
        assert zerogpu.peak == 2  # both GPU calls were running at the same moment
        assert s.ctx.slot.capacity == 3


def test_one_learner_still_has_one_training_at_a_time():
    from modes.runs.jobs import TrainingSlot

    slot = TrainingSlot(capacity=3)
    a1, a2, b1 = slot.join(10, "ada"), slot.join(10, "ada"), slot.join(10, "bob")
    assert slot.turn(a1, 0) and not slot.turn(a2, 0) and slot.turn(b1, 0)  # Bob goes ahead of Ada's second
    assert slot.position(a2) == 1
    slot.leave(a1)
    assert slot.turn(a2, 0)


def test_the_queue_keeps_its_size_and_concurrency_under_zerogpu(zerogpu, tiny_tokenizer):
    """On ZeroGPU Gradio would force the queue's max_size to 1 unless the app passes one: it does (64), and the
    trainings are not limited by Gradio (they queue in the app's own slot, with places for several learners)."""
    with served_app(tokenizer=tiny_tokenizer) as s:  # the process's own choice: in-call, the zerogpu says ZeroGPU
        demo = s.demo
        assert s.ctx.heavy.mode == IN_CALL
        assert demo._queue.max_size == 64 and demo._queue.default_concurrency_limit == 4
        fns = {fn.api_name: fn for fn in demo.fns.values() if fn.api_name}
        assert fns["pretrain"].concurrency_limit is None and fns["finetune"].concurrency_limit is None
        assert s.ctx.slot.capacity == s.ctx.heavy.concurrent == 3
