"""The bad-input catalogue: one table of strange inputs across every endpoint, through gradio_client.

Each case must end in a clear message (never a traceback or a generic error) or, where the input is
merely unusual (control characters, mixed scripts), in a normal answer; and the app must keep
serving afterwards.
"""

from __future__ import annotations

import io
import json
import zipfile

import pytest

from tests.conftest import served_app

GENERIC = "has not enabled verbose error reporting"


@pytest.fixture(scope="module")
def served(tiny_tokenizer, tmp_path_factory):


    mp = pytest.MonkeyPatch()
    mp.setenv("HF_HUB_OFFLINE", "1")  # this machine has no Hub: Hub ids must fail at once, clearly
    with served_app(tokenizer=tiny_tokenizer) as s:
        yield s.client(), s.loader, tmp_path_factory.mktemp("bad")
    mp.undo()


def _file(d, name, content: bytes | str):
    p = d / name
    p.write_bytes(content if isinstance(content, bytes) else content.encode("utf-8"))
    return str(p)


def _zip(d, name, files: dict):
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as z:
        for n, c in files.items():
            z.writestr(n, c)
    return _file(d, name, buf.getvalue())


def _foreign_adapter(d, tokenizer):
    """A real PEFT adapter zip, made for a differently shaped model (hidden 48, not 32)."""
    from peft import LoraConfig, get_peft_model
    from transformers import Gemma3ForCausalLM, Gemma3TextConfig

    cfg = Gemma3TextConfig(vocab_size=len(tokenizer), hidden_size=48, intermediate_size=64, num_hidden_layers=2,
                           num_attention_heads=2, num_key_value_heads=1, head_dim=24, query_pre_attn_scalar=24,
                           layer_types=["sliding_attention", "full_attention"], sliding_window=64)
    m = get_peft_model(Gemma3ForCausalLM(cfg), LoraConfig(r=4, target_modules=["q_proj", "v_proj"], task_type="CAUSAL_LM"))
    from modes.model.adapters import adapter_zip

    return _file(d, "foreign.zip", adapter_zip(m))


Q0 = "base_model.model.model.layers.0.self_attn.q_proj"


def _lora(d, name, fill=0.01, r=2, rank=2, layer=Q0, dtype=None, **config):
    """An adapter zip for the tiny model's layer-0 q_proj (32 -> 32), with chosen values and config."""
    import torch
    from safetensors.torch import save

    a, b = torch.full((rank, 32), fill), torch.full((32, rank), fill)
    if dtype is not None:
        a, b = a.to(dtype), b.to(dtype)
    conf = {"peft_type": "LORA", "r": r, "lora_alpha": 2 * r, "target_modules": ["q_proj"], "bias": "none",
            "task_type": "CAUSAL_LM", **config}
    return _zip(d, name, {"adapter_model.safetensors": save({f"{layer}.lora_A.weight": a, f"{layer}.lora_B.weight": b}),
                          "adapter_config.json": json.dumps(conf)})


def upload(path):
    from gradio_client import handle_file

    return handle_file(path)


