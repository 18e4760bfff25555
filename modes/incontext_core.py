"""In-context learning compute: few-shot generation, with no weight change.

All generation goes through the one engine (modes/engine.py); these are its plain-function forms
for scripts, benchmarks and tests that hold a model but no app: a greedy batch after one shared
prefix, and one streamed answer. The app's tabs submit to the app's shared engine instead.
"""

from __future__ import annotations

from typing import Iterator

from modes.engine import Engine, StreamEvent, bulk_generator


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
