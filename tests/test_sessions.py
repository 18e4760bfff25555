"""Many users at once: trainings queue instead of overlapping, adapters stay private, stops free the
slot, cleanup runs when a session ends, and an exception in one training leaves the app serving."""

from __future__ import annotations

import time

import pytest

from tests.conftest import served_app, wait_until


@pytest.fixture()
def served(tiny_tokenizer):


    with served_app(tokenizer=tiny_tokenizer, grace_s=0.5) as s:  # a closed page's training stops after the grace period
        yield s.client, s.loader, s.demo


def test_two_trainings_run_one_after_the_other(served):
    new_client, loader, demo = served
    a, b = new_client(), new_client()
    j1 = a.submit(corpus="shakespeare", size="tiny", steps=40, seed=1, api_name="/pretrain")
    while not j1.outputs():
        time.sleep(0.1)
    j2 = b.submit(steps=2, r=2, learning_rate=1e-3, seed=0, api_name="/finetune")
    j1.result(), j2.result()
    waits = [o[0] for o in j2.outputs() if "in line" in str(o[0])]
    assert waits and "#1" in waits[0] and "to wait" in waits[0], "the second training never showed its place and wait"
    assert demo.ctx.slot.gauge.peak == 1


def test_adapters_are_private_to_their_session(served):
    new_client, _, _ = served
    a, b = new_client(), new_client()
    a.predict(steps=2, r=2, learning_rate=1e-3, seed=0, api_name="/finetune")
    out = a.predict(text="Hello", k=1, use_adapter=True, max_new_tokens=4, api_name="/translate")[-1]
    assert out["used_adapter"] is True
    with pytest.raises(Exception, match="no LoRA adapter in this session"):
        b.predict(text="Hello", k=1, use_adapter=True, max_new_tokens=4, api_name="/translate")


def test_cancel_stops_training_and_frees_the_slot(served):
    new_client, loader, demo = served
    a, b = new_client(), new_client()
    job = a.submit(corpus="shakespeare", size="baby", steps=5000, seed=1, api_name="/pretrain")
    while not job.outputs():
        time.sleep(0.1)
    assert demo.ctx.slot.gauge.now == 1
    job.cancel()
    wait_until(lambda: demo.ctx.slot.gauge.now == 0 and demo.ctx.slot.waiting() == 0, 60, "the cancelled training kept the slot")
    out = b.submit(corpus="shakespeare", size="tiny", steps=5, seed=1, fresh=True, api_name="/pretrain")  # trained, not replayed
    assert out.result()[-1]["steps"] == 5
    assert not [o for o in out.outputs() if "in line" in str(o[0])], "the next training queued behind a cancelled one"


def test_injected_exception_is_reported_and_app_keeps_serving(served):
    new_client, loader, demo = served
    a, b = new_client(), new_client()
    demo.ctx.hooks["fail_at_step"] = 2
    try:
        with pytest.raises(Exception, match="Training failed: injected failure at step 2"):
            a.predict(steps=4, r=2, learning_rate=1e-3, seed=0, api_name="/finetune")
    finally:
        demo.ctx.hooks.pop("fail_at_step")
    assert b.predict(text="Hello", k=0, max_new_tokens=3, api_name="/translate")[-1]["weights_unchanged"]
    assert a.predict(steps=2, r=2, learning_rate=1e-3, seed=0, api_name="/finetune")[-1]["steps"] == 2


def test_session_cleanup_removes_adapter_files(served, tmp_path):
    """The adapter state's delete_callback removes the session's adapter zip from disk."""
    from modes.model import adapters

    _, _, demo = served
    path = tmp_path / "lora-adapter.zip"
    path.write_bytes(b"zip")
    a = adapters.Adapter(b"zip", "en-ko", "t", 1, 2, path=str(path))
    adapters.cleanup(a)
    assert not path.exists()
    adapters.cleanup(None)  # nothing to clean is fine
    states = [b for b in demo.blocks.values() if type(b).__name__ == "State" and getattr(b, "delete_callback", None)]
    assert any(s.delete_callback is adapters.cleanup for s in states)