# (case id, endpoint, kwargs builder (tmp dir, tokenizer) -> kwargs, expected message regex or None for "answers normally")
CASES = [
    ("tl-empty", "/token_loss", lambda d, t: {"text": ""}, r"enter some text"),
    ("tl-whitespace", "/token_loss", lambda d, t: {"text": "  \n\t "}, r"enter some text"),
    ("tl-too-long", "/token_loss", lambda d, t: {"text": "x" * 5000}, r"5000 characters long; the limit is 2000"),
    ("tl-control-chars", "/token_loss", lambda d, t: {"text": "a\x00b\x07c\x1bd"}, None),
    ("tl-mixed-scripts", "/token_loss", lambda d, t: {"text": "Hello 안녕하세요 こんにちは Привет 🙂"}, None),
    ("pt-steps-zero", "/pretrain", lambda d, t: {"size": "tiny", "steps": 0}, r"less than minimum|steps: must be"),
    ("pt-steps-negative", "/pretrain", lambda d, t: {"size": "tiny", "steps": -5}, r"less than minimum|steps: must be"),
    ("pt-steps-huge", "/pretrain", lambda d, t: {"size": "tiny", "steps": 10**9}, r"greater than maximum|steps: must be"),
    ("pt-unknown-preset", "/pretrain", lambda d, t: {"size": "gigantic", "steps": 5}, r"not in the list of choices|size: must be one of"),
    ("pt-upload-missing", "/pretrain", lambda d, t: {"corpus": "upload", "size": "tiny", "steps": 5}, r"no file was uploaded"),
    ("pt-upload-binary", "/pretrain", lambda d, t: {"corpus": "upload", "size": "tiny", "steps": 5,
                                                   "upload": upload(_file(d, "b.txt", bytes(range(256)) * 50))}, r"binary"),
    ("pt-upload-latin1", "/pretrain", lambda d, t: {"corpus": "upload", "size": "tiny", "steps": 5,
                                                   "upload": upload(_file(d, "l.txt", "café naïve ".encode("latin-1") * 500))}, r"not valid UTF-8"),
    ("pt-upload-zero-bytes", "/pretrain", lambda d, t: {"corpus": "upload", "size": "tiny", "steps": 5,
                                                       "upload": upload(_file(d, "z.txt", b""))}, r"empty"),
    ("pt-upload-50mb", "/pretrain", lambda d, t: {"corpus": "upload", "size": "tiny", "steps": 5,
                                                 "upload": upload(_file(d, "big.txt", b"a" * (50 * 1024 * 1024)))}, r"limit is 5.0 MB|too large|exceeds"),
    ("pt-hub-offline", "/pretrain", lambda d, t: {"corpus": "someone/some-dataset", "size": "tiny", "steps": 5}, r"offline"),
    ("ft-steps-zero", "/finetune", lambda d, t: {"steps": 0}, r"less than minimum|steps"),
    ("ft-r-zero", "/finetune", lambda d, t: {"steps": 2, "r": 0}, r"less than minimum|r: must"),
    ("ft-lr-negative", "/finetune", lambda d, t: {"steps": 2, "learning_rate": -1}, r"learning_rate: must be a number"),
    ("ft-lr-huge", "/finetune", lambda d, t: {"steps": 2, "learning_rate": 1e9}, r"learning_rate: must be a number"),
    ("ft-lr-zero", "/finetune", lambda d, t: {"steps": 2, "learning_rate": 0}, r"learning_rate: must be a number"),
    ("ft-csv-missing-columns", "/finetune", lambda d, t: {"steps": 2, "data_source": "upload",
                                                         "upload": upload(_file(d, "m.csv", "foo,bar\nhi,안녕\n"))}, r"No column for: source, target\. Found: foo, bar"),
    ("ft-csv-renamed-column", "/finetune", lambda d, t: {"steps": 2, "data_source": "upload",
                                                        "upload": upload(_file(d, "r.csv", "source,notes\nhi,안녕\n"))}, r"No column for: target"),
    ("ft-picked-column-missing", "/finetune", lambda d, t: {"steps": 2, "data_source": "upload", "upload_src": "nope",
                                                           "upload": upload(_file(d, "p.csv", "english,korean\nhi,안녕\n"))},
     r"no column named nope\. Found: english, korean"),
    ("ft-same-column-twice", "/finetune", lambda d, t: {"steps": 2, "data_source": "upload", "upload_src": "english", "upload_tgt": "english",
                                                       "upload": upload(_file(d, "s.csv", "english,korean\nhi,안녕\n"))}, r"same column 'english'"),
    ("ft-summary-empty-row", "/finetune", lambda d, t: {"steps": 2, "data_source": "upload", "task": "dialogue-summary",
                                                       "upload": upload(_file(d, "d.csv", "dialogue,summary\n\"A: hi\nB: hello\",They greet.\n,x\n"))},
     r"Row 2 has an empty"),
    ("ft-summary-long-dialogue", "/finetune", lambda d, t: {"steps": 2, "data_source": "upload", "task": "dialogue-summary",
                                                           "upload": upload(_file(d, "l.csv", "dialogue,summary\n" + "A: hi " * 2000 + ",Hi.\n"))},
     r"Row 1 is longer than 2000"),
    ("ft-summary-bad-lang", "/finetune", lambda d, t: {"steps": 2, "task": "dialogue-summary", "summary_lang": "ja"}, r"summary_lang: must be one of en, ko"),
    ("ft-jsonl-broken-line", "/finetune", lambda d, t: {"steps": 2, "data_source": "upload",
                                                       "upload": upload(_file(d, "b.jsonl", '{"source": "a", "target": "b"}\n{"source": \n'))}, r"Line 2 is malformed"),
    ("ft-empty-side", "/finetune", lambda d, t: {"steps": 2, "data_source": "upload",
                                                "upload": upload(_file(d, "e.csv", "source,target\nhi,\n"))}, r"empty source or target"),
    ("ft-upload-non-utf8", "/finetune", lambda d, t: {"steps": 2, "data_source": "upload",
                                                     "upload": upload(_file(d, "n.csv", "source,target\n".encode() + "é,è\n".encode("cp1252")))}, r"not valid UTF-8"),
    ("ad-empty-zip", "/load_adapter", lambda d, t: {"path": upload(_zip(d, "empty.zip", {}))}, r"zip is empty"),
    ("ad-pickle", "/load_adapter", lambda d, t: {"path": upload(_zip(d, "bin.zip", {"adapter_model.bin": b"x", "adapter_config.json": "{}"}))}, r"pickle"),
    ("ad-pkl", "/load_adapter", lambda d, t: {"path": upload(_zip(d, "pkl.zip", {"weights.pkl": b"x"}))}, r"pickle"),
    ("ad-traversal", "/load_adapter", lambda d, t: {"path": upload(_zip(d, "dots.zip", {"../../adapter_config.json": "{}"}))}, r"outside its folder"),
    ("ad-other-model", "/load_adapter", lambda d, t: {"path": upload(_foreign_adapter(d, t))}, r"another model"),
    ("ad-nan", "/load_adapter", lambda d, t: {"path": upload(_lora(d, "nan.zip", fill=float("nan")))},
     r"^Refused: base_model\.model\.model\.layers\.0\.self_attn\.q_proj\.lora_A\.weight contains NaN values; the model's outputs would be meaningless\.$"),
    ("ad-inf", "/load_adapter", lambda d, t: {"path": upload(_lora(d, "inf.zip", fill=float("inf")))},
     r"^Refused: base_model\.model\.model\.layers\.0\.self_attn\.q_proj\.lora_A\.weight contains Inf values; the model's outputs would be meaningless\.$"),
    ("ad-r-mismatch", "/load_adapter", lambda d, t: {"path": upload(_lora(d, "r.zip", r=4, rank=2))},
     r"^Refused: adapter_config\.json says r = 4, but the tensors have rank 2 \(base_model\.model\.model\.layers\.0\.self_attn\.q_proj\.lora_A\.weight\)\.$"),
    ("ad-no-such-module", "/load_adapter", lambda d, t: {"path": upload(_lora(d, "mod.zip", target_modules=["qkv_fused"]))},
     r"^Refused: the adapter targets modules this model does not have: \['qkv_fused'\]\.$"),
    ("ad-zero-matching", "/load_adapter", lambda d, t: {"path": upload(_lora(d, "none.zip", layer="base_model.model.model.layers.7.self_attn.q_proj"))},
     r"^Refused: none of the adapter's 2 tensors matches a layer of this model, so it would change nothing\.$"),
    ("ad-bias-all", "/load_adapter", lambda d, t: {"path": upload(_lora(d, "bias.zip", bias="all"))},
     r"^Refused: adapter_config\.json sets bias = 'all', but the adapter carries no bias tensors\.$"),
    ("ad-int-dtype", "/load_adapter", lambda d, t: {"path": upload(_lora(d, "int.zip", fill=1, dtype=__import__("torch").int32))},
     r"^Refused: base_model\.model\.model\.layers\.0\.self_attn\.q_proj\.lora_A\.weight is int32; an adapter must hold float32, float16 or bfloat16 values\.$"),
    ("ad-not-a-zip", "/load_adapter", lambda d, t: {"path": upload(_file(d, "fake.zip", b"hello"))}, r"not a valid zip"),
    ("ex-r-zero", "/export_script", lambda d, t: {"r": 0}, r"less than minimum|r: must be a whole number"),
    ("tr-empty", "/translate", lambda d, t: {"text": ""}, r"enter some text"),
    ("tr-too-long", "/translate", lambda d, t: {"text": "word " * 200}, r"limit is 500"),
    ("tr-k-too-big", "/translate", lambda d, t: {"text": "Hello", "k": 17}, r"greater than maximum|k: must be"),
    ("tr-unknown-direction", "/translate", lambda d, t: {"text": "Hello", "direction": "fr-de"}, r"not in the list of choices|direction: must be one of"),
    ("tr-template-no-slot", "/translate", lambda d, t: {"text": "Hello", "template": "Translate please: {target}"}, r"\{source\} slot"),
    ("tr-max-new-zero", "/translate", lambda d, t: {"text": "Hello", "max_new_tokens": 0}, r"less than minimum|max_new_tokens: must be"),
    ("tr-no-adapter", "/translate", lambda d, t: {"text": "Hello", "use_adapter": True}, r"no LoRA adapter in this session"),
    ("tr-mixed-scripts", "/translate", lambda d, t: {"text": "Hello 안녕 Привет", "k": 1, "max_new_tokens": 4}, None),
    ("sw-bad-ks", "/icl_sweep", lambda d, t: {"ks": "a,b"}, r"k values must be whole numbers"),
    ("sw-k-out-of-range", "/icl_sweep", lambda d, t: {"ks": "0,99"}, r"k values must be whole numbers"),
    ("sw-n-zero", "/icl_sweep", lambda d, t: {"n": 0}, r"less than minimum|number of held-out pairs"),
    ("cmp-no-runs", "/compare", lambda d, t: {"picked": []}, r"^Pick at least two runs to compare\.$"),
    ("cmp-unknown-ids", "/compare", lambda d, t: {"picked": ["#zz1", "../../etc/passwd", "1" * 500]}, r"^Pick at least two runs to compare\.$"),
    ("cmp-smoothing-too-big", "/compare", lambda d, t: {"picked": ["a", "b"], "smoothing": 5}, r"greater than maximum|at least two runs"),
    ("ua-unknown-run", "/use_adapter", lambda d, t: {"picked": ["#zz1", "../../etc/passwd"]}, r"^Pick a fine-tune run whose adapter is still kept\.$"),
    ("ra-unknown-run", "/run_again", lambda d, t: {"picked": ["#zz1", "../../etc/passwd"]}, r"^Pick a finished, stopped or interrupted training run to run again\.$"),
    ("ua-nothing-picked", "/use_adapter", lambda d, t: {"picked": []}, r"^Pick a fine-tune run whose adapter is still kept\.$"),
    # Classes: an unknown code and a wrong key get the same short refusal, whatever the code looks like.
    ("cj-unknown-code", "/class_join", lambda d, t: {"code": "ZZZZZZ", "name": ""}, r"^No class with that code and key\.$"),
    ("cj-garbage-code", "/class_join", lambda d, t: {"code": "../../etc/passwd\x00" * 20, "name": "<b>x</b>" * 50},
     r"^No class with that code and key\.$"),
    ("cb-wrong-key", "/class_board", lambda d, t: {"code": "ZZZZZZ", "teacher_key": "x" * 5000}, r"^No class with that code and key\.$"),
    ("cx-wrong-key", "/class_experiment", lambda d, t: {"code": "", "teacher_key": "", "kind": "finetune", "setting": "r",
                                                        "values": "1,2"}, r"^No class with that code and key\.$"),
    ("ct-wrong-key", "/class_teacher", lambda d, t: {"code": "ZZZZZZ", "teacher_key": "k", "action": "close", "run_id": ""},
     r"^No class with that code and key\.$"),
    ("cc-wrong-key", "/class_csv", lambda d, t: {"code": "ZZZZZZ", "teacher_key": "k"}, r"^No class with that code and key\.$"),
    ("cs-unknown-run", "/class_share", lambda d, t: {"run_id": "#zz1", "shared": False}, r"^You have no run #zz1\.$"),
]


