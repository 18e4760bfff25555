"""The generation engine: every tab's text generation goes through one scheduler that batches rows.

CPU decoding of the 270M model is memory-bound (one step costs about the same for 1 row as for 8),
so requests from different learners are merged into one batched decode, continuous-batching style:
new requests join at step boundaries, finished or cancelled rows leave, each row stops at its own
newline or token limit and keeps its own sampling settings and seed. Rows that share a prompt prefix
reuse its KV (an LRU of prefix caches). Rows run in "lanes", one per model: the base model, one
adapter, or a private model (a fine-tune scoring its training copy).

KV layout of a lane: every row is right-aligned (left-padded) in one DynamicCache of layout length L.
Pads are masked out and each row keeps its own position ids, so a row computes what it would alone;
relative distances inside a row are unchanged, so sliding-window layers see the same tokens too.
In float32 a batched greedy row gives exactly the unbatched output. In bf16 the rounding would depend on
the batch; the served bf16 model therefore runs packed linears and row-wise attention (modes/serving/packed.py,
modes/serving/rowwise.py), so a row decodes the same tokens alone and in any batch.
"""

from __future__ import annotations

import itertools
import threading
import time
from typing import Callable, Hashable, Iterator

import torch

from modes.serving import omp
from modes.serving.kv import PrefixCache, merge_rows, prefill, prefill_rows, select_rows

# The request/row types and token choice; re-exported, callers and tests import them from here.
from modes.serving.rows import (  # noqa: F401
    BULK_ROWS,
    MAX_ROWS,
    PER_SESSION,
    EngineError,
    Request,
    StreamEvent,
    _Lane,
    _Row,
    _tokens,
    stop_ids,
)


