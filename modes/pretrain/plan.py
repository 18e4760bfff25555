"""What a pre-training costs before it runs: its seconds on 2 CPU cores, and, on ZeroGPU, the kind its GPU seconds
are measured for (per size and objective) and the line that tells the learner how many it will ask for
(modes/serving/gpu_budget.py)."""

from __future__ import annotations

import gradio as gr

from modes import ui
from modes.pretrain.config import PretrainConfig
from modes.runs import follow as records


def estimate(steps: int) -> float:
    """A run's seconds on 2 CPU cores: about 50 ms a step at `baby`, plus evals and samples."""
    return steps * 0.05 + 10


def gpu_kind(size: str, objective: str) -> str:
    return f"pretrain:{size}:{objective}"


def gpu_line(ctx, size: str, steps, objective: str, request: gr.Request = None) -> str:
    """In-call mode (ZeroGPU): the GPU seconds a run with these settings will ask for, shown before it starts."""
    try:
        steps = int(steps)
    except (TypeError, ValueError):
        steps = PretrainConfig.steps
    return records.gpu_line(ctx, gpu_kind(size, objective), steps, estimate(steps), ui.lang_of(request))
