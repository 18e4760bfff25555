"""Fine-tuning: loss mask, sliced logits, LoRA changes only the adapter, adapter zips, uploads, export."""

from __future__ import annotations

import io
import json
import math
import subprocess
import sys
import zipfile

import pytest
import torch

from modes.data import pair_files
from modes.data import translation as task
from modes.data.translation import Pair
from modes.data.uploads import InputError
from modes.finetune import core as fc
from modes.metrics import weights_hash
from modes.model import adapters

TEMPLATE = task.DEFAULT_TEMPLATE


def small_run(loader, steps=3, off_task=False, shakespeare_val=None, **kw):
    cfg = fc.FinetuneConfig(steps=steps, batch_size=4, eval_every=2, r=4, alpha=8, **kw)
    train = task.pairs_for("en-ko", "train")[:24]
    test = task.pairs_for("en-ko", "test")[:6]
    return list(fc.finetune(loader, cfg, train, test, off_task=off_task, shakespeare_val=shakespeare_val))[-1]


def test_builtin_split_sizes_and_disjoint():
    train, test = task.load_pairs("train"), task.load_pairs("test")
    assert len(train) >= 400 and len(test) >= 60
    assert not {r["en"] for r in train} & {r["en"] for r in test}
    assert all(r["en"].strip() and r["ko"].strip() for r in train + test)


def test_loss_mask_covers_only_target_tokens(tiny_tokenizer):
    pair = Pair("Where is the station?", "역은 어디에 있어요?")
    ids, labels = fc.encode_pair(tiny_tokenizer, TEMPLATE, "en-ko", pair, 96)
    n_prompt = len(tiny_tokenizer(task.render_prompt(TEMPLATE, "en-ko", pair.source))["input_ids"])
    assert labels[:n_prompt] == [-100] * n_prompt
    assert labels[n_prompt:] == ids[n_prompt:] and all(x != -100 for x in labels[n_prompt:])
    assert tiny_tokenizer.decode(ids[n_prompt:]) == " 역은 어디에 있어요?\n"


def test_sliced_logits_loss_equals_full_loss(tiny_loader):
    model, tok = tiny_loader.get()
    pairs = task.pairs_for("en-ko", "train")[:5]
    ex = [fc.encode_pair(tok, TEMPLATE, "en-ko", p, 96) for p in pairs]
    ids, mask, labels = fc.collate(ex, tok.pad_token_id)
    sliced = fc.masked_lm_loss(model, ids, mask, labels)
    logits = model(input_ids=ids, attention_mask=mask).logits
    full = torch.nn.functional.cross_entropy(logits[:, :-1].reshape(-1, logits.shape[-1]), labels[:, 1:].reshape(-1), ignore_index=-100)
    assert torch.allclose(sliced, full, atol=1e-5)


def test_lora_steps_change_only_adapter(tiny_loader):
    model, _ = tiny_loader.get()
    before = weights_hash(model)
    res = small_run(tiny_loader)
    assert res.base_weights_unchanged and res.base_hash_after == before == weights_hash(model)
    assert res.adapter_params_changed == res.trainable_params > 0
    assert 0 < res.trainable_fraction < 0.2
    assert res.chrf_before is not None and res.chrf_after is not None


def test_adapter_zip_round_trips(tiny_loader):
    model, tok = tiny_loader.get()
    res = small_run(tiny_loader)
    names = zipfile.ZipFile(io.BytesIO(res.adapter.zip_bytes)).namelist()
    assert sorted(names) == ["adapter_config.json", "adapter_model.safetensors"]
    loaded = adapters.apply_adapter(model, res.adapter)
    assert any("lora_A" in n for n, _ in loaded.named_parameters())
    ids = torch.tensor([[2, 10, 11, 12]])
    with torch.no_grad():
        with loaded.disable_adapter():
            base_out = loaded(input_ids=ids).logits
        assert torch.allclose(base_out, model(input_ids=ids).logits, atol=1e-6)
        assert not torch.allclose(loaded(input_ids=ids).logits, base_out)  # B was trained away from 0


def _zip(files: dict) -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as z:
        for name, content in files.items():
            z.writestr(name, content)
    return buf.getvalue()


