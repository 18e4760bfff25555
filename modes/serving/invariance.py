"""Checked at start, not assumed: does a row decode the same alone and in a batch on this CPU?

The served bf16 path (modes/serving/packed.py, modes/serving/rowwise.py) is built so that a row's logits
are bit for bit the same alone and in any batch. That held on an AMD EPYC; on an Intel Xeon with AMX,
oneDNN picks other bf16 kernels for some shapes and one held-out row in sixteen decoded differently
batched (measured: 7/8 KO→EN sentences agreed). So the loader asks this check before it serves bf16:
a few held-out rows in both directions go through the engine in one batch and one at a time, and every
step's logits are compared bit for bit (stricter than tokens: a difference that has not flipped a
token yet still fails).
"""

from __future__ import annotations

from collections import defaultdict

import torch

from modes.data import translation as task
from modes.serving.engine import Engine


class _Recording(Engine):
    """The engine, keeping every row's logits step by step (by its query)."""

    def __init__(self, max_rows: int):
        super().__init__(max_rows=max_rows)
        self.logits: dict[str, list[torch.Tensor]] = defaultdict(list)

    def _emit(self, lane, rows, logits):
        for row, x in zip(rows, logits):
            self.logits[row.req.query].append(x.detach().float().cpu().clone())
        return super()._emit(lane, rows, logits)


def compare(alone: dict[str, list[torch.Tensor]], batched: dict[str, list[torch.Tensor]]) -> list[str]:
    """The queries whose logits differ at some step both runs reached (bit for bit)."""
    return [q for q in alone if any(not torch.equal(a, b) for a, b in zip(alone[q], batched.get(q, [])))]


def check(model, tok, rows: int = 8, steps: int = 2) -> tuple[bool, str]:
    """(same?, what was compared): `rows` held-out sentences per direction at k=4, `steps` greedy tokens each,
    decoded in one batch and one at a time through the engine. Eight rows, because kernels change with the
    batch: on an AMX Xeon 3-row batches matched bit for bit and 8-row ones differed from the first step."""
    differ, n = [], 0
    eng = _Recording(rows)  # one scheduler thread for the whole check
    for direction in task.DIRECTIONS:
        queries, prefix = [], None
        for p in task.pairs_for(direction, "test")[:rows]:
            prefix, query, _ = task.fewshot_prompt(direction, p.source, 4)  # seeded: one prefix for every query
            queries.append(query)
        runs = []
        for max_rows in (len(queries), 1):
            eng.max_rows, eng.logits = max_rows, defaultdict(list)
            eng.generate(model, tok, prefix, queries, lane="invariance", session="invariance", max_new=steps)
            eng.prefixes.drop("invariance")  # a fresh prefill each time: the prefix is part of what is compared
            runs.append(eng.logits)
        differ += compare(runs[1], runs[0])
        n += len(queries)
    what = f"{n} held-out rows, {steps} steps, logits compared bit for bit"
    return (not differ), (f"{len(differ)} of {n} rows differed batched ({what})" if differ else what)
