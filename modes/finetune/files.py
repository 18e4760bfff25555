"""What leaves and enters the fine-tune tab as a file: a standalone training script with the learner's settings
(transformers + PEFT, to run anywhere), and an adapter zip a learner uploads (checked before it is used)."""

from __future__ import annotations

import tempfile
from pathlib import Path

import gradio as gr

from modes import ui
from modes.data import translation as tr
from modes.data.uploads import InputError
from modes.finetune.config import FinetuneConfig


def export(steps, r, learning_rate, seed, alpha, dropout, target, batch_size, max_length, direction, task="translation",
           summary_lang="en", request: gr.Request = None):
    """A standalone training script with these settings (transformers + PEFT), to run anywhere."""
    from modes.finetune.export import render_script

    lang = ui.lang_of(request)
    cfg = ui.settings(FinetuneConfig, lang, steps=steps, r=r, alpha=alpha, dropout=dropout, target=target, learning_rate=learning_rate,
                      batch_size=batch_size, max_length=max_length, seed=seed, direction=direction, task=task,
                      summary_lang=summary_lang)
    path = Path(tempfile.mkdtemp(prefix="hml-script-")) / "train_lora.py"
    path.write_text(render_script(cfg, tr.DEFAULT_TEMPLATE), encoding="utf-8")
    return str(path)


def load_adapter(ctx, path, direction, request: gr.Request = None):
    """Use an uploaded LoRA adapter zip (checked before it is used) as this session's adapter."""
    lang = ui.lang_of(request)
    if not path:
        return gr.skip(), gr.skip()
    base = ctx.loader.get()[0]  # the libraries first: adapters import safetensors and peft
    from modes.model.adapters import adapter_from_upload

    try:
        a = adapter_from_upload(path, base, direction, tr.DEFAULT_TEMPLATE)
    except InputError as exc:
        raise ui.error(exc.key, lang, **exc.fmt) from None
    return a, ui.msg("ft_adapter_loaded", lang, n=f"{a.trainable_params:,}")
