"""LoRA fine-tuning settings: the run config and its caps. No torch here, so the UI can build its
widgets (whose defaults come from these) before the model libraries have loaded."""

from __future__ import annotations

import math
from dataclasses import dataclass

from modes import data as task

TARGETS = {
    "attention": ["q_proj", "k_proj", "v_proj", "o_proj"],
    "all-linear": ["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"],
}
MAX_STEPS = 1_000  # ~30 min on 2 CPU cores; longer runs belong in the exported script
MAX_LEN_CAP = 256  # tokens per example: the built-in pairs need < 80
MAX_BATCH = 64
MAX_R = 256


@dataclass
class FinetuneConfig:
    """Settings of one LoRA run. The widget defaults come from here."""

    steps: int = 60  # optimizer steps: ~2 min on 2 CPU cores with the defaults below
    r: int = 16  # adapter rank: the size of the low-rank update per weight matrix
    alpha: int = 32  # LoRA scaling numerator (update scaled by alpha / r)
    dropout: float = 0.05  # dropout on the adapter input: mild regularisation for a small data set
    target: str = "attention"  # which linear layers get adapters: 'attention' or 'all-linear'
    learning_rate: float = 1e-3  # LoRA tolerates a high rate; the base weights never move
    batch_size: int = 8  # pairs per step
    max_length: int = 96  # tokens per pair (prompt + target); longer pairs are truncated
    seed: int = 0  # fixes adapter init, batch order and dropout
    direction: str = "en-ko"  # which way to translate: 'en-ko' or 'ko-en'
    eval_every: int = 20  # steps between held-out eval-loss points
    warmup: int = 5  # linear warmup steps

    def __post_init__(self):
        def whole(name, lo, hi):
            v = getattr(self, name)
            if isinstance(v, bool) or not isinstance(v, int) or not lo <= v <= hi:
                raise ValueError(f"{name}: must be a whole number from {lo} to {hi}, got {v!r}")

        whole("steps", 1, MAX_STEPS)
        whole("r", 1, MAX_R)
        whole("alpha", 1, 4 * MAX_R)
        whole("batch_size", 1, MAX_BATCH)
        whole("max_length", 16, MAX_LEN_CAP)
        whole("eval_every", 1, MAX_STEPS)
        whole("warmup", 0, MAX_STEPS)
        if not isinstance(self.seed, int):
            raise ValueError(f"seed: must be a whole number, got {self.seed!r}")
        lr = self.learning_rate
        if not isinstance(lr, (int, float)) or isinstance(lr, bool) or not math.isfinite(lr) or not 0 < lr <= 0.1:
            raise ValueError(f"learning_rate: must be a number in (0, 0.1], got {lr!r}")
        if not isinstance(self.dropout, (int, float)) or not 0 <= self.dropout < 1:
            raise ValueError(f"dropout: must lie in [0, 1), got {self.dropout!r}")
        if self.target not in TARGETS:
            raise ValueError(f"target: must be one of {', '.join(TARGETS)}, got {self.target!r}")
        if self.direction not in task.DIRECTIONS:
            raise ValueError(f"direction: must be one of {', '.join(task.DIRECTIONS)}, got {self.direction!r}")

    def lora_config(self):
        from peft import LoraConfig

        return LoraConfig(r=self.r, lora_alpha=self.alpha, lora_dropout=self.dropout,
                          target_modules=TARGETS[self.target], task_type="CAUSAL_LM", bias="none")
