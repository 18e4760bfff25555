"""Pre-training settings: the size presets and the run config. No torch here, so the UI can build
its widgets (whose defaults come from these) before the model libraries have loaded."""

from __future__ import annotations

from dataclasses import dataclass

from modes.fields import bounded, check, choice, seed_field

MAX_TEXT_CHARS = 2_000  # /token_loss input cap: one forward pass of the 270M model stays under ~2 s


@dataclass(frozen=True)
class SizePreset:
    n_layer: int
    n_head: int
    n_embd: int
    block_size: int
    batch_size: int
    lr: float  # AdamW's peak when it trains everything (optimizer="adamw", nanoGPT's values)
    muon_lr: float = 0.006  # Muon's peak for the hidden matrices (scaled per shape to AdamW's update RMS)
    embed_lr: float = 1.2e-2  # AdamW's peak for the embedding and norms beside Muon (higher measured better)


PRESETS: dict[str, SizePreset] = {
    "tiny": SizePreset(n_layer=4, n_head=4, n_embd=64, block_size=64, batch_size=16, lr=2e-3, muon_lr=0.008),  # ~0.18M parameters
    # nanoGPT's CPU config (4 layers, 128 wide, block 64), ~0.7M parameters; batch 16 with Muon
    # reached 1.60 nats/char in fewer seconds than batch 12 (bench/pretrain.py)
    "baby": SizePreset(n_layer=4, n_head=4, n_embd=128, block_size=64, batch_size=16, lr=1e-3, muon_lr=0.006),
    "small": SizePreset(n_layer=6, n_head=8, n_embd=256, block_size=128, batch_size=16, lr=6e-4, muon_lr=0.004, embed_lr=6e-3),  # ~4.1M
}
EVAL_BATCH = 12  # windows per val batch, whatever the training batch: every preset is scored on the same text
MAX_STEPS = 5_000  # about 4 minutes at `baby` on 2 cores; more belongs in a script, not a shared Space
OBJECTIVES = ("next-token", "masked")  # GPT's objective, and BERT's


@dataclass
class PretrainConfig:
    """Settings of one from-scratch run. Widget defaults come from here."""

    size: str = choice("baby", PRESETS, "which SizePreset: model shape, block, batch and peak learning rate")
    steps: int = bounded(1100, 1, MAX_STEPS, why="optimizer steps: `baby` reaches val <= 1.60 nats/char at about 1000, in about a minute")
    seed: int = seed_field(1337, "fixes init, batches and samples, so a run is reproducible")
    objective: str = choice("next-token", OBJECTIVES, "next-token: predict each character from the ones before it (GPT); "
                            "masked: hide some characters and predict them from both sides (BERT)")
    mask_rate: float = bounded(0.15, 0.01, 0.9, 0.01, why="masked only: the share of characters hidden per window (BERT's 15%); "
                               "0 would teach nothing, 1 would leave no context")
    optimizer: str = choice("muon", ("muon", "adamw"), "muon: Muon on hidden matrices + AdamW on the rest; adamw: AdamW everywhere (nanoGPT's)")
    warmup: int = bounded(100, 0, MAX_STEPS)  # linear warmup steps (stabilises the first updates)
    decay_frac: float = bounded(0.5, 0.0, 1.0)  # warmup-stable-decay: the last half of the steps decay linearly (muon); adamw: cosine
    min_lr_ratio: float = 0.05  # the schedule ends at this fraction of the peak
    weight_decay: float = 0.1  # decoupled decay on the hidden matrices only
    eval_every: int = bounded(100, 1, MAX_STEPS)  # steps between validation estimates on the fixed val batches
    eval_batches: int = bounded(8, 1, 1000)  # val batches of EVAL_BATCH windows per estimate: a smooth curve, cheap on CPU
    sample_every: int = bounded(250, 1, MAX_STEPS)  # steps between generated samples (gibberish -> words -> names)
    sample_chars: int = bounded(160, 1, 10_000)  # characters per sample

    def __post_init__(self):
        check(self)

    @property
    def preset(self) -> SizePreset:
        return PRESETS[self.size]
