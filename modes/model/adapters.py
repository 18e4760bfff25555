"""LoRA adapters as files: save to a zip that PeftModel.from_pretrained loads, validate uploads, apply.

An adapter is small (a few MB) and belongs to one learner's session. Applying it never touches the
shared base model: it goes onto a private copy, used for one request and then dropped.
"""

from __future__ import annotations

import copy
import hashlib
import io
import json
import math
import re
import tempfile
import zipfile
from dataclasses import dataclass
from pathlib import Path

from modes.codec import recordable
from modes.data.uploads import InputError

ALLOWED = ("adapter_model.safetensors", "adapter_config.json")
PICKLE_SUFFIXES = (".bin", ".pkl", ".pickle", ".pt", ".pth", ".ckpt", ".npy", ".npz", ".joblib")
MAX_ZIP_BYTES = 100 * 1024 * 1024  # r=256 on every linear layer of the 270M model is ~60 MB
MAX_UNZIPPED_BYTES = 200 * 1024 * 1024  # refuses zip bombs


@recordable
@dataclass
class Adapter:
    """A trained or uploaded adapter: what the learner's session keeps (gr.State)."""

    zip_bytes: bytes  # adapter_model.safetensors + adapter_config.json
    direction: str
    template: str
    trainable_params: int
    total_params: int
    source: str = "trained"  # 'trained' or 'uploaded'
    path: str | None = None  # the downloadable zip on disk, removed when the session ends


def adapter_key(adapter: Adapter) -> str:
    """The adapter's identity for sharing: equal bytes (a replayed run's adapter) share one model."""

    return hashlib.sha256(adapter.zip_bytes).hexdigest()[:16]


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
                # A fixed timestamp: the same adapter gives the same bytes (replays and their check).
                info = zipfile.ZipInfo(name, date_time=(2025, 1, 1, 0, 0, 0))
                info.compress_type = zipfile.ZIP_DEFLATED
                z.writestr(info, (Path(d) / name).read_bytes())
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


USABLE_DTYPES = ("float32", "float16", "bfloat16")  # what a LoRA layer can multiply with the model's weights


def _targets_found(targets, module_names: list[str]) -> bool:
    """Whether PEFT's `target_modules` (a list of name suffixes, a regex, or 'all-linear') names a module."""

    if targets in (None, "all-linear"):
        return True
    if isinstance(targets, str):
        return any(re.fullmatch(targets, n) for n in module_names)
    if not isinstance(targets, (list, tuple)) or not targets:
        return False
    return all(any(n == t or n.endswith("." + t) for n in module_names) for t in targets)


def check_adapter(config: dict, tensors: dict, base_model) -> None:
    """The integrity checks every adapter passes before the app uses it, trained here or uploaded.

    Each failure raises an InputError with its own message: a LoRA adapter whose tensors fit this
    model's layers, with finite values in a usable dtype, an `r`/`lora_alpha` that match the tensors,
    target modules that exist, and at least one tensor that changes something.
    """

    import torch

    if not tensors:
        raise InputError("err_adapter_no_tensors")
    r, alpha = config.get("r"), config.get("lora_alpha")
    if isinstance(r, bool) or not isinstance(r, int) or r < 1:
        raise InputError("err_adapter_r", r=r)
    if isinstance(alpha, bool) or not isinstance(alpha, (int, float)) or not math.isfinite(alpha) or alpha <= 0:
        raise InputError("err_adapter_alpha", alpha=alpha)
    bias = config.get("bias", "none")
    if bias not in (None, "none") and not any(k.endswith(".bias") for k in tensors):
        raise InputError("err_adapter_bias", bias=bias)
    modules = dict(base_model.named_modules())
    if not _targets_found(config.get("target_modules"), list(modules)):
        raise InputError("err_adapter_targets", targets=config.get("target_modules"))
    def layer_of(key: str):
        """('lora_A' | 'lora_B' | None, the model's linear layer it belongs to or None)."""
        # 'base_model.model.model.layers.0.self_attn.q_proj.lora_A.weight'
        parts = key.removeprefix("base_model.model.").split(".")
        kind = next((k for k in ("lora_A", "lora_B") if k in parts), None)
        mod = modules.get(".".join(parts[: parts.index(kind)])) if kind else None
        return kind, (mod if hasattr(mod, "in_features") else None)

    if not any(layer_of(key)[1] is not None for key in tensors):
        raise InputError("err_adapter_no_match", n=len(tensors))
    for key, t in sorted(tensors.items()):  # name order: the same tensor is named whatever the file's order
        kind, mod = layer_of(key)
        if kind is None:
            raise InputError("err_adapter_shape", tensor=key, why="not a LoRA tensor")
        if mod is None:
            raise InputError("err_adapter_shape", tensor=key, why="no such layer in this model")
        if str(t.dtype).removeprefix("torch.") not in USABLE_DTYPES:
            raise InputError("err_adapter_dtype", tensor=key, dtype=str(t.dtype).removeprefix("torch."))
        rank = t.shape[0] if kind == "lora_A" else t.shape[-1]
        if t.dim() == 2 and rank != r and t.shape[1 if kind == "lora_A" else 0] == (mod.in_features if kind == "lora_A" else mod.out_features):
            raise InputError("err_adapter_r_mismatch", r=r, rank=rank, tensor=key)
        want = (r, mod.in_features) if kind == "lora_A" else (mod.out_features, r)
        if tuple(t.shape) != want:
            raise InputError("err_adapter_shape", tensor=key, why=f"shape {tuple(t.shape)}, expected {want}")
        if not bool(torch.isfinite(t).all()):
            bad = "NaN" if bool(torch.isnan(t).any()) else "Inf"
            raise InputError("err_adapter_not_finite", tensor=key, bad=bad)


