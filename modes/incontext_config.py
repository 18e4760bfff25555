"""In-context learning settings: one translation's and one sweep's, with their caps. No torch here,
so the UI can build its widgets (whose defaults and bounds come from these) before the model loads."""

from __future__ import annotations

from dataclasses import dataclass

from modes.data import DEFAULT_TEMPLATE
from modes.fields import bounded

MAX_K = 16  # examples in one prompt: more no longer helps this model and the prompt grows past 1k tokens
MAX_TEXT_CHARS = 500  # one sentence to translate; longer is not a sentence
MAX_NEW_TOKENS = 128  # a sentence's translation fits in far fewer


@dataclass
class TranslateConfig:
    """Settings of one few-shot translation. The widget and API defaults come from here."""

    direction: str = "en-ko"  # which way to translate
    k: int = bounded(4, 0, MAX_K)  # examples shown in the prompt (0 = zero-shot)
    selection: str = "random"  # how the k examples are picked from the pool
    seed: int = 0  # fixes which examples are picked and the sampling
    template: str = DEFAULT_TEMPLATE  # how one example is written; {source}/{target} are filled in
    temperature: float = bounded(0.0, 0.0, 2.0, 0.05)  # 0 = greedy: the same answer every time
    top_p: float = bounded(1.0, 0.05, 1.0, 0.05)  # nucleus sampling; only matters when temperature > 0
    max_new_tokens: int = bounded(64, 1, MAX_NEW_TOKENS)  # the answer stops earlier at the end of its line


@dataclass
class SweepConfig:
    """Settings of one "how many examples?" sweep."""

    ks: str = "0,1,2,4,8"  # the k values measured, comma separated
    seed: int = 0  # fixes the examples every query sees