@pytest.fixture(scope="module")
def good_members(tiny_tokenizer):
    """The two files of a real adapter trained for one step on a tiny model."""
    from modes.model.loader import ModelLoader
    from tests.conftest import make_tiny_model

    loader = ModelLoader.from_model(make_tiny_model(len(tiny_tokenizer)), tiny_tokenizer)
    good = small_run(loader, steps=1).adapter.zip_bytes
    return {n: zipfile.ZipFile(io.BytesIO(good)).read(n) for n in adapters.ALLOWED}


def _with_config(members, **change) -> bytes:
    cfg = {**json.loads(members["adapter_config.json"]), **change}
    return _zip({"adapter_config.json": json.dumps(cfg), "adapter_model.safetensors": members["adapter_model.safetensors"]})


BAD_ZIPS = {
    "err_adapter_not_zip": lambda m: b"not a zip at all",
    "err_adapter_empty": lambda m: _zip({}),
    "err_adapter_pickle": lambda m: _zip({"adapter_model.bin": b"x", **m}),
    "err_adapter_traversal": lambda m: _zip({"../../etc/adapter_config.json": b"{}"}),
    "err_adapter_unexpected": lambda m: _zip({"run.py": b"print(1)"}),
    "err_adapter_missing": lambda m: _zip({"adapter_config.json": m["adapter_config.json"]}),
    "err_adapter_r_mismatch": lambda m: _with_config(m, r=32),  # the tensors have rank 16
    "err_adapter_alpha": lambda m: _with_config(m, lora_alpha=-1),
    "err_adapter_targets": lambda m: _with_config(m, target_modules=["not_a_layer"]),
    "err_adapter_config": lambda m: _zip({"adapter_config.json": b"[1,2]", "adapter_model.safetensors": m["adapter_model.safetensors"]}),
}


@pytest.mark.parametrize("key", list(BAD_ZIPS))
def test_bad_adapter_zips_are_rejected(tiny_loader, good_members, key):
    with pytest.raises(InputError) as e:
        adapters.validate_adapter_zip(BAD_ZIPS[key](good_members), tiny_loader.get()[0])
    assert e.value.key == key


def test_empty_adapter_file_is_rejected(tiny_loader, tmp_path):
    model, _ = tiny_loader.get()
    f = tmp_path / "a.zip"
    f.write_bytes(b"")
    with pytest.raises(InputError, match="err_adapter_empty"):
        adapters.adapter_from_upload(f, model, "en-ko", TEMPLATE)


@pytest.mark.parametrize(
    "name, content, key",
    [
        ("a.csv", "a,b\nhello,안녕\n", "err_data_columns"),
        ("a.csv", "source,target\nhello,\n", "err_data_empty_side"),
        ("a.jsonl", '{"source": "a", "target": "b"}\n{broken\n', "err_data_bad_line"),
        ("a.jsonl", "", "err_upload_empty"),
        ("a.csv", "source,target\n" + "a,b\n" * 600_000, "err_upload_too_big"),
        ("a.csv", b"source,target\n\xff\xfe,x\n", "err_upload_not_utf8"),
        ("a.csv", b"\x00\x01\x02", "err_upload_binary"),
        ("a.csv", "source,target\na,b,c\n", "err_data_bad_line"),
        ("a.txt", "source,target\na,b\n", "err_data_format"),
    ],
)
def test_bad_pair_uploads_are_rejected(tmp_path, name, content, key):
    f = tmp_path / name
    f.write_bytes(content if isinstance(content, bytes) else content.encode("utf-8"))
    with pytest.raises(InputError) as e:
        pair_files.from_upload(f)
    assert e.value.key == key


def test_good_uploads_load(tmp_path):
    f = tmp_path / "p.csv"
    f.write_text("source,target\nHello,안녕하세요\n\"Yes, really\",네\n", encoding="utf-8")
    assert pair_files.from_upload(f) == [Pair("Hello", "안녕하세요"), Pair("Yes, really", "네")]
    g = tmp_path / "p.jsonl"
    g.write_text('{"source": "Hi", "target": "안녕"}\n\n', encoding="utf-8")
    assert pair_files.from_upload(g) == [Pair("Hi", "안녕")]


