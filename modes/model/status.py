"""What the UI shows about the model, while it loads and after: its state, source, device and precision (with why),
as a dataclass /model_status returns, and the one-paragraph detail the status line folds under 'details'."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field


@dataclass
class ModelStatus:
    """What the UI shows about the model, while loading and after."""

    state: str = "idle"  # idle | loading | ready | error
    name: str = ""
    source: str = ""
    device: str = ""
    dtype: str = ""
    dtype_reason: str = ""  # why the served model runs in that dtype (asked for, native bf16 measured faster, ...)
    train_dtype: str = ""  # what a fine-tune's private copy trains in (modes/model/training.py)
    train_dtype_reason: str = ""
    params: int = 0
    load_seconds: float = 0.0
    message: str = ""
    warnings: list[str] = field(default_factory=list)

    def as_dict(self) -> dict:
        return asdict(self)


def status_markdown(s: ModelStatus, on_cpu: bool) -> str:
    """The model's line: name, size, source, device and precision with its reasons, then any warnings."""
    icon = {"ready": "🟢", "loading": "🟡", "error": "🔴"}.get(s.state, "⚪")
    parts = [f"{icon} **{s.name or 'model'}**"]
    if s.state == "ready":
        parts.append(f"{s.params / 1e6:.0f}M parameters · {s.source} · {s.device} ({s.dtype}) · loaded in {s.load_seconds:.1f}s")
        if s.dtype_reason:
            parts[-1] += f" · precision: {s.dtype_reason}"
        if s.train_dtype_reason and on_cpu:
            parts[-1] += f" · fine-tuning: {s.train_dtype_reason}"
    else:
        parts.append(s.message or s.state)
    text = " — ".join(parts)
    for w in s.warnings:
        text += f"\n\n⚠️ {w}"
    return text
