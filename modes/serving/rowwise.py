"""Row-wise attention for the served bf16 model: a row's answer does not depend on who shares its batch.

The engine left-pads rows to one layout and masks the pads. In bf16, SDPA over masked padding columns
rounds differently from the same row without them (12-13 of 50 random cases here), and those small
differences flip greedy choices: on the real model a batched answer differed from the same row alone
in several of 16 held-out sentences. This attention runs each row on its own real columns (and its
real query positions), so a row sees exactly the inputs it would see alone. Together with
`modes/serving/packed.py` (one row is computed as a pair, since 2+ rows give every row the same bits), a row
decodes the same tokens alone and in any batch (tests/test_engine.py).

It costs a small SDPA call per row and layer instead of one per layer; measured in bench/packed.py.
`use(model)` switches a model to it.
"""

from __future__ import annotations

import threading

import torch
import torch.nn.functional as F

NAME = "hml_rowwise_sdpa"


_last = threading.local()  # the spans of the last mask seen: every layer of one kind shares its mask


def _spans(mask: torch.Tensor | None, B: int, q_len: int, kv_len: int) -> list[tuple[int, int, int]]:
    """For each row: (first real column, end of its real columns, its real queries), from a mask [B, 1, q, kv]."""
    if mask is None:
        return [(0, kv_len, q_len)] * B
    held = getattr(_last, "held", None)
    if held is not None and held[0] is mask:
        return held[1]
    see = mask if mask.dtype == torch.bool else mask == 0  # float masks: 0 = attend
    cols = see[:, 0].any(1)  # [B, kv]: columns some query of the row may see
    first = cols.int().argmax(1).tolist()
    last = (kv_len - 1 - cols.flip(1).int().argmax(1)).tolist()
    spans = []
    for b in range(B):
        c0, c1 = first[b], last[b] + 1
        # the queries are the last q_len kv positions; those past the row's real columns are padding
        spans.append((c0, c1, max(1, q_len - (kv_len - c1))) if c1 > c0 else (0, kv_len, q_len))
    _last.held = (mask, spans)
    return spans


def attention(module, query, key, value, attention_mask, scaling=None, **kwargs):
    """query [B, H, q, D], key/value [B, Hkv, kv, D], mask [B, 1, q, kv] or None -> ([B, q, H, D], None)."""
    B, H, q_len, D = query.shape
    Hkv, kv_len = key.shape[1], key.shape[2]
    out = query.new_zeros(B, q_len, H, D)
    for b, (c0, c1, qn) in enumerate(_spans(attention_mask, B, q_len, kv_len)):
        k, v = key[b : b + 1, :, c0:c1], value[b : b + 1, :, c0:c1]
        if q_len == 1:
            # A decode row sees all of its real columns (they are contiguous), so it needs no mask. Its grouped
            # query heads go in as queries of their shared KV head: [1, H, 1, D] -> [1, Hkv, H / Hkv, D].
            o = F.scaled_dot_product_attention(query[b : b + 1].reshape(1, Hkv, H // Hkv, D), k, v, scale=scaling)
            out[b, 0] = o.reshape(H, D)
            continue
        if attention_mask is None:  # an explicit causal mask either way, so a lone row takes the batched path
            m = torch.ones(qn, c1 - c0, dtype=torch.bool, device=query.device).tril(c1 - c0 - qn)[None, None]
        else:
            m = attention_mask[b : b + 1, :, :qn, c0:c1]
        o = F.scaled_dot_product_attention(query[b : b + 1, :, :qn], k, v, attn_mask=m, scale=scaling, enable_gqa=H != Hkv)
        out[b, :qn] = o[0].transpose(0, 1)
    return out, None


def use(model) -> bool:
    """Serve `model` with row-wise attention where it runs on sdpa (registered once). Returns whether it did."""
    from transformers import AttentionInterface
    from transformers.masking_utils import ALL_MASK_ATTENTION_FUNCTIONS, AttentionMaskInterface, sdpa_mask

    if getattr(model.config, "_attn_implementation", None) not in ("sdpa", NAME):
        return False
    if NAME not in AttentionInterface._global_mapping:
        AttentionInterface.register(NAME, attention)
    if NAME not in ALL_MASK_ATTENTION_FUNCTIONS._global_mapping:
        AttentionMaskInterface.register(NAME, sdpa_mask)
    model.set_attn_implementation(NAME)
    return True
