"""What a fine-tune costs before it runs: its seconds on 2 CPU cores, and, on ZeroGPU, the kind its GPU seconds are
measured for and the line that tells the learner how many it will ask for (modes/serving/gpu_budget.py)."""

from __future__ import annotations

import gradio as gr

from modes import ui
from modes.finetune.config import FinetuneConfig
from modes.runs import follow as records

D = FinetuneConfig()


def estimate(task: str, steps: int) -> float:
    """A run's seconds on 2 CPU cores: about 0.9 s a step plus scoring; dialogues are ~3x longer than sentence
    pairs, and their scoring writes whole sentences."""
    return steps * 0.9 + 40 if task == "translation" else steps * 2.5 + 90


def gpu_kind(task: str) -> str:
    return f"finetune:{task}"


def gpu_line(ctx, task: str, steps, request: gr.Request = None) -> str:
    """In-call mode (ZeroGPU): the GPU seconds a run with these settings will ask for, shown before it starts."""
    try:
        steps = int(steps)
    except (TypeError, ValueError):
        steps = D.steps
    return records.gpu_line(ctx, gpu_kind(task or D.task), steps, estimate(task or D.task, steps), ui.lang_of(request))
