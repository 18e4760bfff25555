"""A fine-tune's base precision on the CPU: measured once per CPU, bf16 only where clearly faster; a bf16
base still trains a float32 adapter, leaves the base untouched, and is scored on the served model."""

from __future__ import annotations

import pytest
import torch

from modes.data import translation as task
from modes.finetune import core as fc
from modes.model import training
from modes.model.adapters import serving_model
from modes.serving.engine import bulk_generator


def fake_probe(times: dict, seen: list):
    def probe(model):
        dt = str(next(model.parameters()).dtype).removeprefix("torch.")
        seen.append(dt)
        return times[dt]

    return probe


@pytest.mark.parametrize("times, want, reason", [
    ({"float32": 1.0, "bfloat16": 0.5}, "bfloat16", "bf16 base, float32 adapter: faster on this CPU (amx_bf16"),
    ({"float32": 1.0, "bfloat16": 0.9}, "float32", "float32: a bf16 base was not faster on this CPU"),  # not clearly faster
    ({"float32": 1.0, "bfloat16": 4.5}, "float32", "float32: a bf16 base was not faster on this CPU"),
])
def test_the_faster_precision_is_picked_and_kept_per_cpu(tmp_path, tiny_loader, times, want, reason):
    model, _ = tiny_loader.get()
    seen = []
    dtype, why = training.decide(model, tmp_path, "m", probe=fake_probe(times, seen), flags=["amx_bf16"])
    assert (dtype, seen) == (want, ["float32", "bfloat16"] * 2) and why.startswith(reason)
    assert "500 ms" in why or "900 ms" in why or "4500 ms" in why
    assert next(model.parameters()).dtype == torch.float32  # the probe measured a copy, not the model
    again = []
    dtype2, why2 = training.decide(model, tmp_path, "m", probe=fake_probe(times, again), flags=["amx_bf16"])
    assert (dtype2, again) == (want, []) and why2.endswith("(measured at an earlier start on this CPU)")


def test_no_native_bf16_or_a_dtype_asked_for_measures_nothing(tmp_path, tiny_loader):
    model, _ = tiny_loader.get()

    def no_probe(m):
        raise AssertionError("no probe")

    assert training.decide(model, tmp_path, "m", probe=no_probe, flags=[]) == ("float32", "float32: this CPU has no native bf16")
    assert training.decide(model, tmp_path, "m", "bfloat16", probe=no_probe, flags=["amx_bf16"])[0] == "bfloat16"
    with pytest.raises(ValueError, match="HML_TRAIN_DTYPE"):
        training.requested("half")


def test_the_real_probe_times_a_step_and_leaves_the_model_as_it_was(tiny_loader):
    model, _ = tiny_loader.get()
    before = {n: (p.requires_grad, p.detach().clone()) for n, p in model.named_parameters()}
    assert training.probe_step_seconds(model) > 0
    half = training.bf16_copy(model, torch)
    assert {p.dtype for p in half.parameters()} == {torch.bfloat16}
    assert half.get_input_embeddings().weight is half.lm_head.weight  # a tied pair stays tied
    assert training.probe_step_seconds(half) > 0
    for n, p in model.named_parameters():
        assert p.requires_grad == before[n][0] and torch.equal(p, before[n][1]) and p.grad is None


def test_the_loader_trains_on_a_bf16_copy_where_it_measured_faster(monkeypatch, tmp_path, tiny_tokenizer):
    from modes.model import choice as choice_mod
    from modes.model import loader as loader_mod
    from tests.test_loader import _saved_tiny

    monkeypatch.setattr(choice_mod, "cpu_bf16_flags", lambda: ["amx_bf16"])
    seen = []
    ld = loader_mod.ModelLoader(str(_saved_tiny(tmp_path, tiny_tokenizer)), cache_dir=tmp_path / "c", dtype="float32",
                                train_dtype="auto", train_probe=fake_probe({"float32": 1.0, "bfloat16": 0.4}, seen))
    model, _ = ld.get()
    assert next(model.parameters()).dtype == torch.float32  # served as asked
    copy = ld.training_copy()
    assert next(copy.parameters()).dtype == torch.bfloat16 and ld.train_dtype == "bfloat16"
    assert ld.status.as_dict()["train_dtype"] == "bfloat16"
    assert "fine-tuning: bf16 base, float32 adapter" in ld.status_markdown()
    assert next(model.parameters()).dtype == torch.float32  # the served model was not cast


@pytest.mark.parametrize("direction", ["en-ko", "ko-en"])
def test_a_bf16_base_trains_a_float32_adapter_scored_on_the_served_model(tiny_loader, direction):
    tiny_loader.train_dtype = "bfloat16"
    base, tok = tiny_loader.get()
    served_hash = fc.weights_hash(base)
    cfg = fc.FinetuneConfig(steps=4, batch_size=4, eval_every=2, r=4, alpha=8, direction=direction)
    gen = bulk_generator(None)
    test = task.pairs_for(direction, "test")[:6]
    res = list(fc.finetune(tiny_loader, cfg, task.pairs_for(direction, "train")[:24], test, off_task=False, generate=gen))[-1]
    assert res.dtype == "bfloat16" and res.steps == 4 and res.base_weights_unchanged and res.adapter_params_changed > 0
    assert fc.weights_hash(base) == served_hash  # the served model never moved
    tuned = serving_model(base, res.adapter)
    assert {p.dtype for p in tuned.parameters()} == {torch.float32}  # scored in the served dtype
    n = fc.prompting("translation", direction, "en", task.DEFAULT_TEMPLATE).max_new_tokens
    outs = gen(tuned, tok, "", [task.render_prompt(task.DEFAULT_TEMPLATE, direction, p.source) for p in test[:3]], max_new_tokens=n)
    assert [e["finetuned"] for e in res.examples[:3]] == outs  # what the result shows is what /translate gives
