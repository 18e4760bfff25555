"""The dialogue-summary task: short everyday dialogues, each with a one-sentence summary, in English
and in Korean (assets/data/dialogues.jsonl, written for this project, Apache-2.0 like the code).

Each row holds one dialogue in both languages with a fixed train/test split stored in the file, so a
summary fine-tune is always scored on the same held-out dialogues, before and after.
"""

from __future__ import annotations

import functools
import json
from pathlib import Path

from modes.data.translation import Pair

DIALOGUES_FILE = Path(__file__).resolve().parents[2] / "assets" / "data" / "dialogues.jsonl"
LANGS = ("en", "ko")
# The prompt's labels in the dialogue's own language: the model reads "Dialogue: ... Summary:" or "대화: ... 요약:".
LABELS = {"en": ("Dialogue", "Summary"), "ko": ("대화", "요약")}
MAX_DIALOGUE_CHARS = 2_000  # an upload's dialogue longer than this is refused (the built-in ones are under 200)
MAX_NEW_TOKENS = 64  # a one-sentence summary: the longest built-in Korean one is about 45 tokens


@functools.lru_cache(maxsize=1)
def _rows() -> tuple[dict, ...]:
    lines = DIALOGUES_FILE.read_text(encoding="utf-8").splitlines()
    return tuple(json.loads(line) for line in lines if line.strip())


def load_dialogues(split: str | None = None) -> list[dict]:
    """Rows {id, split, en: {dialogue, summary}, ko: {dialogue, summary}}, optionally one split."""
    return [json.loads(json.dumps(r)) for r in _rows() if split is None or r["split"] == split]


def pairs_for(lang: str, split: str) -> list[Pair]:
    """(dialogue, summary) pairs in one language, from one split."""
    if lang not in LANGS:
        raise ValueError(f"summary_lang: must be one of {', '.join(LANGS)}, got {lang!r}")
    return [Pair(r[lang]["dialogue"], r[lang]["summary"]) for r in load_dialogues(split)]


def render_prompt(lang: str, dialogue: str) -> str:
    """The query: the dialogue under its label, then the summary's label (the summary follows after a space)."""
    head, tail = LABELS[lang]
    return f"{head}:\n{dialogue.strip()}\n{tail}:"


def render_target(summary: str) -> str:
    """The continuation the model learns: ' <summary>' and a stop newline."""
    return " " + summary.strip() + "\n"
