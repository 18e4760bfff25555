"""What a fine-tune learns: a task turns each labelled (source, target) pair into a prompt and the
continuation the model should write after it. Translation (either direction) and dialogue summary
(either language) share the training loop, the scoring (chrF before and after) and the adapter.
"""

from __future__ import annotations

from dataclasses import dataclass

from modes.data import dialogues
from modes.data import translation as tr

TASKS = ("translation", "dialogue-summary")


@dataclass(frozen=True)
class Prompting:
    """One task's prompt format. `key`: the translation direction ('en-ko') or the summary language ('en')."""

    task: str
    key: str
    template: str = tr.DEFAULT_TEMPLATE  # translation only: the one template the in-context tab shares

    def prompt(self, source: str) -> str:
        if self.task == "translation":
            return tr.render_prompt(self.template, self.key, source)
        return dialogues.render_prompt(self.key, source)

    def target(self, source: str, target: str) -> str:
        if self.task == "translation":
            return tr.render_target(self.template, self.key, source, target)
        return dialogues.render_target(target)

    @property
    def max_new_tokens(self) -> int:
        return 40 if self.task == "translation" else dialogues.MAX_NEW_TOKENS

    @property
    def label(self) -> str:
        """How the UI and the summaries name it: 'en-ko', or 'summary (ko)'."""
        return self.key if self.task == "translation" else f"summary ({self.key})"


def prompting(task: str, direction: str, summary_lang: str, template: str = tr.DEFAULT_TEMPLATE) -> Prompting:
    """The Prompting of a fine-tune config's task, direction and summary language."""
    if task == "translation":
        return Prompting("translation", direction, template)
    if task == "dialogue-summary":
        return Prompting("dialogue-summary", summary_lang)
    raise ValueError(f"task: must be one of {', '.join(TASKS)}, got {task!r}")


def builtin_pairs(task: str, direction: str, summary_lang: str, split: str) -> list[tr.Pair]:
    """The built-in labelled pairs of a task, one split."""
    if task == "translation":
        return tr.pairs_for(direction, split)
    return dialogues.pairs_for(summary_lang, split)
