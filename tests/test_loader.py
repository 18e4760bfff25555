"""The shared loader: embedded model cache, determinism, parameter count, error paths, scratch models."""

from __future__ import annotations

import pytest
import torch

from modes.model import loader as loader_mod
from modes.model.loader import ModelLoader, ModelLoadError
from tests.conftest import wait_until


def test_bad_hub_id_falls_back_with_clear_message(tmp_path, monkeypatch, tiny_loader):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    ld = ModelLoader("no-such-org/no-such-model-xyz", cache_dir=tmp_path)
    with pytest.raises(ModelLoadError) as err:
        ld._load_pretrained("no-such-org/no-such-model-xyz")
    assert "no-such-org/no-such-model-xyz" in str(err.value)
    # The full load falls back to the embedded model and says so; stub the embedded path for speed.
    monkeypatch.setattr(loader_mod, "embedded_cache_path", lambda cache: tmp_path)
    model, tok = tiny_loader.get()
    real_load = ld._load_pretrained
    monkeypatch.setattr(ld, "_load_pretrained", lambda ident, **kw: (model, tok) if ident == str(tmp_path) else real_load(ident, **kw))
    ld.get()
    assert ld.status.state == "ready"
    assert "Gemma 3 270M" in ld.status.name
    assert any("no-such-org/no-such-model-xyz" in w and "embedded" in w for w in ld.status.warnings)
    assert "no-such-org/no-such-model-xyz" in ld.status_markdown()


def test_path_like_id_that_is_not_a_dir(tmp_path):
    ld = ModelLoader(cache_dir=tmp_path)
    with pytest.raises(ModelLoadError, match="no such local directory"):
        ld._load_pretrained(str(tmp_path / "missing" / "dir"))


def test_local_directory_source_round_trip(tmp_path, tiny_loader):
    """A model saved to a local HF directory loads through the same switch as a Hub id."""
    model, tok = tiny_loader.get()
    model.save_pretrained(tmp_path / "m")
    tok.save_pretrained(tmp_path / "m")
    assert not list((tmp_path / "m").glob("*.bin")), "weights must be safetensors"
    ld = ModelLoader(str(tmp_path / "m"), cache_dir=tmp_path / "cache")
    m2, _ = ld.get()
    assert ld.status.source == "local directory" and not ld.status.warnings
    ids = torch.tensor([[2, 5, 6, 7]])
    with torch.no_grad():
        assert torch.allclose(model(ids).logits, m2(ids).logits, atol=1e-6)


def test_local_dir_with_only_pickle_weights_is_refused(tmp_path, tiny_loader):
    model, tok = tiny_loader.get()
    model.save_pretrained(tmp_path / "m", safe_serialization=False) if "safe_serialization" in model.save_pretrained.__code__.co_varnames else None
    d = tmp_path / "m"
    d.mkdir(exist_ok=True)
    for f in d.glob("*.safetensors"):
        f.unlink()
    torch.save(model.state_dict(), d / "pytorch_model.bin")
    model.config.save_pretrained(d)
    tok.save_pretrained(d)
    with pytest.raises(ModelLoadError, match=rf"Could not load model '{d}'") as err:
        ModelLoader(cache_dir=tmp_path)._load_pretrained(str(d))
    assert "safetensors" in str(err.value).lower() or "OSError" in str(err.value)


def test_loading_is_thread_safe_and_lazy(tiny_loader, monkeypatch, tmp_path):
    import threading

    calls = []
    model, tok = tiny_loader.get()
    ld = ModelLoader(str(tmp_path), cache_dir=tmp_path)

    def slow_load(ident):
        calls.append(ident)
        threading.Event().wait(0.2)
        return model, tok

    monkeypatch.setattr(ld, "_load_pretrained", slow_load)
    assert not ld.ready and ld.status.state == "idle"
    threads = [threading.Thread(target=ld.get) for _ in range(6)]
    [t.start() for t in threads]
    [t.join() for t in threads]
    assert calls == [str(tmp_path)]
    assert ld.ready and ld.status.params == sum(p.numel() for p in model.parameters())


def test_background_load_calls_on_done_when_ready_and_when_failed(tiny_loader, monkeypatch, tmp_path):
    """app.py turns the garbage collector back on in on_done, so it must run whatever happens."""
    model, tok = tiny_loader.get()
    for outcome in ("ready", "error"):
        ld = ModelLoader(str(tmp_path), cache_dir=tmp_path / "empty")
        seen = []

        def load(ident, outcome=outcome, **kw):
            if outcome == "error":
                raise ModelLoadError(f"Could not load model '{ident}': broken")
            return model, tok

        monkeypatch.setattr(ld, "_load_pretrained", load)
        # A failed chosen model falls back to the embedded one; make that fail too.
        monkeypatch.setattr(loader_mod, "convert_embedded", lambda cache: (_ for _ in ()).throw(OSError("no disk")))
        ld.start_background(on_done=lambda: seen.append(ld.status.state)).join(10)
        assert seen == [outcome]


