"""What a fine-tune cost elsewhere: the same adapter measured off its task, on and off.

A fine-tuned model is specialised: better at its task, perhaps worse at others. After a fine-tune
this measures, with the adapter on and with it disabled (the base model, same code path):
general text as bits per character (the pre-training objective) on a Shakespeare validation
snippet and two neutral paragraphs, chrF on the held-out pairs translated the *other* way
(zero-shot, and the base at k=4 for scale), and a few plain continuations. The probes are fixed in
assets/data/off_task.json. Pure compute: no Gradio.
"""

from __future__ import annotations

import functools
import json
import time
from contextlib import nullcontext
from pathlib import Path

from modes import data as task
from modes.metrics import chrf, pretrained_bpc

PROBES = Path(__file__).resolve().parent.parent / "assets" / "data" / "off_task.json"
SHAKESPEARE_CHARS = 1500  # the start of the pre-training corpus's validation split
CONTINUATION_TOKENS = 16


@functools.lru_cache(maxsize=1)
def probes() -> dict:
    return json.loads(PROBES.read_text(encoding="utf-8"))


def general_texts(shakespeare_val: str | None) -> dict[str, str]:
    texts = dict(probes()["texts"])
    if shakespeare_val:
        texts = {"shakespeare": shakespeare_val[:SHAKESPEARE_CHARS], **texts}
    return texts


def reverse_of(direction: str) -> str:
    return "ko-en" if direction == "en-ko" else "en-ko"


def _adapter(model, on: bool):
    """The PeftModel with its adapter on, or disabled (then it is exactly the base model)."""
    return nullcontext() if on else model.disable_adapter()


def measure_side(model, tok, direction: str, texts: dict[str, str], template: str, on: bool, generate) -> dict:
    """bpc per text, reverse-direction chrF at k=0, and continuations, for one side (adapter on or off)."""
    rev = reverse_of(direction)
    test = task.pairs_for(rev, "test")
    queries = [task.fewshot_prompt(rev, p.source, 0, template=template)[1] for p in test]
    with _adapter(model, on):
        bpc = {name: round(pretrained_bpc(model, tok, text), 4) for name, text in texts.items()}
        rev_chrf = chrf(generate(model, tok, "", queries), [p.target for p in test])
        conts = generate(model, tok, "", probes()["prompts"], max_new_tokens=CONTINUATION_TOKENS)
    return {"bpc": bpc, "reverse_chrf": rev_chrf, "continuations": conts}


def base_k4_reverse(model, tok, direction: str, generate) -> float:
    """The base model's reverse-direction chrF with 4 examples: what in-context learning gets there."""
    rev = reverse_of(direction)
    test = task.pairs_for(rev, "test")
    prompts = [task.fewshot_prompt(rev, p.source, 4) for p in test]
    with model.disable_adapter():
        hyps = generate(model, tok, prompts[0][0], [q for _, q, _ in prompts])
    return chrf(hyps, [p.target for p in test])


def off_task(peft_model, tok, direction: str, template: str = task.DEFAULT_TEMPLATE, shakespeare_val: str | None = None,
             base: dict | None = None, generate=None) -> tuple[dict, dict]:
    """(off_task summary, the base side for reuse). `base`: the adapter-off side already measured
    on this base model with these probes (it does not depend on the learner), or None."""
    from modes.engine import bulk_generator

    generate = generate or bulk_generator(None)
    t0 = time.perf_counter()
    texts = general_texts(shakespeare_val)
    if base is None:
        base = measure_side(peft_model, tok, direction, texts, template, False, generate)
        base["reverse_chrf_k4"] = base_k4_reverse(peft_model, tok, direction, generate)
    after = measure_side(peft_model, tok, direction, texts, template, True, generate)
    mean = lambda d: round(sum(d.values()) / len(d), 4)  # noqa: E731
    out = {
        "reverse_direction": reverse_of(direction),
        "general_bpc_before": mean(base["bpc"]), "general_bpc_after": mean(after["bpc"]),
        "general_bpc_texts": {name: {"before": base["bpc"][name], "after": after["bpc"][name]} for name in texts},
        "reverse_chrf_before": base["reverse_chrf"], "reverse_chrf_after": after["reverse_chrf"],
        "reverse_chrf_base_k4": base["reverse_chrf_k4"],
        "continuations": [{"prompt": p, "base": b, "adapter": a}
                          for p, b, a in zip(probes()["prompts"], base["continuations"], after["continuations"])],
    }
    out["off_task_seconds"] = round(time.perf_counter() - t0, 2)
    return out, base


def verdict(chrf_before: float | None, chrf_after: float | None, direction: str, off: dict) -> dict:
    """The numbers a one-line reading needs, and whether anything measurable got worse.

    Thresholds: 0.05 bits/char (above the run-to-run noise of a fixed text) and 1 chrF point.
    """
    bpc_delta = round(off["general_bpc_after"] - off["general_bpc_before"], 3)
    rev_delta = round(off["reverse_chrf_after"] - off["reverse_chrf_before"], 2)
    gain = None if chrf_before is None or chrf_after is None else round(chrf_after - chrf_before, 2)
    return {"gain": gain, "bpc_delta": bpc_delta, "reverse_delta": rev_delta,
            "hurt": bpc_delta > 0.05 or rev_delta < -1.0}
