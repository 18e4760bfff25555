"""LoRA fine-tuning settings: the run config and its caps. No torch here, so the UI can build its
widgets (whose defaults come from these) before the model libraries have loaded."""

from __future__ import annotations

from dataclasses import dataclass

from modes.data import translation as task
from modes.data.dialogues import LANGS
from modes.data.tasks import TASKS
from modes.fields import bounded, check, choice, number, whole

TARGETS = {
    "attention": ["q_proj", "k_proj", "v_proj", "o_proj"],
    "all-linear": ["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"],
}
MAX_STEPS = 1_000  # ~30 min on 2 CPU cores; longer runs belong in the exported script
MAX_LEN_CAP = 256  # tokens per example: the built-in pairs need < 80, the built-in dialogues with their summaries < 112
MAX_BATCH = 64
MAX_R = 256


@dataclass
class FinetuneConfig:
    """Settings of one LoRA run. The widget defaults come from here."""

    # optimizer steps: 720 of the ~3,000 built-in pairs seen. 90 against 60 added 2.0 / 1.7 chrF EN→KO on the two dev sets
    # (0.3 / 0.3 KO→EN) for ~25 s more on 2 cores; 120 cost 50 s more for less (bench/recipes.py)
    steps: int = bounded(90, 1, MAX_STEPS)
    r: int = bounded(16, 1, MAX_R)  # adapter rank: the size of the low-rank update per weight matrix
    alpha: int = bounded(32, 1, 4 * MAX_R)  # LoRA scaling numerator (update scaled by alpha / r)
    # dropout on the adapter input: 0 by default; a run sees each pair at most once, and 0.05 cost ~20% of a step for the same chrF
    dropout: float = bounded(0.0, 0.0, 0.9, 0.01)
    target: str = "attention"  # which linear layers get adapters: 'attention' or 'all-linear'
    learning_rate: float = 1e-3  # LoRA tolerates a high rate; the base weights never move
    batch_size: int = bounded(8, 1, MAX_BATCH)  # pairs per step
    max_length: int = bounded(128, 16, MAX_LEN_CAP, 8)  # tokens per example (prompt + target); longer ones are truncated (a batch pads only to its longest)
    seed: int = 0  # fixes adapter init, batch order and dropout
    direction: str = "en-ko"  # which way to translate: 'en-ko' or 'ko-en'
    eval_every: int = bounded(20, 1, MAX_STEPS)  # steps between held-out eval-loss points
    warmup: int = bounded(5, 0, MAX_STEPS)  # linear warmup steps
    task: str = choice("translation", TASKS, "what the adapter learns: translation (the direction above) or dialogue-summary "
                       "(one sentence that sums up a short dialogue)")
    summary_lang: str = choice("en", LANGS, "dialogue-summary only: the language of the dialogues and their summaries")

    def __post_init__(self):
        check(self)
        self.seed = whole(self.seed, "seed")
        number(self.learning_rate, "learning_rate", 0, 0.1)
        if self.learning_rate == 0:
            raise ValueError("learning_rate: must be a number above 0, got 0")
        if self.target not in TARGETS:
            raise ValueError(f"target: must be one of {', '.join(TARGETS)}, got {self.target!r}")
        if self.direction not in task.DIRECTIONS:
            raise ValueError(f"direction: must be one of {', '.join(task.DIRECTIONS)}, got {self.direction!r}")

    def lora_config(self):
        from peft import LoraConfig

        return LoraConfig(r=self.r, lora_alpha=self.alpha, lora_dropout=self.dropout,
                          target_modules=TARGETS[self.target], task_type="CAUSAL_LM", bias="none")
