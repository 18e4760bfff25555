"""Computed once, served to all: the coalesced weights proof, shared sweep points, and replays of
identical trainings (only because two fresh CPU runs are shown to be identical)."""

from __future__ import annotations

import contextlib
import threading
import time

import pytest
import torch

from modes.data import corpus as corpus_mod
from modes.serving.proof import WeightsProof
from tests.conftest import make_tiny_model, scaled, served_app, wait_until


def test_one_hash_answers_every_request_that_finished_before_it(tiny_tokenizer):
    model = make_tiny_model(len(tiny_tokenizer))
    calls = []

    def slow_hash(m):
        calls.append(1)
        time.sleep(0.2)
        from modes.metrics import weights_hash

        return weights_hash(m)

    proof = WeightsProof(model, hasher=slow_hash)
    assert len(calls) == 1  # at load
    finished = time.perf_counter()
    out = []
    threads = [threading.Thread(target=lambda: out.append(proof.after(finished))) for _ in range(16)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert all(p.unchanged for p in out) and len(out) == 16
    assert len(calls) <= 3, f"16 requests cost {len(calls) - 1} hashes; coalescing should need 1 or 2"


def test_a_changed_weight_is_seen(tiny_tokenizer):
    model = make_tiny_model(len(tiny_tokenizer))
    proof = WeightsProof(model)
    assert proof.after().unchanged
    with torch.no_grad():
        next(model.parameters()).view(-1)[0] += 1e-3
    assert not proof.after().unchanged  # a request that finished after the change sees `false`


def test_translate_proof_sees_a_weight_change_through_the_api(tiny_loader):
    from gradio_client import Client

    stack = contextlib.ExitStack()
    url = stack.enter_context(served_app(tiny_loader)).url
    try:
        c = Client(url, verbose=False)
        assert c.predict(text="Hello", k=1, max_new_tokens=2, api_name="/translate")[-1]["weights_unchanged"] is True
        with torch.no_grad():
            next(tiny_loader.get()[0].parameters()).view(-1)[0] += 1e-3
        assert c.predict(text="Hello", k=1, max_new_tokens=2, api_name="/translate")[-1]["weights_unchanged"] is False
    finally:
        stack.close()


# ---- determinism first, then replay ----
def _pretrain(loader, seed=3):
    from modes.pretrain.core import PretrainConfig, PretrainResult, train_scratch

    data = corpus_mod.Corpus("t", corpus_mod.shakespeare().train[:200_000], corpus_mod.shakespeare().val[:20_000])
    cfg = PretrainConfig(size="tiny", steps=30, seed=seed, eval_every=10, sample_every=15, sample_chars=40)
    return [ev for ev in train_scratch(loader, data, cfg) if isinstance(ev, PretrainResult)][0]


def test_two_fresh_pretrainings_are_identical_on_cpu(tiny_loader):
    a, b = _pretrain(tiny_loader), _pretrain(tiny_loader)
    assert [c["train_loss"] for c in a.curve] == [c["train_loss"] for c in b.curve]
    assert a.val_loss == b.val_loss and a.samples == b.samples
    assert _pretrain(tiny_loader, seed=4).curve != a.curve  # and the seed matters


def test_two_fresh_finetunes_are_identical_on_cpu(tiny_loader):
    from modes.data import translation as task
    from modes.finetune.config import FinetuneConfig
    from modes.finetune.core import FtResult, finetune

    train, test = task.pairs_for("en-ko", "train")[:16], task.pairs_for("en-ko", "test")[:4]

    def run():
        cfg = FinetuneConfig(steps=3, r=2, batch_size=4, seed=5)
        return [e for e in finetune(tiny_loader, cfg, train, test, off_task=False) if isinstance(e, FtResult)][0]

    a, b = run(), run()
    assert a.curve == b.curve and a.chrf_after == b.chrf_after and a.adapter.zip_bytes == b.adapter.zip_bytes


@pytest.fixture()
def served(tiny_loader):

    # A closed page's training stops after the grace period. 3 s, not less: a follower on a loaded 2-core machine
    # (a fresh clone's full run) once went 1.5 s without checking in, and a live learner's training was stopped.
    with served_app(tiny_loader, grace_s=3.0) as s:
        yield s.client, s.demo


@pytest.mark.parametrize("lang", ["en", "ko"])
def test_identical_pretraining_is_replayed_and_labelled(served, lang):
    new_client, demo = served
    headers = {"Accept-Language": "ko-KR,ko;q=0.9"} if lang == "ko" else {}
    kw = dict(corpus="shakespeare", size="tiny", steps=30, seed=11, api_name="/pretrain")
    first = new_client(headers=headers).predict(**kw)
    again_job = new_client(headers=headers).submit(**kw)  # another learner, same settings
    again = again_job.result()
    assert first[-1]["replay"] is None
    assert again[-1]["replay"] is not None and again[-1]["replay"]["original_seconds"] > 0
    same = {k: v for k, v in first[-1].items() if k != "replay"}
    assert {k: v for k, v in again[-1].items() if k != "replay"} == same  # the same figures and samples
    assert ("Replay" if lang == "en" else "리플레이") in again[-2]  # said plainly in the result
    assert demo.ctx.slot.gauge.peak == 1  # the replay never took the training slot (it ran beside nothing)
    if lang == "en":  # "train anew" once is enough (it is a third training)
        anew = new_client(headers=headers).predict(fresh=True, **kw)
        assert anew[-1]["replay"] is None and anew[-1]["val_loss"] == first[-1]["val_loss"]  # trained again: same figures
    progress = [o[0] for o in again_job.outputs()[:-1] if isinstance(o[0], str) and o[0]]
    assert progress and all(p.startswith("♻️") for p in progress), progress  # every progress line says it is a replay


def test_an_identical_pretraining_queued_behind_the_first_replays_it(served):
    """Two learners start the same run at once: the second waits for the slot, and when its turn comes the first
    has just recorded itself, so it replays that instead of training again. (The first is held at its first step
    until the second is in line: on any machine they overlap.)"""
    new_client, demo = served
    ctx = demo.ctx
    in_line = threading.Event()

    def hold(ev):  # the first run's steps, until the second is in line
        if not in_line.is_set():
            wait_until(lambda: ctx.slot.waiting() == 1, 60, "the second learner's run never queued")
            in_line.set()

    ctx.hooks["after_step"] = hold
    try:
        kw = dict(corpus="shakespeare", size="tiny", steps=12, seed=31, api_name="/pretrain")
        first = new_client().submit(**kw)
        while not first.outputs():
            time.sleep(0.05)
        second = new_client().submit(**kw)
        outs = [first.result(timeout=scaled(120))[-1], second.result(timeout=scaled(120))[-1]]
    finally:
        ctx.hooks.pop("after_step", None)
    assert outs[0]["replay"] is None and outs[1]["replay"] is not None, [o["replay"] for o in outs]
    assert outs[1]["val_bpc"] == outs[0]["val_bpc"]


def test_identical_finetune_replays_the_same_adapter(served):
    new_client, demo = served
    a, b = new_client(), new_client()
    kw = dict(steps=2, r=2, learning_rate=1e-3, seed=0, api_name="/finetune")
    ra = a.predict(**kw)
    rb = b.predict(**kw)
    assert ra[-1]["replay"] is None and rb[-1]["replay"] is not None
    assert open(ra[4], "rb").read() == open(rb[4], "rb").read()  # the same adapter bytes
    out = b.predict(text="Hello", k=1, use_adapter=True, max_new_tokens=4, api_name="/translate")[-1]
    assert out["used_adapter"] is True  # the replayed adapter works
    assert rb[-1]["chrf_after"] == ra[-1]["chrf_after"]


@pytest.mark.parametrize("direction", ["en-ko", "ko-en"])
def test_the_sweep_reuses_base_points_and_says_so(served, direction):
    new_client, demo = served
    first = new_client().predict(direction=direction, ks="0,1", n=3, api_name="/icl_sweep")[-1]
    second = new_client().predict(direction=direction, ks="0,1,2", n=3, api_name="/icl_sweep")[-1]
    assert first["direction"] == second["direction"] == direction
    assert first["reused"] == []
    assert [r["k"] for r in second["reused"]] == [0, 1]  # k=2 was new, so computed
    assert second["chrf"]["0"] == first["chrf"]["0"] and second["chrf"]["1"] == first["chrf"]["1"]


def test_waiting_learner_can_leave_the_queue(served):
    new_client, demo = served
    a, b = new_client(), new_client()
    j1 = a.submit(corpus="shakespeare", size="tiny", steps=400, seed=21, api_name="/pretrain")
    while not j1.outputs():
        time.sleep(0.05)
    j2 = b.submit(corpus="shakespeare", size="tiny", steps=50, seed=22, api_name="/pretrain")
    while not any("in line" in str(o[0]) for o in j2.outputs()):
        time.sleep(0.05)
    assert demo.ctx.slot.waiting() == 1
    j2.cancel()  # the learner leaves (closes the tab or the request is cancelled)
    deadline = time.time() + scaled(10)
    while demo.ctx.slot.waiting() and time.time() < deadline:
        time.sleep(0.1)
    assert demo.ctx.slot.waiting() == 0
    j1.cancel()


def test_bf16_weights_hash_sees_one_changed_value(tiny_tokenizer):
    from modes.metrics import weights_hash

    model = make_tiny_model(len(tiny_tokenizer)).to(torch.bfloat16)
    h = weights_hash(model)
    assert weights_hash(model) == h
    with torch.no_grad():
        list(model.parameters())[-1].view(-1)[-1] += 0.5
    assert weights_hash(model) != h
