"""Recorded trainings on disk are data, never code: JSON plus a safetensors file of bytes, decoded only
into registered dataclasses; and a shared result's key changes with any file of the packages it names."""

from __future__ import annotations

import json
import shutil
from types import SimpleNamespace

import pytest

from modes import codec
from modes.finetune.core import FtResult
from modes.model.adapters import Adapter
from modes.pretrain.core import PretrainResult
from modes.runs import keys, reuse
from modes.runs.events import Eval, Sample, Step


def _recording() -> reuse.Recording:
    adapter = Adapter(b"PK\x03\x04 zip bytes \x00\xff", "ko-en", "{source} => {target}", 1024, 270_000_000)
    ft = FtResult(steps=2, seconds=1.5, train_loss_first=3.2, train_loss_last=2.9, eval_loss_before=3.0, eval_loss_after=2.8,
                  chrf_before=10.5, chrf_after=20.25, trainable_params=1024, trainable_fraction=0.0001,
                  base_weights_unchanged=True, base_hash_before="ab", base_hash_after="ab", adapter_params_changed=1024,
                  samples_per_s=4.0, diverged_at=None, examples=[{"source": "안녕", "base": "", "finetuned": "Hi", "reference": "Hello"}],
                  curve=[{"step": 1, "loss": float("nan"), "split": "train"}], adapter=adapter,
                  off_task={"shakespeare_bpc": {"on": 1.5, "off": 1.4}})
    pt = PretrainResult(steps=3, params=100, train_loss=2.0, val_loss=2.1, val_bpc=3.0, pretrained_val_bpc=None,
                        tokens_per_s=1e4, seconds=0.5, samples=[{"step": 3, "text": "To be"}])
    return reuse.Recording([Eval(0, 3.0), Sample(1, "ab\ncd"), Step(1, 2, 3.1, 0.1, 0.1, 8.0), pt, ft], 12.5)


def test_a_recording_survives_the_disk_without_pickle(tmp_path):
    rec = _recording()
    reuse.ReplayStore(tmp_path).put({"k": 1}, rec)
    files = sorted(p.name.split(".", 1)[1] for p in (tmp_path / "replays").iterdir())
    assert files == ["json", "safetensors"]  # no .pkl, no .tmp left behind
    back = reuse.ReplayStore(tmp_path).get({"k": 1})  # a fresh store: read from disk
    assert back is not None and back.seconds == 12.5 and back.recorded_at == rec.recorded_at
    assert back.events[:4] == rec.events[:4]
    ft = back.events[4]
    assert ft.adapter == rec.events[4].adapter and ft.adapter.zip_bytes == b"PK\x03\x04 zip bytes \x00\xff"
    assert ft.examples == rec.events[4].examples and ft.off_task == rec.events[4].off_task
    assert type(ft) is FtResult and ft.curve[0]["loss"] != ft.curve[0]["loss"]  # NaN kept as NaN


@pytest.mark.parametrize("tamper", ["unregistered type", "missing bytes", "not json"])
def test_a_foreign_or_broken_recording_is_not_loaded(tmp_path, tamper):
    reuse.ReplayStore(tmp_path).put({"k": 2}, _recording())
    path = next((tmp_path / "replays").glob("*.json"))
    doc = json.loads(path.read_text())
    if tamper == "unregistered type":
        doc["events"][0]["__type__"] = "Popen"  # a name from outside the registry decodes into nothing
        path.write_text(json.dumps(doc))
    elif tamper == "missing bytes":
        next((tmp_path / "replays").glob("*.safetensors")).unlink()
    else:
        path.write_text("{not json")
    assert reuse.ReplayStore(tmp_path).get({"k": 2}) is None


def test_only_registered_dataclasses_are_encoded():
    import dataclasses

    @dataclasses.dataclass
    class Unlisted:
        x: int = 1

    with pytest.raises(TypeError, match="not registered"):
        codec.encode(Unlisted(), {})
    with pytest.raises(TypeError):
        codec.encode({1: "int key"}, {})


def test_a_comment_in_any_file_of_a_named_package_changes_the_key(tmp_path, monkeypatch):
    """A sweep point's key names the packages its computation imports; appending a comment to the engine's
    row module (modes/serving/rows.py) makes an identical sweep point a new key, so it is computed anew."""
    from modes.incontext import core as ic

    copy = tmp_path / "modes"
    shutil.copytree(keys.MODES_DIR, copy, ignore=shutil.ignore_patterns("__pycache__"))
    monkeypatch.setattr(keys, "MODES_DIR", copy)
    monkeypatch.setattr(keys, "_code_hashes", {})
    ctx = SimpleNamespace(proof=lambda: SimpleNamespace(reference="w"), loader=SimpleNamespace(dtype_name="float32"))
    before = ic.sweep_point_key(ctx, "en-ko", 2, 10, 0)
    assert ic.sweep_point_key(ctx, "en-ko", 2, 10, 0) == before  # the same code: the same key
    with open(copy / "serving" / "rows.py", "a", encoding="utf-8") as f:
        f.write("# a comment\n")
    keys._code_hashes.clear()  # a new process: hashes are computed once per process
    assert keys.key_of(ic.sweep_point_key(ctx, "en-ko", 2, 10, 0)) != keys.key_of(before)