def validate_adapter_zip(raw: bytes, base_model) -> tuple[dict, dict]:
    """Check an adapter zip against the base model; return (config, tensors) or raise InputError."""
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
    except Exception:  # any parse failure means "not a safetensors file"
        raise InputError("err_adapter_weights") from None
    check_adapter(config, tensors, base_model)
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


def merged_copy(peft_model, base_model):
    """A plain model with the adapter merged into a copy of the weights (merged in float32, then cast to
    the base's dtype). It generates at the base model's speed: no LoRA layers, and bf16 where the base is
    bf16 (unmerged PEFT generation on a float32 copy was 2-3x slower than the bf16 base here)."""
    return _for_serving(copy.deepcopy(peft_model).merge_and_unload(), base_model)


def serving_model(base_model, adapter: Adapter):
    """The model /translate and the sweep use for an adapter: merged, in the served model's dtype."""
    return _for_serving(apply_adapter(base_model, adapter).merge_and_unload(), base_model)


def _for_serving(merged, base_model):
    from modes.serving import packed, rowwise

    merged = merged.to(base_model.dtype).eval()
    share_unchanged(merged, base_model)
    packed.pack(merged)  # a training copy's linears are plain nn.Linear; serve them packed as the base is
    if getattr(base_model.config, "_attn_implementation", None) == rowwise.NAME:
        rowwise.use(merged)  # and with the base's attention, so a scored answer is the one /translate gives
    return merged


def share_unchanged(model, base) -> int:
    """Point each parameter of `model` that equals the base's (same module path, same values) at the base's
    own Parameter, and return how many values are shared.

    A merged adapter changes only its LoRA targets: the embedding (168M of the 268M parameters, tied to
    the LM head), the norms and the untouched linears need no second copy, nor a second packed copy
    (modes/serving/packed.py keeps that on the Parameter). Served models are never written to, so sharing is safe.
    """
    import torch

    mods = dict(base.named_modules())
    n = 0
    for name, mod in model.named_modules():
        other = mods.get(name)
        if other is None:
            continue
        for pname, p in list(mod._parameters.items()):
            q = other._parameters.get(pname)
            if p is None or q is None or p is q or p.shape != q.shape or p.dtype != q.dtype or p.device != q.device:
                continue
            if torch.equal(p, q):
                mod._parameters[pname] = q  # a tied pair (embedding and LM head) both land on the base's one
                n += p.numel()
    return n


def apply_adapter(base_model, adapter: Adapter):
    """A PeftModel = private copy of the base + this adapter, in eval mode. The caller drops it after use."""
    import torch
    from peft import PeftModel

    with tempfile.TemporaryDirectory() as d:
        with zipfile.ZipFile(io.BytesIO(adapter.zip_bytes)) as z:
            for name in ALLOWED:
                (Path(d) / name).write_bytes(z.read(name))
        private = copy.deepcopy(base_model)
        if private.device.type == "cpu" and private.dtype == torch.bfloat16:
            # PEFT's LoRA layers on a bf16 base generate about 11x slower on this CPU than the base
            # alone (69 held-out sentences: 60.5 s against 5.4 s), so the adapter runs on a float32 copy.
            private = private.float()
        model = PeftModel.from_pretrained(private, d, is_trainable=False)
    return model.eval()
