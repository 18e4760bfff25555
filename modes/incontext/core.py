"""In-context learning compute: few-shot generation, with no weight change.

All generation goes through the one engine (modes/serving/engine.py). Here: its plain-function forms for
scripts, benchmarks and tests that hold a model but no app (a greedy batch after one shared prefix,
one streamed answer), and the "how many examples?" sweep's points on the app's shared engine, each
computed once for every learner.
"""

from __future__ import annotations

from typing import Iterator

from modes.data import translation as task
from modes.runs.keys import code_version, runtime
from modes.serving.engine import Engine, StreamEvent, bulk_generator


def generate_batch(model, tok, prefix: str, queries: list[str], max_new_tokens: int = 40, engine: Engine | None = None) -> list[str]:
    """Greedy continuations of prefix+query for many queries (batched, the prefix's KV computed once)."""
    return bulk_generator(engine, "batch")(model, tok, prefix, queries, max_new_tokens)


def model_lane(model) -> tuple:
    """The engine lane a bare model runs in (its prefix KV cache entries are keyed by it)."""
    return ("model", id(model))


def stream_generate(model, tok, prefix: str, query: str, max_new_tokens: int = 64, temperature: float = 0.0,
                    top_p: float = 1.0, seed: int = 0, engine: Engine | None = None) -> Iterator[StreamEvent]:
    """Stream one translation token by token; stop at the end of the line. Pass an `engine` whose
    prefix cache already holds `prefix` (engine.prefixes.get(model_lane(model), ...)) for a warm start."""
    eng = engine or Engine()
    yield from eng.stream(model=model, tok=tok, lane=model_lane(model), prefix=prefix, query=query, max_new=max_new_tokens,
                          temperature=temperature, top_p=top_p, seed=seed, session="stream")


def sweep_point_key(ctx, direction: str, k: int, n: int, seed: int) -> dict:
    """Everything one base-model sweep point depends on: the same key gives the same chrF."""
    return {"kind": "sweep_point", "model": ctx.proof().reference, "dtype": ctx.loader.dtype_name, "direction": direction,
            "k": k, "n": n, "seed": seed, "template": task.DEFAULT_TEMPLATE, "code": code_version("serving", "model", "data", "metrics", "incontext/core"),
            **runtime()}


def sweep_points(ctx, direction: str, k_list: list[int], test: list, seed: int, session: str, on_point) -> tuple[dict, list]:
    """chrF of the base model at each k ({k: chrF}) and which points were served from shared results."""
    from modes.metrics import chrf

    model, tok = ctx.loader.get()
    refs = [p.target for p in test]
    scores, reused = {}, []
    for kk in k_list:
        on_point(kk)

        def compute(kk=kk):
            # Random examples do not depend on the query: one prefix, one KV cache, for every query.
            prompts = [task.fewshot_prompt(direction, p.source, kk, seed=seed) for p in test]
            hyps = ctx.base_answers(lambda m, t, prefix, queries, n: ctx.engine.generate(m, t, prefix, queries, lane="base", session=session,
                                                                                            max_new=n))(model, tok, prompts[0][0], [q for _, q, _ in prompts])
            return {"chrf": chrf(hyps, refs)}

        # The base model's points are the same for every learner: computed once, then served to all.
        if ctx.reuse:
            point, was_reused = ctx.results.once(sweep_point_key(ctx, direction, kk, len(test), seed), compute)
        else:
            point, was_reused = compute(), False
        if was_reused:
            reused.append({"k": kk, "computed_at": point["computed_at"], "seconds": point["seconds"]})
        scores[kk] = point["chrf"]
    return scores, reused


def warm_sweep(ctx) -> Iterator[None]:
    """Idle-time work (modes/runs/warmup.py): the default sweep's base-model points in both directions, one
    point (one decode of the held-out pairs) a piece, computed as a learner's sweep computes them."""
    from modes.incontext.config import SweepConfig

    cfg = SweepConfig()
    for direction in task.DIRECTIONS:
        test = task.pairs_for(direction, "test")
        for kk in [int(k) for k in cfg.ks.split(",")]:
            if ctx.results.get(sweep_point_key(ctx, direction, kk, len(test), cfg.seed)) is None:
                sweep_points(ctx, direction, [kk], test, cfg.seed, "warm:incontext", lambda _: None)
                yield


def sweep_lora(ctx, adapter, direction: str, test: list, session: str) -> tuple[float, dict | None]:
    """chrF through the adapter at k=0, and where it was served from shared results (else None)."""
    from modes.metrics import chrf
    from modes.model.adapters import adapter_key

    def compute():
        lane, tuned = ctx.adapter_model(adapter)
        queries = [task.fewshot_prompt(direction, p.source, 0, template=adapter.template)[1] for p in test]
        return {"chrf": chrf(ctx.engine.generate(tuned, ctx.loader.get()[1], "", queries, lane=lane, session=session),
                             [p.target for p in test])}

    # Learners holding the same adapter (a replayed fine-tune gives the same bytes) share this point too.
    key = {**sweep_point_key(ctx, direction, -1, len(test), 0), "kind": "sweep_lora", "adapter": adapter_key(adapter),
           "template": adapter.template}
    point, was_reused = ctx.results.once(key, compute) if ctx.reuse else (compute(), False)
    return point["chrf"], ({"k": "LoRA", "computed_at": point["computed_at"], "seconds": point["seconds"]} if was_reused else None)
