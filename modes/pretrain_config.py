"""Pre-training settings: the size presets and the run config. No torch here, so the UI can build
its widgets (whose defaults come from these) before the model libraries have loaded."""

from __future__ import annotations

from dataclasses import dataclass

MAX_TEXT_CHARS = 2_000  # /token_loss input cap: one forward pass of the 270M model stays under ~2 s


@dataclass(frozen=True)
class SizePreset:
    n_layer: int
    n_head: int
    n_embd: int
    block_size: int
    batch_size: int
    lr: float


PRESETS: dict[str, SizePreset] = {
    "tiny": SizePreset(n_layer=4, n_head=4, n_embd=64, block_size=64, batch_size=16, lr=2e-3),  # ~0.18M parameters
    "baby": SizePreset(n_layer=4, n_head=4, n_embd=128, block_size=64, batch_size=12, lr=1e-3),  # nanoGPT's CPU config, ~0.7M
    "small": SizePreset(n_layer=6, n_head=8, n_embd=256, block_size=128, batch_size=16, lr=6e-4),  # ~4.1M
}
MAX_STEPS = 5_000  # about 4 minutes at `baby` on 2 cores; more belongs in a script, not a shared Space


@dataclass
class PretrainConfig:
    """Settings of one from-scratch run. Widget defaults come from here."""

    size: str = "baby"  # which SizePreset: model shape, block, batch and peak learning rate
    steps: int = 2000  # optimizer steps; nanoGPT's baby config reaches ~1.9 nats/char at 2000
    seed: int = 1337  # fixes init, batches and samples, so a run is reproducible
    warmup: int = 100  # linear warmup steps before cosine decay (stabilises the first updates)
    min_lr_ratio: float = 0.1  # cosine decays to this fraction of the peak, as nanoGPT does
    weight_decay: float = 0.1  # AdamW decoupled decay on matrices only
    eval_every: int = 100  # steps between validation estimates on the fixed val batches
    eval_batches: int = 8  # val batches per estimate: enough for a smooth curve, cheap on CPU
    sample_every: int = 250  # steps between generated samples (gibberish -> words -> names)
    sample_chars: int = 160  # characters per sample

    def __post_init__(self):
        if self.size not in PRESETS:
            raise ValueError(f"size: unknown preset '{self.size}' (choose one of {', '.join(PRESETS)})")
        for name in ("steps", "eval_every", "eval_batches", "sample_every", "sample_chars"):
            v = getattr(self, name)
            if not isinstance(v, int) or isinstance(v, bool) or v <= 0:
                raise ValueError(f"{name}: must be a positive whole number, got {v!r}")
        if self.steps > MAX_STEPS:
            raise ValueError(f"steps: at most {MAX_STEPS}, got {self.steps}")
        if not isinstance(self.warmup, int) or self.warmup < 0:
            raise ValueError(f"warmup: must be a whole number >= 0, got {self.warmup!r}")

    @property
    def preset(self) -> SizePreset:
        return PRESETS[self.size]