class Engine:
    """One scheduler thread owns every decode step; callers submit requests and read their events."""

    def __init__(self, max_rows: int = MAX_ROWS, prefix_cache_size: int = 16):
        self.max_rows = max_rows
        self.prefixes = PrefixCache(prefix_cache_size)
        self._pending: list[Request] = []
        self._lanes: dict[Hashable, _Lane] = {}
        self._cond = threading.Condition()
        self._thread: threading.Thread | None = None
        self.fault: Callable[[str, Hashable, list], None] | None = None  # test hook: raise inside a phase
        self.stats = {"steps": 0, "rows_decoded": 0, "max_batch": 0, "lane_failures": 0, "row_failures": 0, "restarts": 0,
                      "prefills": 0}

    # ---- callers ----
    def submit(self, req: Request) -> Request:
        with self._cond:
            if self._thread is None or not self._thread.is_alive():
                if self._thread is not None:
                    self.stats["restarts"] += 1
                    self._lanes.clear()  # a dead loop's half-made batches are not trusted
                self._thread = threading.Thread(target=self._run, name="generation-engine", daemon=True)
                self._thread.start()
            self._pending.append(req)
            self._cond.notify()
        return req

    def stream(self, **kw) -> Iterator[StreamEvent]:
        """Submit one request and yield its growing text; closing the iterator cancels the row."""
        req = self.submit(Request(**kw))
        try:
            while True:
                kind, val = req.events.get()
                if kind == "error":
                    raise val
                yield StreamEvent(val, req.ttft, done=kind == "done")
                if kind == "done":
                    return
        finally:
            req.cancel()  # a caller that stops listening (a closed tab) frees its row at the next step

    def generate(self, model, tok, prefix: str, queries: list[str], *, lane: Hashable, session: str,
                 max_new: int = 40, reuse_prefix: bool = True) -> list[str]:
        """Greedy answers for many queries after one shared prefix (bulk: the sweep, scoring)."""
        reqs = [self.submit(Request(model, tok, lane, prefix, q, max_new, session=session, cap=BULK_ROWS,
                                    stream=False, reuse_prefix=reuse_prefix)) for q in queries]
        try:
            outs = []
            for r in reqs:
                kind, val = r.events.get()
                while kind == "text":
                    kind, val = r.events.get()
                if kind == "error":
                    raise val
                outs.append(val)
            return outs
        finally:
            for r in reqs:
                r.cancel()

    def active_rows(self) -> int:
        return sum(len(lane.rows) for lane in list(self._lanes.values()))

    # ---- the scheduler ----
    def _run(self) -> None:
        with torch.no_grad():
            while True:
                with self._cond:
                    if not self._pending and not any(lane.rows for lane in self._lanes.values()):
                        omp.release()  # idle: its OpenMP team would slow every other thread's ops (modes/serving/omp.py)
                    while not self._pending and not any(lane.rows for lane in self._lanes.values()):
                        self._cond.wait()
                self._admit()
                for key, lane in list(self._lanes.items()):
                    self._drop(lane, [r for r in lane.rows if r.req.cancelled.is_set()])
                    if lane.rows:
                        self._guarded(key, lane.rows, lambda: self._step(key, lane))
                    if not lane.rows:
                        del self._lanes[key]  # frees the lane's KV (and its model reference)

    def _guarded(self, key, rows_or_reqs, fn) -> None:
        """Run one phase; on failure tell only its own callers and reset only its lane."""
        try:
            fn()
        except Exception as exc:  # reported to the affected callers, the loop keeps going
            self.stats["lane_failures"] += 1
            err = EngineError(f"generation failed ({type(exc).__name__}: {exc}); the engine restarted this batch")
            reqs = [getattr(x, "req", x) for x in rows_or_reqs]
            lane = self._lanes.pop(key, None)
            if lane is not None:
                reqs += [row.req for row in lane.rows]
            for r in {id(r): r for r in reqs}.values():
                r.events.put(("error", err))

    def _admit(self) -> None:
        with self._cond:
            lane_n = {k: len(v.rows) for k, v in self._lanes.items()}
            sess_n: dict = {}
            for k, v in self._lanes.items():
                for row in v.rows:
                    sess_n[(k, row.req.session)] = sess_n.get((k, row.req.session), 0) + 1
            take, rest = [], []
            # A learner's own request goes before bulk rows (a sweep's or a fine-tune's scoring, which
            # submit dozens at once): otherwise a translation waits behind a whole sweep. FIFO within each.
            for r in sorted(self._pending, key=lambda r: r.cap > PER_SESSION):
                if r.cancelled.is_set():
                    continue
                s = (r.lane, r.session)
                if lane_n.get(r.lane, 0) < self.max_rows and sess_n.get(s, 0) < r.cap:
                    take.append(r)
                    lane_n[r.lane] = lane_n.get(r.lane, 0) + 1
                    sess_n[s] = sess_n.get(s, 0) + 1
                else:
                    rest.append(r)
            self._pending = rest
        groups: dict = {}
        for r in take:
            groups.setdefault((r.lane, r.prefix, r.reuse_prefix), []).append(r)
        for (key, prefix, reuse), reqs in groups.items():
            self._guarded(key, reqs, lambda: self._prefill(key, prefix, reuse, reqs))

    def _prefill(self, key, prefix: str, reuse: bool, reqs: list[Request]) -> None:
        """Run each new row's query after its (cached) prefix KV, then merge the rows into the lane.

        A chunk whose forward fails is retried row by row, so a request that cannot be prefilled fails
        alone; nothing has touched the lane yet, and its running rows go on."""
        model, tok = reqs[0].model, reqs[0].tok
        p_ids, p_cache = self.prefixes.get(key, model, tok, prefix) if reuse else prefill(model, tok, prefix)
        P = p_ids.shape[1]
        enc = [tok(r.query, add_special_tokens=False)["input_ids"] or [tok.pad_token_id] for r in reqs]
        window = getattr(model.config, "sliding_window", None) or 10**9
        # Right-padded rows in one forward, unless a sliding window would cut a row's own tokens.
        chunks = [list(range(len(reqs)))] if P + max(map(len, enc)) < window - 1 else [[i] for i in range(len(reqs))]
        while chunks:
            chunk = chunks.pop(0)
            try:
                if self.fault:
                    self.fault("prefill", key, [reqs[i] for i in chunk])
                cache, row_mask, rows, logits = prefill_rows(model, tok, p_cache, P, [reqs[i] for i in chunk],
                                                                    [enc[i] for i in chunk])
            except Exception as exc:  # retried alone, or reported to this row's caller only
                if len(chunk) > 1:
                    chunks[:0] = [[i] for i in chunk]
                else:
                    self._fail_row(reqs[chunk[0]], exc)
                continue
            self.stats["prefills"] += 1
            lane = self._lanes.get(key)
            if lane is None:
                lane = self._lanes[key] = _Lane(model, tok)
            merge_rows(lane, cache, row_mask, rows)
            self._drop(lane, self._emit(lane, rows, logits))

    def _step(self, key, lane: _Lane) -> None:
        """One decode step for every row of the lane."""
        if self.fault:
            self.fault("decode", key, [r.req for r in lane.rows])
        dev = lane.model.device
        B = len(lane.rows)
        ids = torch.tensor([[r.last] for r in lane.rows], device=dev)
        pos = torch.tensor([[r.pos] for r in lane.rows], device=dev)
        mask = torch.cat([lane.mask, torch.ones((B, 1), dtype=torch.long, device=dev)], 1)
        out = lane.model(input_ids=ids, attention_mask=mask, position_ids=pos, cache=lane.cache, use_cache=True)
        lane.mask = mask
        for r in lane.rows:
            r.pos += 1
        self.stats["steps"] += 1
        self.stats["rows_decoded"] += B
        self.stats["max_batch"] = max(self.stats["max_batch"], B)
        self._drop(lane, self._emit(lane, lane.rows, out.logits[:, -1]))

    def _emit(self, lane: _Lane, rows: list[_Row], logits: torch.Tensor) -> list[_Row]:
        """Pick each row's next token, stream its text, and return the rows that are finished.

        A row whose token choice or text decoding fails (a NaN temperature from a raw HTTP call, say)
        fails alone: it is told, it leaves the batch, and every other row goes on with the token it
        would have had anyway (greedy rows take the same argmax, sampling rows their own generators)."""
        stops = lane.stops
        done = []
        for row, t in zip(rows, _tokens(logits, rows)):
            r = row.req
            if r.cancelled.is_set():
                done.append(row)
                continue
            try:
                if isinstance(t, Exception):
                    raise t
                if r.ttft is None:
                    r.ttft = time.perf_counter() - r.t_submit
                if t not in stops:
                    row.ids.append(t)
                    row.last = t
                text = lane.tok.decode(row.ids, skip_special_tokens=True)  # one decode per row per step
            except Exception as exc:  # this row's caller is told; the batch goes on
                self._fail_row(r, exc)
                done.append(row)
                continue
            if t in stops or "\n" in text or len(row.ids) >= r.max_new:
                r.events.put(("done", text.split("\n")[0].strip()))
                done.append(row)
            elif r.stream:
                r.events.put(("text", text))
        return done

    def _fail_row(self, req: Request, exc: Exception) -> None:
        """Tell one request that its row failed (the rest of its batch goes on)."""
        self.stats["row_failures"] += 1
        req.events.put(("error", EngineError(f"generation failed for this request ({type(exc).__name__}: {exc});"
                                             " other requests were not affected")))

    def _drop(self, lane: _Lane, done: list[_Row]) -> None:
        if not done:
            return
        gone = {id(r) for r in done}
        keep = [i for i, r in enumerate(lane.rows) if id(r) not in gone]
        lane.rows = [lane.rows[i] for i in keep]
        if keep:
            lane.mask = select_rows(lane.cache, lane.mask, keep)
        else:
            lane.cache = lane.mask = None


def bulk_generator(engine: Engine | None, session: str = "bulk") -> Callable:
    """generate(model, tok, prefix, queries, max_new_tokens=40) -> texts, through `engine` (a private
    engine when None). Each call gets its own lane and prefix cache entry, dropped afterwards: the model
    may be a training copy whose weights change between calls."""
    eng = engine or Engine()
    counter = itertools.count()

    def generate(model, tok, prefix: str, queries: list[str], max_new_tokens: int = 40) -> list[str]:
        lane = ("private", id(model), session, next(counter))
        try:
            return eng.generate(model, tok, prefix, queries, lane=lane, session=session, max_new=max_new_tokens)
        finally:
            eng.prefixes.drop(lane)

    return generate
