"""In-call mode (ZeroGPU) under the emulator (tests/zerogpu.py): every endpoint works with no model
computation in the parent, each request's heavy work in a forked GPU call; the threads mode fails there
(so the emulator can fail); a call too long for one GPU call is refused before it starts; a stop and a
closed page reach the worker."""

from __future__ import annotations

import time

import pytest

from tests.conftest import served_app, wait_until


def _heavy_calls(emu, fn):
    """How many GPU calls `fn()` made, and its result."""
    before = emu.calls
    out = fn()
    return emu.calls - before, out


@pytest.mark.parametrize("direction", ["en-ko", "ko-en"])
def test_every_endpoint_works_in_call_with_no_model_in_the_parent(zerogpu, tiny_tokenizer, direction):
    from modes.serving.heavy import IN_CALL

    text = "Where is the station?" if direction == "en-ko" else "역은 어디에 있어요?"
    with served_app(tokenizer=tiny_tokenizer, heavy=IN_CALL) as s:
        c = s.client()
        status = c.predict(api_name="/model_status")
        assert status["heavy_mode"] == IN_CALL and "reattaching" in status["heavy"]

        n, out = _heavy_calls(zerogpu, lambda: c.predict(text=text, api_name="/token_loss")[-1])
        assert n == 1 and out["tokens"] and out["mean_loss"] > 0

        n, out = _heavy_calls(zerogpu, lambda: c.predict(text=text, direction=direction, k=2, max_new_tokens=6,
                                                         api_name="/translate")[-1])
        assert n == 1 and out["weights_unchanged"] is True and out["direction"] == direction

        # A training runs inside the request that started it: one GPU call, its events streamed from there.
        job = c.submit(corpus="shakespeare", size="tiny", steps=12, seed=1, api_name="/pretrain")
        n, out = _heavy_calls(zerogpu, lambda: job.result()[-1])
        assert n >= 1 and out["steps"] == 12 and out["samples"]
        assert any("Step" in str(o[0]) for o in job.outputs()[:-1]), "no progress was streamed from the GPU call"

        n, out = _heavy_calls(zerogpu, lambda: c.predict(steps=2, r=2, learning_rate=1e-3, seed=0, direction=direction,
                                                         api_name="/finetune")[-1])
        assert n >= 1 and out["steps"] == 2 and out["base_weights_unchanged"] is True and out["chrf_after"] is not None
        runs = c.predict(api_name="/runs")
        ft = [r for r in runs if r["kind"] == "finetune"][0]
        assert ft["status"] == "done" and ft["has_adapter"]

        # The adapter is the session's; in the worker it is built again from its bytes.
        n, out = _heavy_calls(zerogpu, lambda: c.predict(text=text, direction=direction, k=0, use_adapter=True,
                                                         max_new_tokens=4, api_name="/translate")[-1])
        assert n == 1 and out["used_adapter"] is True

        n, out = _heavy_calls(zerogpu, lambda: c.predict(direction=direction, ks="0,1", n=3, api_name="/icl_sweep")[-1])
        assert n >= 2 and set(out["chrf"]) >= {"0", "1"}  # a call per k (and one for the adapter's point)

        pt = [r for r in runs if r["kind"] == "pretrain"][0]
        n, _ = _heavy_calls(zerogpu, lambda: c.predict(picked=[pt["id"]], api_name="/run_again"))
        pts = [r for r in c.predict(api_name="/runs") if r["kind"] == "pretrain"]
        assert n >= 1 and [r["status"] for r in pts] == ["done", "done"]
        assert c.predict(picked=[r["id"] for r in pts], api_name="/compare")[-1]
    assert zerogpu.violations == [], f"models ran in the parent: {zerogpu.violations}"
    assert all(d > 0 for d in zerogpu.durations)


def test_threads_mode_fails_under_the_emulator(zerogpu, tiny_tokenizer):
    """The emulator can fail: the threads mode computes in the parent, and there it raises."""
    from modes.serving.heavy import THREADS

    with served_app(tokenizer=tiny_tokenizer, heavy=THREADS) as s:
        with pytest.raises(Exception, match="went wrong on the server"):
            s.client().predict(text="Hello", api_name="/token_loss")
        with pytest.raises(Exception, match="went wrong on the server|[Ee]ngine"):
            s.client().predict(text="Hello", k=1, max_new_tokens=3, api_name="/translate")
    assert zerogpu.violations and zerogpu.calls == 0


@pytest.mark.parametrize("lang,needle", [("en", "over ZeroGPU's limit of 60 s"), ("ko", "호출당 한도 60초")])
def test_a_call_too_long_for_one_gpu_call_is_refused_before_it_starts(zerogpu, tiny_tokenizer, lang, needle):
    from modes.serving.heavy import IN_CALL, Heavy

    with served_app(tokenizer=tiny_tokenizer, heavy=Heavy(IN_CALL, limit_s=60)) as s:
        c = s.client(headers={"Accept-Language": lang})
        with pytest.raises(Exception, match=needle):
            c.predict(steps=600, r=2, api_name="/finetune")
        with pytest.raises(Exception, match=needle):
            c.predict(corpus="shakespeare", size="tiny", steps=5000, api_name="/pretrain")
        assert c.predict(api_name="/runs") == []  # nothing started
        assert zerogpu.calls == 0
        # Within the limit it runs, and asks ZeroGPU for its estimate with the margin.
        c.predict(corpus="shakespeare", size="tiny", steps=10, seed=1, api_name="/pretrain")
        assert zerogpu.calls >= 1 and all(d <= 60 for d in zerogpu.durations)


def test_stop_reaches_the_training_in_its_gpu_call(zerogpu, tiny_tokenizer):
    from modes.serving.heavy import IN_CALL

    with served_app(tokenizer=tiny_tokenizer, heavy=IN_CALL) as s:
        c = s.client()
        job = c.submit(corpus="shakespeare", size="baby", steps=5000, seed=3, api_name="/pretrain")
        wait_until(lambda: s.ctx.history.active(None, "pretrain") is not None or any(
            r.active for runs in s.ctx.history._owners.values() for r in runs.values()), 60, "the run never started")
        run = [r for runs in s.ctx.history._owners.values() for r in runs.values()][0]
        wait_until(lambda: run.progress is not None, 60, "no step came back from the GPU call")
        t0 = time.monotonic()
        run.stop.set()  # the Stop button's effect, in the parent
        out = job.result()[-1]
        assert out["stopped"] is True and out["steps"] < 5000
        assert time.monotonic() - t0 < 30
        assert run.status == "stopped"
    assert zerogpu.violations == []


def test_a_closed_page_ends_its_in_call_run():
    """The request drives an in-call run: when it goes away, the run ends (stopped) and its events stop."""
    from modes.runs.history import History

    h = History()
    run = h.new_run("o1", "pretrain", {}, ("step", "loss"))
    produced = []

    def events():
        for i in range(1000):
            produced.append(i)
            yield i

    h.start(run, events(), lambda r, ev: {"status": "running"}, inline=True)
    assert run.status == "starting"  # nothing runs until a page follows it
    follower = h.follow(run, every=0.0)
    next(follower)
    follower.close()
    assert run.status == "stopped" and len(produced) < 1000