def test_scratch_model_is_same_family_and_seeded(tiny_loader):
    from modes.pretrain.core import scratch_model

    a = scratch_model(tiny_loader, vocab_size=65, n_layer=2, n_head=2, n_embd=32, block_size=32, seed=3)
    b = scratch_model(tiny_loader, vocab_size=65, n_layer=2, n_head=2, n_embd=32, block_size=32, seed=3)
    assert type(a).__name__ == "Gemma3ForCausalLM"
    assert all(torch.equal(x, y) for x, y in zip(a.parameters(), b.parameters()))


@pytest.mark.real
def test_real_embedded_model_cache_determinism_and_size(real_loader, monkeypatch):
    cache = loader_mod.embedded_cache_path(real_loader.cache_dir)
    assert cache is not None and (cache / "model.safetensors").exists()
    assert not list(cache.glob("*.bin")) and not list(cache.glob("*.pkl"))
    assert 260e6 < real_loader.status.params < 275e6  # about 268M

    # Reuse: a second loader must not convert again.
    monkeypatch.setattr(loader_mod, "convert_embedded", lambda c: pytest.fail("cache was not reused"))
    again = ModelLoader(cache_dir=real_loader.cache_dir)
    again.get()
    assert "from cache" in again.status.source

    model, tok = real_loader.get()
    assert getattr(model, "hf_quantizer", None) is None and not getattr(model, "is_quantized", False)
    assert "quantization_config" not in model.config.to_dict()
    ids = tok("The capital of France is", return_tensors="pt")
    outs = [model.generate(**ids, max_new_tokens=8, do_sample=False)[0].tolist() for _ in range(2)]
    assert outs[0] == outs[1]
    assert len(outs[0]) == ids["input_ids"].shape[1] + 8 or tok.eos_token_id in outs[0]


@pytest.mark.real
def test_fast_cached_tokenizer_matches_gemma_tokenizer(real_loader):
    """The embedded model's tokenizer loads through TokenizersBackend (fast); it must behave exactly
    like the GemmaTokenizer that AutoTokenizer builds from the same files."""
    from transformers import AutoTokenizer

    cache = loader_mod.embedded_cache_path(real_loader.cache_dir)
    _, fast = real_loader.get()
    slow = AutoTokenizer.from_pretrained(str(cache))
    assert type(slow).__name__ == "GemmaTokenizer" and type(fast).__name__ != "GemmaTokenizer"
    texts = ["To be, or not to be, that is the question:", "안녕하세요. 오늘 날씨가 좋네요!",
             "  leading spaces\n\nnewlines\ttabs", "English: I love cats.\nKorean: 나는 고양이를 좋아한다.",
             "emoji 🤖🎉 and ünïcödé", "<start_of_turn>user\nhi<end_of_turn>", "<unused5> <pad><mask><eos>",
             "xqzj wpv kkkk", "", "\x00\x01 control"]
    for text in texts:
        for special in (True, False):
            a = slow(text, add_special_tokens=special)["input_ids"]
            assert fast(text, add_special_tokens=special)["input_ids"] == a, text
        assert fast.decode(a) == slow.decode(a)
        assert fast.decode(a, skip_special_tokens=True) == slow.decode(a, skip_special_tokens=True)
    for attr in ("bos_token_id", "eos_token_id", "pad_token_id", "unk_token_id", "padding_side", "all_special_ids"):
        assert getattr(fast, attr) == getattr(slow, attr), attr
    assert len(fast) == len(slow) == 262144
    batch = ["hi", "a longer sentence here"]
    assert fast(batch, padding=True)["input_ids"] == slow(batch, padding=True)["input_ids"]


