"""LoRA adapters as files: save to a zip that PeftModel.from_pretrained loads, validate uploads, apply.

An adapter is small (a few MB) and belongs to one learner's session. Applying it never touches the
shared base model: it goes onto a private copy, used for one request and then dropped.
"""

from __future__ import annotations

import copy
import io
import json
import tempfile
import zipfile
from dataclasses import dataclass
from pathlib import Path

from modes.uploads import InputError

ALLOWED = ("adapter_model.safetensors", "adapter_config.json")
PICKLE_SUFFIXES = (".bin", ".pkl", ".pickle", ".pt", ".pth", ".ckpt", ".npy", ".npz", ".joblib")
MAX_ZIP_BYTES = 100 * 1024 * 1024  # r=256 on every linear layer of the 270M model is ~60 MB
MAX_UNZIPPED_BYTES = 200 * 1024 * 1024  # refuses zip bombs


@dataclass
class Adapter:
    """A trained or uploaded adapter: what the learner's session keeps (gr.State)."""

    zip_bytes: bytes  # adapter_model.safetensors + adapter_config.json
    direction: str
    template: str
    trainable_params: int
    total_params: int
    source: str = "trained"  # 'trained' or 'uploaded'
    chrf: float | None = None
    n_train: int = 0
    seconds: float = 0.0
    path: str | None = None  # the downloadable zip on disk, removed when the session ends


def cleanup(adapter: "Adapter | None") -> None:
    """gr.State delete_callback: remove the session's adapter file (and its temp folder) from disk."""
    if adapter is None or not getattr(adapter, "path", None):
        return
    p = Path(adapter.path)
    p.unlink(missing_ok=True)
    try:
        p.parent.rmdir()  # the per-run temp folder, if now empty
    except OSError:
        pass


def adapter_zip(peft_model) -> bytes:
    """The adapter as a zip of exactly adapter_model.safetensors + adapter_config.json."""
    with tempfile.TemporaryDirectory() as d:
        peft_model.save_pretrained(d, safe_serialization=True)
        buf = io.BytesIO()
        with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as z:
            for name in ALLOWED:
                z.write(Path(d) / name, name)
        return buf.getvalue()


def _read_members(raw: bytes) -> dict[str, bytes]:
    try:
        z = zipfile.ZipFile(io.BytesIO(raw))
    except zipfile.BadZipFile:
        raise InputError("err_adapter_not_zip") from None
    infos = [i for i in z.infolist() if not i.is_dir()]
    if not infos:
        raise InputError("err_adapter_empty")
    total = 0
    out: dict[str, bytes] = {}
    for info in infos:
        name = info.filename
        if name.startswith(("/", "\\")) or ".." in Path(name.replace("\\", "/")).parts or ":" in name:
            raise InputError("err_adapter_traversal", name=name)
        if name.lower().endswith(PICKLE_SUFFIXES):
            raise InputError("err_adapter_pickle", name=name)
        base = Path(name).name
        if base not in ALLOWED:
            raise InputError("err_adapter_unexpected", name=name)
        total += info.file_size
        if total > MAX_UNZIPPED_BYTES:
            raise InputError("err_adapter_too_big", cap=MAX_UNZIPPED_BYTES // 2**20)
        out[base] = z.read(info)
    missing = [n for n in ALLOWED if n not in out]
    if missing:
        raise InputError("err_adapter_missing", names=", ".join(missing))
    return out


def validate_adapter_zip(raw: bytes, base_model) -> tuple[dict, dict]:
    """Check an uploaded adapter zip against the base model; return (config, tensors) or raise InputError."""
    from safetensors.torch import load as load_safetensors

    if len(raw) > MAX_ZIP_BYTES:
        raise InputError("err_adapter_too_big", cap=MAX_ZIP_BYTES // 2**20)
    members = _read_members(raw)
    try:
        config = json.loads(members["adapter_config.json"].decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError):
        raise InputError("err_adapter_config") from None
    if not isinstance(config, dict) or config.get("peft_type") != "LORA":
        raise InputError("err_adapter_config")
    try:
        tensors = load_safetensors(members["adapter_model.safetensors"])
    except Exception:  # noqa: BLE001 - any parse failure means "not a safetensors file"
        raise InputError("err_adapter_weights") from None
    modules = dict(base_model.named_modules())
    for key, t in tensors.items():
        # 'base_model.model.model.layers.0.self_attn.q_proj.lora_A.weight'
        parts = key.removeprefix("base_model.model.").split(".")
        if "lora_A" not in parts and "lora_B" not in parts:
            raise InputError("err_adapter_shape", tensor=key, why="not a LoRA tensor")
        kind = "lora_A" if "lora_A" in parts else "lora_B"
        mod_name = ".".join(parts[: parts.index(kind)])
        mod = modules.get(mod_name)
        if mod is None or not hasattr(mod, "in_features"):
            raise InputError("err_adapter_shape", tensor=key, why="no such layer in this model")
        r = int(config.get("r", 0))
        want = (r, mod.in_features) if kind == "lora_A" else (mod.out_features, r)
        if tuple(t.shape) != want:
            raise InputError("err_adapter_shape", tensor=key, why=f"shape {tuple(t.shape)}, expected {want}")
    if not tensors:
        raise InputError("err_adapter_weights")
    return config, tensors


def adapter_from_upload(path: str | Path, base_model, direction: str, template: str) -> Adapter:
    raw = Path(path).read_bytes()
    if not raw:
        raise InputError("err_adapter_empty")
    config, tensors = validate_adapter_zip(raw, base_model)
    # Re-zip only the two validated members, under their plain names.
    members = _read_members(raw)
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as z:
        for name in ALLOWED:
            z.writestr(name, members[name])
    n = sum(t.numel() for t in tensors.values())
    total = sum(p.numel() for p in base_model.parameters()) + n
    return Adapter(buf.getvalue(), direction, template, n, total, source="uploaded")


def apply_adapter(base_model, adapter: Adapter):
    """A PeftModel = private copy of the base + this adapter, in eval mode. The caller drops it after use."""
    from peft import PeftModel

    with tempfile.TemporaryDirectory() as d:
        with zipfile.ZipFile(io.BytesIO(adapter.zip_bytes)) as z:
            for name in ALLOWED:
                (Path(d) / name).write_bytes(z.read(name))
        model = PeftModel.from_pretrained(copy.deepcopy(base_model), d, is_trainable=False)
    return model.eval()
