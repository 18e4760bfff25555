"""In-context learning settings: one translation's and one sweep's, with their caps. No torch here,
so the UI can build its widgets (whose defaults and bounds come from these) before the model loads."""

from __future__ import annotations

from dataclasses import dataclass

from modes.data.translation import DEFAULT_TEMPLATE, DIRECTIONS, SELECTIONS
from modes.fields import bounded, check, choice, seed_field

MAX_K = 16  # examples in one prompt: more no longer helps this model and the prompt grows past 1k tokens
MAX_TEXT_CHARS = 500  # one sentence to translate; longer is not a sentence
MAX_NEW_TOKENS = 128  # a sentence's translation fits in far fewer


@dataclass
class TranslateConfig:
    """Settings of one few-shot translation. The widgets, the API defaults and the server's checks
    (every call, UI or raw HTTP: `check` refuses NaN, +-inf, out-of-range and wrong types by name) come from here."""

    direction: str = choice("en-ko", DIRECTIONS, "which way to translate")
    k: int = bounded(4, 0, MAX_K, why="examples shown in the prompt (0 = zero-shot)")
    selection: str = choice("random", SELECTIONS, "how the k examples are picked from the pool")
    seed: int = seed_field(0, "fixes which examples are picked and the sampling")
    template: str = DEFAULT_TEMPLATE  # how one example is written; {source}/{target} are filled in (checked by the task)
    temperature: float = bounded(0.0, 0.0, 2.0, 0.05, "0 = greedy: the same answer every time")
    top_p: float = bounded(1.0, 0.05, 1.0, 0.05, "nucleus sampling; only matters when temperature > 0")
    max_new_tokens: int = bounded(64, 1, MAX_NEW_TOKENS, why="the answer stops earlier at the end of its line")

    def __post_init__(self):
        check(self)


@dataclass
class SweepConfig:
    """Settings of one "how many examples?" sweep (the k list is parsed by the tab: "0,1,2,4,8")."""

    direction: str = choice("en-ko", DIRECTIONS, "which way to translate")
    ks: str = "0,1,2,4,8"  # the k values measured, comma separated
    seed: int = seed_field(0, "fixes the examples every query sees")

    def __post_init__(self):
        check(self)