def test_heavy_libraries_are_imported_once_by_one_owner(monkeypatch, tmp_path):
    """Many request threads asking at once: one import, the others wait for it, none races it."""
    import threading

    from modes.model import loader as loader_mod

    calls, inside, release = [], [], threading.Event()

    def slow_import():
        inside.append(threading.current_thread().name)
        release.wait(60)  # held until the test has seen the others wait: no guess at how long a thread takes to start
        calls.append(1)

    monkeypatch.setattr(loader_mod, "import_heavy_libraries", slow_import)
    ld = loader_mod.ModelLoader(cache_dir=tmp_path)
    done = []
    threads = [threading.Thread(target=lambda: (ld.libraries(), done.append(ld.libraries_ready))) for _ in range(6)]
    for th in threads:
        th.start()
    wait_until(lambda: inside, 30, "no thread began the import")
    assert ld.status.state == "loading" and "model libraries" in ld.status.message  # visible while waiting
    release.set()
    for th in threads:
        th.join(60)
    assert len(calls) == 1 and len(inside) == 1 and done == [True] * 6


def test_a_failed_library_import_is_reported_to_every_caller(monkeypatch, tmp_path):
    from modes.model import loader as loader_mod

    def broken():
        raise ImportError("cannot import name 'AutoModel' from 'transformers'")

    monkeypatch.setattr(loader_mod, "import_heavy_libraries", broken)
    ld = loader_mod.ModelLoader(cache_dir=tmp_path)
    for _ in range(2):
        with pytest.raises(loader_mod.ModelLoadError, match="Could not import the model libraries: cannot import name 'AutoModel'"):
            ld.get()
    assert not ld.libraries_ready and ld.status.state == "error" and "AutoModel" in ld.status_markdown()


CPUINFO_BF16 = "processor\t: 0\nflags\t\t: fpu sse avx2 avx512f avx512_bf16 avx512_vnni\n"
CPUINFO_PLAIN = "processor\t: 0\nflags\t\t: fpu sse avx2 avx512f\n"


def test_cpu_bf16_flags_are_read_from_cpuinfo():
    from modes.serving.precision import cpu_bf16_flags

    assert cpu_bf16_flags(CPUINFO_BF16) == ["avx512_bf16"]
    assert cpu_bf16_flags(CPUINFO_PLAIN) == []
    assert cpu_bf16_flags("Features\t: fp asimd bf16 i8mm\n") == ["bf16"]  # Arm


@pytest.mark.parametrize("value, want", [(None, "auto"), ("bf16", "bfloat16"), ("FLOAT32", "float32")])
def test_requested_dtype(monkeypatch, value, want):
    from modes.serving.precision import requested_dtype

    monkeypatch.delenv("HML_DTYPE", raising=False)
    assert requested_dtype(value) == want


def test_bad_dtype_names_the_knob(monkeypatch):
    from modes.serving.precision import requested_dtype

    monkeypatch.setenv("HML_DTYPE", "float8")
    with pytest.raises(ValueError, match="dtype: must be one of auto, float32, bfloat16 .*HML_DTYPE.*float8"):
        requested_dtype()


def _saved_tiny(tmp_path, tiny_tokenizer):
    from tests.conftest import make_tiny_model

    d = tmp_path / "m"
    make_tiny_model(len(tiny_tokenizer)).save_pretrained(d)
    tiny_tokenizer.save_pretrained(d)
    return d


@pytest.mark.parametrize("flags, probe, want, reason", [
    (CPUINFO_BF16, {"float32": 0.10, "bfloat16": 0.05}, "bfloat16", "bfloat16: native on this CPU (avx512_bf16) and faster here"),
    (CPUINFO_BF16, {"float32": 0.10, "bfloat16": 0.40}, "float32", "float32: bf16 is native here (avx512_bf16) but was not faster"),
    (CPUINFO_PLAIN, {"float32": 0.10, "bfloat16": 0.05}, "float32", "float32: this CPU has no native bf16"),
])
def test_auto_precision_on_the_cpu(monkeypatch, tmp_path, tiny_tokenizer, flags, probe, want, reason):
    """bf16 only with a native flag and a faster probe; otherwise float32 (reloaded from its source)."""
    import torch

    from modes.model import choice as choice_mod
    from modes.model import loader as loader_mod

    real_flags = choice_mod.cpu_bf16_flags
    monkeypatch.setattr(choice_mod, "cpu_bf16_flags", lambda: real_flags(flags))
    seen = []

    def fake_probe(model):
        dt = str(next(model.parameters()).dtype).removeprefix("torch.")
        seen.append(dt)
        return probe[dt]

    d = _saved_tiny(tmp_path, tiny_tokenizer)
    ld = loader_mod.ModelLoader(str(d), cache_dir=tmp_path / "c", dtype="auto", probe=fake_probe,
                                invariance=lambda m, t: (True, "checked"))
    model, _ = ld.get()
    assert next(model.parameters()).dtype == getattr(torch, want)
    assert ld.dtype_name == want and ld.status.as_dict()["dtype"] == want
    assert ld.status.dtype_reason.startswith(reason) and reason in ld.status_markdown()
    assert seen == (["float32", "bfloat16"] if "avx512_bf16" in flags else [])
    # Training always gets a float32 copy on the CPU, loaded from the float32 source.
    copy = ld.training_copy()
    assert next(copy.parameters()).dtype == torch.float32 and copy is not model


