"""The generation engine's KV bookkeeping: rows right-aligned in one DynamicCache, prefix caches.

A lane's rows are left-padded to one layout length L. Pads are masked out and every row keeps its own
position ids; full-attention layers hold all L columns, sliding-window layers the last window-1
(transformers' DynamicSlidingWindowLayer), so every helper here keeps that invariant.
"""

from __future__ import annotations

import copy
import threading
from collections import OrderedDict
from typing import Hashable

import torch
import torch.nn.functional as F

from modes.serving.rows import Request, _Row


def pad_left(t: torch.Tensor, n: int) -> torch.Tensor:
    return t if n <= 0 else F.pad(t, (0, 0, n, 0))  # t: [B, H, T, D] -> [B, H, n+T, D]



def set_layout(cache, L: int) -> None:
    for layer in cache.layers:
        if getattr(layer, "is_sliding", False):
            layer.cumulative_length = L


def left_align(cache, lengths: list[int], L: int) -> None:
    """Right-padded rows (real lengths `lengths` of a layout L, sliding layers holding all of it)
    -> left-padded rows of the same layout."""
    for layer in cache.layers:
        for kv in ("keys", "values"):
            t = getattr(layer, kv)
            rows = [pad_left(t[i : i + 1, :, :n], L - n) for i, n in enumerate(lengths)]
            setattr(layer, kv, torch.cat(rows, 0))


def grow(cache, L_old: int, L_new: int) -> None:
    """Left-pad every layer so the layout grows from L_old to L_new (sliding layers: to their window)."""
    for layer in cache.layers:
        have = layer.keys.shape[-2]
        want = min(L_new, layer.sliding_window - 1) if getattr(layer, "is_sliding", False) else L_new
        layer.keys, layer.values = pad_left(layer.keys, want - have), pad_left(layer.values, want - have)
    set_layout(cache, L_new)


def concat(a, b) -> None:
    """Append b's rows to a's (same layout length)."""
    for la, lb in zip(a.layers, b.layers):
        la.keys, la.values = torch.cat([la.keys, lb.keys], 0), torch.cat([la.values, lb.values], 0)


def select_rows(cache, mask: torch.Tensor, keep: list[int]):
    """Keep rows `keep`, then drop layout columns that are padding in every row. -> new mask."""
    idx = torch.tensor(keep, dtype=torch.long)
    mask = mask[idx]
    L = mask.shape[1]
    c = int(mask.any(0).long().argmax()) if mask.any() else L  # leading all-pad columns
    for layer in cache.layers:
        k, v = layer.keys[idx], layer.values[idx]
        held = k.shape[-2]
        cut = max(0, c - (L - held))  # a layer holds the layout's last `held` columns
        layer.keys, layer.values = k[:, :, cut:], v[:, :, cut:]
    set_layout(cache, L - c)
    return mask[:, c:]


class PrefixCache:
    """A small LRU of prefix KV caches, keyed by (lane, exact prefix text); shared, it holds no user data."""

    def __init__(self, size: int = 16):
        self.size, self._d, self._lock = size, OrderedDict(), threading.Lock()

    def get(self, lane: Hashable, model, tok, prefix: str):
        key = (lane, id(model), prefix)
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

    def drop(self, lane: Hashable) -> None:
        with self._lock:
            for key in [k for k in self._d if k[0] == lane]:
                del self._d[key]


@torch.no_grad()
def prefill(model, tok, prefix: str):
    """Run the prefix once: ([1, P] ids, its DynamicCache)."""
    from transformers import DynamicCache

    raw = tok(prefix, add_special_tokens=True)["input_ids"]
    if not raw:  # a tokenizer that adds no <bos> and an empty prefix: the cache still needs one position
        raw = [tok.bos_token_id if tok.bos_token_id is not None else tok.eos_token_id]
    ids = torch.tensor([raw], dtype=torch.long, device=model.device)
    cache = DynamicCache(config=model.config)
    # Only the KV is wanted: one position of logits instead of P x 262k (the LM head is a third of the model).
    cache = model(input_ids=ids, cache=cache, use_cache=True, logits_to_keep=1).cache
    return ids, cache


# ---- rows joining a lane --------------------------------------------------------------------------
def prefill_rows(model, tok, p_cache, P: int, reqs: list[Request], enc: list[list[int]]):
    """One forward over `reqs` after the prefix: (cache [n rows, left-aligned], mask [n, L], rows, logits [n, V])."""
    lens = [len(e) for e in enc]
    n, Lq = len(reqs), max(lens)
    ids = torch.full((n, Lq), tok.pad_token_id, dtype=torch.long)
    qmask = torch.zeros((n, Lq), dtype=torch.long)
    for j, e in enumerate(enc):
        ids[j, : lens[j]], qmask[j, : lens[j]] = torch.tensor(e), 1
    cache = copy.deepcopy(p_cache)
    if n > 1:
        cache.batch_repeat_interleave(n)
    mask = torch.cat([torch.ones((n, P), dtype=torch.long), qmask], 1)
    pos = (P + torch.arange(Lq))[None].expand(n, Lq)
    dev = model.device
    last = torch.tensor(lens) - 1  # each row's last real token
    keep = torch.unique(last)  # logits only where some row ends: [n, len(keep), V], not [n, Lq, V]
    out = model(input_ids=ids.to(dev), attention_mask=mask.to(dev), position_ids=pos.to(dev), cache=cache,
                use_cache=True, logits_to_keep=keep.to(dev))
    logits = out.logits[torch.arange(n), torch.searchsorted(keep, last)]  # [n, V]
    L = P + Lq
    if n > 1:
        left_align(cache, [P + m for m in lens], L)
    row_mask = torch.stack([F.pad(torch.ones(P + m, dtype=torch.long), (L - P - m, 0)) for m in lens])
    rows = [_Row(r, pos=P + m, last=-1, gen=torch.Generator().manual_seed(int(r.seed)) if r.temperature > 0 else None)
            for r, m in zip(reqs, lens)]
    return cache, row_mask.to(dev), rows, logits


def merge_rows(lane, cache, mask: torch.Tensor, rows: list) -> None:
    """Add prefilled rows (their cache and mask [n, Lb]) to a lane, both grown to one layout length."""
    if not lane.rows:
        lane.cache, lane.mask, lane.rows = cache, mask, list(rows)
        return
    La, Lb = lane.mask.shape[1], mask.shape[1]
    L = max(La, Lb)
    grow(lane.cache, La, L)
    grow(cache, Lb, L)
    concat(lane.cache, cache)
    lane.mask = torch.cat([F.pad(lane.mask, (L - La, 0)), F.pad(mask, (L - Lb, 0))], 0)
    lane.rows += rows