@pytest.mark.parametrize(
    "kw, field",
    [({"steps": 0}, "steps"), ({"r": -1}, "r"), ({"learning_rate": float("nan")}, "learning_rate"),
     ({"learning_rate": 0}, "learning_rate"), ({"steps": 10**7}, "steps"), ({"target": "mlp"}, "target")],
)
def test_config_errors_name_the_field(kw, field):
    with pytest.raises(ValueError, match=field):
        fc.FinetuneConfig(**kw)


def test_exported_script_runs_two_steps(tiny_loader, tmp_path):
    from modes.finetune.export import render_script

    model, tok = tiny_loader.get()
    model.save_pretrained(tmp_path / "model")
    tok.save_pretrained(tmp_path / "model")
    script = tmp_path / "train_lora.py"
    script.write_text(render_script(fc.FinetuneConfig(steps=2, batch_size=2), TEMPLATE))
    out = subprocess.run(
        [sys.executable, str(script), "--model", str(tmp_path / "model"), "--data", str(task.PAIRS_FILE),
         "--output", str(tmp_path / "out")], capture_output=True, text=True, timeout=300,
    )
    assert out.returncode == 0, out.stderr[-2000:]
    assert (tmp_path / "out" / "adapter_model.safetensors").exists()


def test_injected_failure_is_reported(tiny_loader):
    cfg = fc.FinetuneConfig(steps=3, batch_size=2)
    with pytest.raises(RuntimeError, match="injected"):
        list(fc.finetune(tiny_loader, cfg, task.pairs_for("en-ko", "train")[:8], task.pairs_for("en-ko", "test")[:2], fail_at_step=2))


@pytest.mark.real
def test_real_short_run_lowers_heldout_loss(real_loader):
    cfg = fc.FinetuneConfig(steps=6, batch_size=4, eval_every=6)
    res = list(fc.finetune(real_loader, cfg, task.pairs_for("en-ko", "train"), task.pairs_for("en-ko", "test")[:12], off_task=False))[-1]
    assert res.eval_loss_after < res.eval_loss_before - 0.2
    assert res.base_weights_unchanged and res.trainable_fraction < 0.01


class _NanGrad(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x):
        return x.clone()

    @staticmethod
    def backward(ctx, grad):
        return grad * float("nan")


def _nan_on_training_call(monkeypatch, n: int, where: str = "loss"):
    """Make the n-th training step's loss (or its gradient) NaN, as an exploding learning rate would."""
    real = fc.masked_lm_loss
    calls = {"n": 0}

    def patched(model, ids, mask, labels):
        loss = real(model, ids, mask, labels)
        if model.training:
            calls["n"] += 1
            if calls["n"] == n:
                if where == "loss":
                    return loss * float("nan")
                return _NanGrad.apply(loss)  # a finite loss whose gradient is NaN
        return loss

    monkeypatch.setattr(fc, "masked_lm_loss", patched)


def _adapter_tensors(res):
    import io
    import zipfile

    from safetensors.torch import load

    with zipfile.ZipFile(io.BytesIO(res.adapter.zip_bytes)) as z:
        return load(z.read("adapter_model.safetensors"))


@pytest.mark.parametrize("where, kept", [("loss", 1), ("grad", 2)])
def test_a_non_finite_step_stops_the_run_and_keeps_the_last_finite_adapter(tiny_loader, monkeypatch, where, kept):
    train, test = task.pairs_for("en-ko", "train")[:16], task.pairs_for("en-ko", "test")[:2]
    reference = list(fc.finetune(tiny_loader, fc.FinetuneConfig(steps=kept, batch_size=2, eval_every=5), train, test))[-1]
    _nan_on_training_call(monkeypatch, 3, where)
    res = list(fc.finetune(tiny_loader, fc.FinetuneConfig(steps=10, batch_size=2, eval_every=5), train, test))[-1]
    assert res.diverged_at == 3 and res.kept_step == kept and res.steps == 2
    assert all(math.isfinite(c["loss"]) for c in res.curve) and math.isfinite(res.eval_loss_after)
    got, want = _adapter_tensors(res), _adapter_tensors(reference)
    assert got.keys() == want.keys() and all(torch.equal(got[k], want[k]) for k in got)
    assert all(bool(torch.isfinite(t).all()) for t in got.values())