@pytest.mark.parametrize("same, want", [(True, "bfloat16"), (False, "float32")])
def test_bf16_is_served_only_where_a_row_decodes_the_same_alone_and_batched(monkeypatch, tmp_path, tiny_tokenizer, same, want):
    """bf16 faster by the probe is not enough: the start-up check must find a row's logits the same alone and
    batched; where they differ (an AMX Xeon, measured), float32 is served and the reason says why. The decision
    is kept per CPU: the next start measures nothing and says where its decision came from."""
    import torch

    from modes.model import choice as choice_mod
    from modes.model import loader as loader_mod

    real_flags = choice_mod.cpu_bf16_flags
    monkeypatch.setattr(choice_mod, "cpu_bf16_flags", lambda: real_flags(CPUINFO_BF16))
    probed, checked = [], []

    def fake_probe(model):
        probed.append(1)
        return {torch.float32: 0.10, torch.bfloat16: 0.05}[next(model.parameters()).dtype]

    def fake_check(model, tok):
        checked.append(next(model.parameters()).dtype)
        return same, "1 of 16 rows differed batched" if not same else "16 rows the same"

    d = _saved_tiny(tmp_path, tiny_tokenizer)
    make = lambda: loader_mod.ModelLoader(str(d), cache_dir=tmp_path / "c", dtype="auto", probe=fake_probe, invariance=fake_check)
    ld = make()
    model, _ = ld.get()
    assert checked == [torch.bfloat16] and next(model.parameters()).dtype == getattr(torch, want) and ld.dtype_name == want
    reason = ld.status.dtype_reason
    assert reason.startswith(want) and ("not batch-invariant here: 1 of 16 rows differed" in reason) is (not same)
    assert ("decodes the same alone and batched" in reason) is same
    again = make()
    model2, _ = again.get()
    assert len(probed) == 2 and len(checked) == 1  # the second start measured nothing
    assert again.dtype_name == want and next(model2.parameters()).dtype == getattr(torch, want)
    assert again.status.dtype_reason == reason + " (measured at an earlier start on this CPU)"


def test_the_real_check_tells_the_served_bf16_path_from_plain_float32_and_names_the_rows(tiny_tokenizer):
    """The bf16 path built to be batch-invariant (packed linears, row-wise attention) passes; plain float32 SDPA
    over padded rows does not give the same bits (its tokens may still agree: the check is stricter)."""
    import torch

    from modes.serving import invariance, packed, rowwise
    from tests.conftest import make_tiny_model

    if not packed.available():
        pytest.skip("oneDNN cannot pack bf16 weights on this CPU: the bit-for-bit bf16 path is not built here")
    served = make_tiny_model(len(tiny_tokenizer), seed=7).to(torch.bfloat16)
    packed.pack(served)
    assert rowwise.use(served)
    assert invariance.check(served, tiny_tokenizer, rows=4, steps=3) == (True, "8 held-out rows, 3 steps, logits compared bit for bit")
    plain = make_tiny_model(len(tiny_tokenizer), seed=7)
    same, what = invariance.check(plain, tiny_tokenizer, rows=4, steps=3)
    assert not same and what.endswith("rows differed batched (8 held-out rows, 3 steps, logits compared bit for bit)")
    a = {"q1": [torch.zeros(3)], "q2": [torch.zeros(3), torch.ones(3)]}
    b = {"q1": [torch.zeros(3)], "q2": [torch.zeros(3), torch.ones(3) + 1e-7]}
    assert invariance.compare(a, b) == ["q2"] and invariance.compare(a, a) == []


@pytest.mark.parametrize("asked", ["float32", "bfloat16"])
def test_dtype_asked_for_is_used_without_a_probe(tmp_path, tiny_tokenizer, asked):
    import torch

    from modes.model.loader import ModelLoader

    def no_probe(model):
        raise AssertionError("no probe when the dtype is asked for")

    ld = ModelLoader(str(_saved_tiny(tmp_path, tiny_tokenizer)), cache_dir=tmp_path / "c", dtype=asked, probe=no_probe)
    assert next(ld.get()[0].parameters()).dtype == getattr(torch, asked)
    assert "asked for" in ld.status.dtype_reason
