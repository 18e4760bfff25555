"""A fine-tune's before and after: chrF on the held-out pairs (the base model's and the tuned one's, with a few
examples side by side) and the off-task price, all decoded through the engine on the models /translate serves.
Pure compute: no Gradio. The training itself is modes/finetune/core.py.
"""

from __future__ import annotations

from modes.data.tasks import Prompting
from modes.data.translation import Pair
from modes.finetune.config import FinetuneConfig
from modes.metrics import chrf


def price(model, tok, cfg: FinetuneConfig, template: str, shakespeare_val, off_task_base, generate, tuned, base,
          train_dtype: str) -> tuple[dict, dict]:
    """(the off-task price, its adapter-off side): bits/char read on the training copy with the adapter on and
    disabled, answers from `tuned` and the served base, as `score` gets them (PEFT generation on a bf16 base
    was 11x slower here)."""
    from modes.finetune.offtask import off_task as measure_off_task

    cost, cost_base = measure_off_task(model, tok, cfg.direction, template, shakespeare_val, off_task_base, generate,
                                       tuned=tuned, base_model=base, ft_task=cfg.task)
    cost["dtype"] = train_dtype
    return cost, cost_base


def score(tuned, base, tok, pr: Prompting, test_pairs: list[Pair], chrf_before: float | None,
          n_examples: int, generate, base_outputs: list[str] | None = None) -> tuple[float, float, list[dict], int, list[str], list[str]]:
    """chrF before and after on the whole held-out split (the same greedy decoding for both), a few
    examples, how many tuned answers came back empty, the base answers decoded, and the tuned answers. Scored as the in-context tab serves it:
    through the engine, on the served base model and on `tuned`, a merged copy in the served dtype (the
    model /translate uses for this adapter). A known `chrf_before` skips re-scoring the base, and known
    `base_outputs` (all of them) skip decoding the shown ones.
    Translation's query is the in-context tab's k=0 prompt (one template for both tabs)."""
    refs = [p.target for p in test_pairs]
    score_after, after = heldout_chrf(tuned, tok, pr, test_pairs, generate)
    shown = list(range(min(n_examples, len(test_pairs))))
    if chrf_before is None:
        chrf_before, base_outs = heldout_chrf(base, tok, pr, test_pairs, generate)
    elif base_outputs is not None and len(base_outputs) == len(test_pairs):
        base_outs = list(base_outputs)
    else:
        base_outs = generate(base, tok, "", [pr.prompt(test_pairs[i].source) for i in shown], max_new_tokens=pr.max_new_tokens)
    examples = [{"source": test_pairs[i].source, "base": base_outs[i], "finetuned": after[i], "reference": refs[i]} for i in shown]
    return chrf_before, score_after, examples, sum(1 for h in after if not h), base_outs, after


def heldout_chrf(model, tok, pr: Prompting, test_pairs: list[Pair], generate) -> tuple[float, list[str]]:
    """(chrF, the answers) of `model` on the held-out pairs: greedy, through `generate`, at the task's
    k=0 prompt. The base model's figure is the same for every learner (modes/finetune/base_side.py)."""
    prompts = [pr.prompt(p.source) for p in test_pairs]
    outs = generate(model, tok, "", prompts, max_new_tokens=pr.max_new_tokens)
    return chrf(outs, [p.target for p in test_pairs]), outs


K_SHOTS = 4  # the in-context tab's default k: what a fine-tune has to beat to be worth its training


def k_shot_side(base, tok, pr: Prompting, train_pairs: list[Pair], test_pairs: list[Pair], generate) -> dict:
    """The base model's answers to the held-out pairs with K_SHOTS examples in the prompt, picked as the in-context tab
    picks them by default (random, seed 0) from the run's own training pairs (for the built-in set, the tab's pool):
    {"k", "chrf", "outputs"}. Like the base side, the same for every learner of the built-in set."""
    from modes.data import translation as tr

    examples = tr.select_examples(train_pairs, min(K_SHOTS, len(train_pairs)), "random", seed=0)
    prefix, _ = tr.split_prompt(pr.template, pr.key, examples, test_pairs[0].source)
    outs = generate(base, tok, prefix, [pr.prompt(p.source) for p in test_pairs], max_new_tokens=pr.max_new_tokens)
    return {"k": len(examples), "chrf": chrf(outs, [p.target for p in test_pairs]), "outputs": outs}


def versus_k_shots(base, tok, pr: Prompting, train_pairs: list[Pair], test_pairs: list[Pair], after: list[str],
                   k_side: dict | None, generate) -> tuple[dict | None, dict | None]:
    """(the lead over K_SHOTS examples in the prompt, the k-shot side when this call decoded it): translation only.
    `k_side`, when it holds an answer per held-out pair, is reused (the base side keeps it for every learner)."""
    if pr.task != "translation" or not test_pairs:
        return None, None
    known = k_side is not None and len(k_side.get("outputs") or ()) == len(test_pairs)
    if not known:
        k_side = k_shot_side(base, tok, pr, train_pairs, test_pairs, generate)
    return lead_over(after, k_side, test_pairs), None if known else k_side


def lead_over(after: list[str], k_side: dict, test_pairs: list[Pair]) -> dict:
    """The adapter's chrF lead over the k-shot base on the same sentences, with its bootstrap interval."""
    from modes.metrics import chrf_lead

    return {"k": k_side["k"], "chrf_k": k_side["chrf"], **chrf_lead(after, k_side["outputs"], [p.target for p in test_pairs])}
