"""In-context learning compute: generate fast from a few-shot prompt (built in modes/data.py); no weight changes.

Speed on a CPU comes from three things: the few-shot prefix's KV cache is computed once and a copy
reused for every query; many queries go through one left-padded batch; generation stops at the
newline that ends the translation.
"""

from __future__ import annotations

import copy
import threading
import time
from collections import OrderedDict
from dataclasses import dataclass
from typing import Iterator

import torch


# ---- generation ------------------------------------------------------------------------------------
class PrefixCache:
    """A small LRU of prefix KV caches, keyed by the exact prefix text (shared: it holds no user data)."""

    def __init__(self, size: int = 8):
        self.size, self._d, self._lock = size, OrderedDict(), threading.Lock()

    def get(self, model, tok, prefix: str):
        key = (id(model), prefix)
        with self._lock:
            if key in self._d:
                self._d.move_to_end(key)
                return self._d[key]
        ids, cache = prefill(model, tok, prefix)
        with self._lock:
            self._d[key] = (ids, cache)
            while len(self._d) > self.size:
                self._d.popitem(last=False)
        return ids, cache


@torch.no_grad()
def prefill(model, tok, prefix: str):
    """Run the prefix once: ([1, P] ids, its DynamicCache)."""
    from transformers import DynamicCache

    raw = tok(prefix, add_special_tokens=True)["input_ids"]
    if not raw:  # k = 0 with a tokenizer that adds no <bos>: the cache still needs one position
        raw = [tok.bos_token_id if tok.bos_token_id is not None else tok.eos_token_id]
    ids = torch.tensor([raw], dtype=torch.long, device=model.device)
    cache = DynamicCache(config=model.config)
    cache = model(input_ids=ids, cache=cache, use_cache=True).cache
    return ids, cache


def stop_ids(tok) -> list[int]:
    return [tok("\n", add_special_tokens=False)["input_ids"][-1], tok.eos_token_id]


@torch.no_grad()
def generate_batch(model, tok, prefix: str, queries: list[str], max_new_tokens: int = 40, batch_size: int = 24,
                   prefix_cache: tuple | None = None) -> list[str]:
    """Greedy continuations of prefix+query for many queries, reusing the prefix's KV cache.

    Each row is [prefix | left pads | query]: the pads sit after the cached prefix, masked out, so
    every row's query gets positions P, P+1, ... exactly as if it had no padding.
    """
    p_ids, p_cache = prefix_cache or prefill(model, tok, prefix)
    P = p_ids.shape[1]
    encoded = [tok(q, add_special_tokens=False)["input_ids"] for q in queries]
    window = getattr(model.config, "sliding_window", None) or 10**9
    if P + max(map(len, encoded), default=0) + max_new_tokens > window:
        batch_size = 1  # pads inside a sliding window would hide real tokens: exactness over speed
    outs: list[str] = []
    for s in range(0, len(encoded), batch_size):
        chunk = encoded[s : s + batch_size]
        B, L = len(chunk), max(len(c) for c in chunk)
        q = torch.full((B, L), tok.pad_token_id, dtype=torch.long)
        qmask = torch.zeros((B, L), dtype=torch.long)
        for i, c in enumerate(chunk):
            q[i, L - len(c):], qmask[i, L - len(c):] = torch.tensor(c), 1
        ids = torch.cat([p_ids.cpu().expand(B, P), q], 1).to(model.device)
        mask = torch.cat([torch.ones((B, P), dtype=torch.long), qmask], 1).to(model.device)
        cache = copy.deepcopy(p_cache)
        if B > 1:
            cache.batch_repeat_interleave(B)
        gen = model.generate(input_ids=ids, attention_mask=mask, cache=cache, max_new_tokens=max_new_tokens,
                             do_sample=False, eos_token_id=stop_ids(tok), pad_token_id=tok.pad_token_id)
        for row in gen[:, ids.shape[1]:]:
            outs.append(tok.decode(row, skip_special_tokens=True).split("\n")[0].strip())
    return outs


@dataclass
class StreamEvent:
    text: str
    ttft: float | None  # seconds to the first token, once known
    done: bool = False


def stream_generate(model, tok, prefix: str, query: str, max_new_tokens: int = 64, temperature: float = 0.0,
                    top_p: float = 1.0, seed: int = 0, prefix_cache: tuple | None = None,
                    stop_event: threading.Event | None = None) -> Iterator[StreamEvent]:
    """Stream one translation token by token; stop at the end of the line."""
    from transformers import StoppingCriteria, StoppingCriteriaList, TextIteratorStreamer

    t0 = time.perf_counter()
    p_ids, p_cache = prefix_cache or prefill(model, tok, prefix)
    q = torch.tensor([tok(query, add_special_tokens=False)["input_ids"]], device=model.device)
    ids = torch.cat([p_ids, q], 1)
    streamer = TextIteratorStreamer(tok, skip_prompt=True, skip_special_tokens=True)
    stop_event = stop_event or threading.Event()

    class _Stop(StoppingCriteria):
        def __call__(self, input_ids, scores, **kw):
            return stop_event.is_set()

    sample = temperature > 0
    kwargs = dict(input_ids=ids, attention_mask=torch.ones_like(ids), cache=copy.deepcopy(p_cache),
                  max_new_tokens=max_new_tokens, do_sample=sample, eos_token_id=stop_ids(tok),
                  pad_token_id=tok.pad_token_id, streamer=streamer, stopping_criteria=StoppingCriteriaList([_Stop()]))
    if sample:
        kwargs.update(temperature=temperature, top_p=top_p)
        torch.manual_seed(seed)
    errors: list[BaseException] = []

    def run():
        try:
            with torch.no_grad():
                model.generate(**kwargs)
        except BaseException as exc:  # noqa: BLE001 - re-raised in the caller's thread
            errors.append(exc)
            streamer.end()

    th = threading.Thread(target=run, daemon=True)
    th.start()
    text, ttft = "", None
    try:
        for piece in streamer:
            if ttft is None and piece:
                ttft = time.perf_counter() - t0
            text += piece
            if "\n" in text:
                text = text.split("\n")[0]
                stop_event.set()
                break
            yield StreamEvent(text, ttft)
    finally:
        stop_event.set()
        th.join()
    if errors:
        raise errors[0]
    yield StreamEvent(text.strip(), ttft, done=True)