# What a normal answer to an unusual input looks like, per endpoint.
NORMAL_ANSWER = {
    "/token_loss": lambda s: len(s["tokens"]) >= 3 and s["mean_loss"] > 0 and s["bits_per_char"] > 0,
    "/translate": lambda s: s["weights_unchanged"] is True and s["prompt"].endswith("Korean:") and "translation" in s,
}


@pytest.mark.parametrize("case, endpoint, build, expect", CASES, ids=[c[0] for c in CASES])
def test_bad_input(served, tiny_tokenizer, case, endpoint, build, expect):
    client, _, tmp = served
    kwargs = build(tmp, tiny_tokenizer)
    if expect is None:
        summary = client.predict(api_name=endpoint, **kwargs)[-1]
        assert NORMAL_ANSWER[endpoint](summary), summary
    else:
        with pytest.raises(Exception) as err:
            client.predict(api_name=endpoint, **kwargs)
        msg = str(err.value)
        assert GENERIC not in msg and "Traceback" not in msg, msg
        assert __import__("re").search(expect, msg), msg
    assert client.predict(api_name="/model_status")["state"] == "ready"  # still serving


def test_unknown_model_id_offline_falls_back(monkeypatch, tmp_path):
    from modes.model.loader import ModelLoader, ModelLoadError

    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    with pytest.raises(ModelLoadError, match="no-such/model.*offline"):
        ModelLoader("no-such/model", cache_dir=tmp_path)._load_pretrained("no-such/model")


def test_every_endpoint_that_takes_input_is_in_the_catalogue(served):
    client, _, _ = served
    endpoints = client.view_api(print_info=False, return_format="dict")["named_endpoints"]
    takes_input = {name for name, info in endpoints.items() if info["parameters"]}
    assert takes_input and takes_input <= {c[1] for c in CASES}, takes_input - {c[1] for c in CASES}
