"""Generation in in-call mode (ZeroGPU): the engine's interface, each request in a GPU call of its own.

`InCallEngine` stands where the shared engine stands (`ctx.engine`), so the tabs call it the same way;
each `stream` or `generate` becomes one GPU call (modes/serving/heavy.py) in which a real engine, the
worker's own, batches that request's rows only. A model cannot cross into the worker, so what crosses is
which model: the base model, or an adapter's bytes (`AdapterRef`), built again in the worker.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from modes.serving.heavy import gpu_seconds
from modes.serving.rows import EngineError

DECODE_STEP_S = 0.1  # a CPU decode step for up to 16 rows, the estimate's unit (gpu_seconds divides it)


@dataclass
class AdapterRef:
    """An adapter's model as the parent holds it in in-call mode: its bytes; the worker builds the model."""

    adapter: object  # modes.model.adapters.Adapter


class _NoPrefixes:
    """The prefix cache's interface: nothing is warmed outside a GPU call, and nothing is kept between calls."""

    def get(self, *args, **kwargs):
        return None

    def drop(self, *args, **kwargs):
        return None


class InCallEngine:
    """Engine.stream and Engine.generate, each run in one GPU call; no batching across requests."""

    def __init__(self, heavy):
        self.heavy = heavy
        self.prefixes = _NoPrefixes()
        self.stats = {"steps": 0, "rows_decoded": 0, "max_batch": 0, "gpu_calls": heavy.calls}

    def active_rows(self) -> int:
        return 0

    def stream(self, *, model, tok, lane, prefix: str, query: str, max_new: int = 40, temperature: float = 0.0,
               top_p: float = 1.0, seed: int = 0, session: str = "api", **_):
        spec = _spec(model, lane)
        secs = gpu_seconds(max_new * DECODE_STEP_S + 5)
        yield from self.heavy.stream(_stream_in_worker, spec, prefix, query,
                                     {"max_new": max_new, "temperature": temperature, "top_p": top_p, "seed": seed,
                                      "session": session}, seconds=secs)

    def generate(self, model, tok, prefix: str, queries: list[str], *, lane, session: str, max_new: int = 40,
                 reuse_prefix: bool = True) -> list[str]:
        spec = _spec(model, lane)
        secs = gpu_seconds(math.ceil(len(queries) / 16) * max_new * DECODE_STEP_S + 5)
        return self.heavy.call(_generate_in_worker, spec, prefix, list(queries), max_new, session, reuse_prefix, seconds=secs)


def _spec(model, lane):
    """Which model, as something that pickles: "base", or the adapter."""
    if isinstance(model, AdapterRef):
        return model.adapter
    if lane == "base":
        return "base"
    raise EngineError(f"in-call mode serves the base model and adapters from the parent, not lane {lane!r}")


# ---- in the worker ------------------------------------------------------------------------------
def _model_of(ctx, spec):
    if spec == "base":
        return "base", ctx.loader.get()[0]
    return ctx.adapter_model(spec)  # in the worker: built there (and kept while the worker lives)


def _stream_in_worker(ctx, spec, prefix: str, query: str, kw: dict):
    lane, model = _model_of(ctx, spec)
    yield from ctx.engine.stream(model=model, tok=ctx.loader.get()[1], lane=lane, prefix=prefix, query=query, **kw)


def _generate_in_worker(ctx, spec, prefix: str, queries: list[str], max_new: int, session: str, reuse_prefix: bool):
    lane, model = _model_of(ctx, spec)
    return ctx.engine.generate(model, ctx.loader.get()[1], prefix, queries, lane=lane, session=session, max_new=max_new,
                               reuse_prefix=reuse_prefix)