def test_off_task_keys_and_the_adapter_off_side_is_the_base_model(tiny_loader):
    """The off-task figures with the adapter disabled equal the base model's own, on the same path."""
    from modes.finetune import offtask as ot
    from modes.incontext.core import generate_batch
    from modes.metrics import chrf, pretrained_bpc

    val = "HAMLET:\nTo be, or not to be, that is the question.\n" * 5
    res = small_run(tiny_loader, steps=2, off_task=True, shakespeare_val=val)
    off = res.summary()["off_task"]
    assert set(off) >= {"general_bpc_before", "general_bpc_after", "reverse_chrf_before", "reverse_chrf_after", "continuations",
                        "reverse_direction", "general_bpc_texts", "off_task_seconds"}
    assert res.summary()["off_task_seconds"] == off["off_task_seconds"] > 0
    base, tok = tiny_loader.get()
    texts = ot.general_texts(val)
    assert list(off["general_bpc_texts"]) == ["shakespeare", "english", "korean"]
    for name, text in texts.items():
        assert off["general_bpc_texts"][name]["before"] == round(pretrained_bpc(base, tok, text), 4)
    rev = task.pairs_for("ko-en", "test")
    base_rev = generate_batch(base, tok, "", [task.fewshot_prompt("ko-en", p.source, 0)[1] for p in rev])
    assert off["reverse_direction"] == "ko-en" and off["reverse_chrf_before"] == chrf(base_rev, [p.target for p in rev])
    base_conts = generate_batch(base, tok, "", ot.probes()["prompts"], max_new_tokens=ot.CONTINUATION_TOKENS)
    assert [c["base"] for c in off["continuations"]] == base_conts
    assert [c["prompt"] for c in off["continuations"]] == ot.probes()["prompts"]


def test_an_adapter_overfit_on_one_pair_makes_general_text_harder(tiny_tokenizer):
    """Forgetting in miniature: a tiny model first learns the general texts, then a LoRA adapter
    overfits one translation pair; with the adapter on, the general texts get harder."""
    from modes.finetune import offtask as ot
    from modes.metrics import pretrained_bpc
    from modes.model.adapters import apply_adapter
    from modes.model.loader import ModelLoader
    from tests.conftest import make_tiny_model

    tok = tiny_tokenizer
    model = make_tiny_model(len(tok), seed=1).train()
    texts = list(ot.general_texts(None).values())
    ids = torch.tensor([tok.bos_token_id] + tok("\n".join(texts), add_special_tokens=False)["input_ids"])
    opt = torch.optim.AdamW(model.parameters(), lr=3e-3)
    torch.manual_seed(0)
    for _ in range(150):  # plain next-token training on the general texts (48-token windows)
        starts = torch.randint(0, len(ids) - 49, (8,))
        x = torch.stack([ids[s : s + 49] for s in starts])
        loss = model(input_ids=x[:, :-1], labels=x[:, :-1]).loss
        opt.zero_grad()
        loss.backward()
        opt.step()
    model.eval()
    loader = ModelLoader.from_model(model, tok)
    cfg = fc.FinetuneConfig(steps=40, batch_size=8, learning_rate=0.02, r=8, alpha=16, target="all-linear", dropout=0.0, eval_every=40)
    res = list(fc.finetune(loader, cfg, [Pair("The cat sleeps.", "고양이가 자요.")] * 8, task.pairs_for("en-ko", "test")[:2],
                           off_task=False))[-1]
    assert res.train_loss_last < res.train_loss_first / 4  # it did overfit the pair
    tuned = apply_adapter(model, res.adapter)
    before = sum(pretrained_bpc(model, tok, t) for t in texts) / len(texts)
    after = sum(pretrained_bpc(tuned, tok, t) for t in texts) / len(texts)
    assert after > before + 0.05, (before, after)
