"""The base model's side of a fine-tune's figures: its held-out chrF and the adapter-off half of the
off-task price. It depends on the base model and the built-in data only, never on the learner, so it is
computed once (by the first run, or before any run in the app's idle time: `warm`) and kept in the
shared results, on disk, where every later run of any learner finds it.

On 2 cores of an Intel Xeon it is about 40 s of a first run's 136-150 s (bench/button.py): four
decodes of the 69 held-out pairs (this direction at k=0 and at k=4, the reverse one at k=0 and at k=4) and
the bits/char of the general texts.
"""

from __future__ import annotations

from typing import Iterator

from modes.data import corpus, tasks
from modes.data import translation as tr
from modes.finetune.config import FinetuneConfig
from modes.runs.keys import text_hash


def shakespeare_val() -> str | None:
    """The pre-training corpus's validation text (general text for the off-task measurement)."""
    try:
        return corpus.shakespeare().val
    except Exception:  # the measurement then uses the two neutral paragraphs only
        return None


def base_key(ctx, cfg: FinetuneConfig, test: list, train: list) -> dict:
    """The shared results' key of the base side, whose value is {"chrf", "off_task", "outputs": its held-out answers,
    "k_side": its answers with four examples from `train` in the prompt (translation)}; "v" 2 is the value with
    k_side. What it depends on: the direction (or task), the template, the held-out and training pairs themselves,
    the model, the served dtype (the decodes) and the training dtype (the adapter-off bits/char are read on the
    training copy)."""
    key = {"kind": "ft_base", "v": 2, "direction": cfg.direction, "template": tr.DEFAULT_TEMPLATE, "n": len(test),
           "data": text_hash([(p.source, p.target) for p in test], [(p.source, p.target) for p in train]),
           "model": ctx.proof().reference, "dtype": ctx.loader.dtype_name, "train_dtype": ctx.loader.train_dtype}
    if cfg.task != "translation":  # another task's base figures (and its off-task side) are its own
        key.update(task=cfg.task, summary_lang=cfg.summary_lang)
    return key


def warm(ctx) -> Iterator[None]:
    """Idle-time work (modes/runs/warmup.py): the base side of the default button's run in each direction,
    in pieces of one decode each, put in the shared results unless they are there already. The figures are
    the ones a first run computes (the same functions, on the same models and data)."""
    from peft import get_peft_model

    from modes.data.tasks import prompting
    from modes.finetune.offtask import base_side, general_texts
    from modes.finetune.scoring import heldout_chrf, k_shot_side
    from modes.serving.engine import bulk_generator

    base, tok = ctx.loader.get()
    for direction in tr.DIRECTIONS:
        cfg = FinetuneConfig(direction=direction)
        test = tasks.builtin_pairs(cfg.task, direction, cfg.summary_lang, "test")
        train = tasks.builtin_pairs(cfg.task, direction, cfg.summary_lang, "train")
        key = base_key(ctx, cfg, test, train)
        if ctx.results.get(key):
            continue
        generate = ctx.base_answers(bulk_generator(ctx.engine, f"warm:finetune:{direction}"))
        chrf_before, outputs = heldout_chrf(base, tok, prompting(cfg.task, direction, cfg.summary_lang), test, generate)
        yield
        # The adapter-off bits/char are read as a run reads them: a PEFT model on the training copy, adapter disabled.
        model = get_peft_model(ctx.loader.training_copy(), cfg.lora_config())
        off = yield from base_side(model, tok, direction, general_texts(shakespeare_val()), tr.DEFAULT_TEMPLATE, generate, base)
        del model
        yield
        pr = prompting(cfg.task, direction, cfg.summary_lang)
        k_side = k_shot_side(base, tok, pr, train, test, generate)
        if not ctx.results.get(key):  # a learner's run may have finished it meanwhile: the same figures
            ctx.results.put(key, {"chrf": chrf_before, "off_task": off, "outputs": outputs, "k_side": k_side})
        yield
