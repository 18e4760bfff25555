"""No endpoint ever answers with Gradio's generic error: an injected fault in each one reaches the
client as a clear, translated message, and the app keeps serving."""

from __future__ import annotations

import pytest

from tests.conftest import make_tiny_model, served_app

GENERIC = "has not enabled verbose error reporting"


@pytest.fixture(scope="module")
def served(tiny_tokenizer):
    with served_app(tokenizer=tiny_tokenizer) as s:
        yield s.url, s.loader


def _adapter_zip(tmp_path, tokenizer):
    from peft import LoraConfig, get_peft_model

    from modes.model.adapters import adapter_zip

    m = get_peft_model(make_tiny_model(len(tokenizer)), LoraConfig(r=2, target_modules=["q_proj"], task_type="CAUSAL_LM"))
    p = tmp_path / "a.zip"
    p.write_bytes(adapter_zip(m))
    return str(p)


# (endpoint, module.attribute to break, kwargs builder)
FAULTS = [
    ("/token_loss", "modes.pretrain.core.token_losses", lambda d, t: {"text": "Hello"}),
    ("/pretrain", "modes.pretrain.core.train_scratch", lambda d, t: {"size": "tiny", "steps": 2}),
    ("/finetune", "modes.finetune.core.finetune", lambda d, t: {"steps": 1}),
    # Inside the generation engine's thread: the engine reports it to the affected caller only.
    ("/translate", "modes.serving.rows._pick", lambda d, t: {"text": "Hello", "k": 1, "max_new_tokens": 2}),
    ("/icl_sweep", "modes.serving.rows._pick", lambda d, t: {"ks": "0", "n": 1}),
    ("/load_adapter", "modes.model.adapters.adapter_from_upload", lambda d, t: {"path": _handle(_adapter_zip(d, t))}),
    ("/export_script", "modes.finetune.export.render_script", lambda d, t: {}),
    ("/model_status", "modes.model.loader.ModelStatus.as_dict", lambda d, t: {}),
]


def _handle(path):
    from gradio_client import handle_file

    return handle_file(path)


def _break(monkeypatch, target: str):
    import importlib

    parts = target.split(".")
    for i in range(len(parts) - 1, 0, -1):
        try:
            owner = importlib.import_module(".".join(parts[:i]))
        except ModuleNotFoundError:
            continue
        for attr in parts[i:-1]:
            owner = getattr(owner, attr)
        break

    def boom(*a, **kw):
        raise ValueError(f"injected fault in {parts[-1]}")

    monkeypatch.setattr(owner, parts[-1], boom)


@pytest.mark.parametrize("endpoint, target, build", FAULTS, ids=[f[0] for f in FAULTS])
def test_injected_fault_gives_a_clear_message(served, monkeypatch, tmp_path, tiny_tokenizer, endpoint, target, build):
    from gradio_client import Client

    url, _ = served
    client = Client(url, verbose=False)
    kwargs = build(tmp_path, tiny_tokenizer)
    _break(monkeypatch, target)
    with pytest.raises(Exception) as err:
        client.predict(api_name=endpoint, **kwargs)
    msg = str(err.value)
    assert GENERIC not in msg and "Traceback" not in msg, msg
    assert "Something went wrong on the server: " in msg and "ValueError: injected fault in" in msg, msg
    assert "The app is still running" in msg
    monkeypatch.undo()
    assert client.predict(api_name="/model_status")["state"] == "ready"  # still serving


def test_the_message_is_in_the_learners_language(served, monkeypatch):
    from gradio_client import Client

    url, _ = served
    _break(monkeypatch, "modes.pretrain.core.token_losses")
    with pytest.raises(Exception, match="서버에서 문제가 생겼어요: ValueError: injected fault"):
        Client(url, verbose=False, headers={"Accept-Language": "ko-KR,ko;q=0.9"}).predict(text="안녕", api_name="/token_loss")


def test_a_diverging_finetune_stops_cleanly_through_the_endpoint(served, monkeypatch):
    """An exploding learning rate (here: a NaN loss at step 3) stops the run, says so, keeps a usable adapter."""
    from gradio_client import Client

    from modes.finetune import core as fc

    real, calls = fc.masked_lm_loss, {"n": 0}

    def nan_at_step_3(model, ids, mask, labels):
        loss = real(model, ids, mask, labels)
        if model.training:
            calls["n"] += 1
            if calls["n"] == 3:
                return loss * float("nan")
        return loss

    monkeypatch.setattr(fc, "masked_lm_loss", nan_at_step_3)
    url, _ = served
    client = Client(url, verbose=False)
    out = client.predict(steps=10, r=2, learning_rate=0.1, api_name="/finetune")
    summary = out[-1]
    assert summary["diverged_at"] == 3 and summary["kept_step"] == 1 and summary["steps"] == 2
    assert "Training stopped at step 3" in out[2] and "after step 1" in out[2]
    monkeypatch.undo()
    # The kept adapter passed the checks and translates.
    s = client.predict(text="Hello", k=0, use_adapter=True, max_new_tokens=3, api_name="/translate")[-1]
    assert s["used_adapter"] is True


def test_an_empty_answer_is_explained(served, monkeypatch):
    """When the model's first token is the stop, the JSON and the UI say why the output is empty."""
    from gradio_client import Client

    url, loader = served
    model, tok = loader.get()

    def eos_first(module, args, out):  # the model's favourite next token is always <eos>
        out.logits[..., tok.eos_token_id] += 1e4

    handle = model.register_forward_hook(eos_first)
    try:
        for lang, header in (("en", "en-US"), ("ko", "ko-KR")):
            out = Client(url, verbose=False, headers={"Accept-Language": header}).predict(text="Hello", k=1, api_name="/translate")
            assert out[-1]["translation"] == "" and out[-1]["empty_reason"] == "the model ended its answer immediately"
            assert ("ended its answer immediately" if lang == "en" else "답을 바로 끝내서") in out[1]
    finally:
        handle.remove()
    after = Client(url, verbose=False).predict(text="Hello", k=1, max_new_tokens=3, api_name="/translate")[-1]
    assert after["translation"] and "empty_reason" not in after
