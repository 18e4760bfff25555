"""Pre-packed CPU linears for a bf16 model: the same numbers, without a weight reorder on every call.

On the CPU, torch's bf16 `F.linear` hands oneDNN a plain weight, which oneDNN reorders into its blocked
layout on every call. For the tied 262k x 640 LM head of Gemma 3 270M that is a 335 MB copy per decode
step. Reordered once, the same oneDNN kernel gives bitwise-equal outputs for two or more rows
(tests/test_packed.py) and is faster (measured here, 2 cores): the LM head 15.3 -> 4.8 ms for 1 row,
22.1 -> 10.1 ms for 16 rows. A lone row is computed as a pair, so it gets the bits it would get in any
batch (with modes/serving/rowwise.py, a row decodes the same tokens alone and batched).

`pack(model)` turns the model's nn.Linear layers into PackedLinear: the same module with the same
parameters and state_dict, so PEFT, merging, hashing and saving see nothing new. The packed copy is
made lazily, on the first no-grad bf16 CPU call, and kept on the weight Parameter, so modules that
share a weight (the LM head tied to the embedding) share one copy. It is remade when the weight changes
(its version counter or its storage). Anything else (training, float32, another device) runs plain
`F.linear`: float32 packing was faster too but not bitwise-equal, so it is left out.
"""

from __future__ import annotations

import functools

import torch
import torch.nn.functional as F

_ATTR = "_hml_packed"  # on the weight Parameter: ((version, data_ptr), packed tensor)


@functools.lru_cache(maxsize=1)
def available() -> bool:
    """Whether oneDNN can pack bf16 weights here: the CPU wheels have the ops, but oneDNN's bf16 path also
    needs the CPU's avx512bw/vl/dq or avx_ne_convert (an AVX2-only CPU refuses the reorder)."""
    return (torch.backends.mkldnn.is_available() and hasattr(torch.ops.mkldnn, "_linear_pointwise")
            and torch.ops.mkldnn._is_mkldnn_bf16_supported())


class PackedLinear(torch.nn.Linear):
    """nn.Linear that runs no-grad bf16 CPU calls on a weight packed once for oneDNN."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        w = self.weight
        if torch.is_grad_enabled() or w.dtype != torch.bfloat16 or w.device.type != "cpu" or x.dtype != w.dtype:
            return F.linear(x, w, self.bias)
        if not available():
            # No oneDNN bf16 packing on this CPU: plain F.linear, with a lone row still computed as a pair.
            if x.dim() >= 2 and x.numel() == x.shape[-1]:
                return F.linear(torch.cat([x, x], -2), w, self.bias)[..., :1, :]
            return F.linear(x, w, self.bias)
        key = (w._version, w.data_ptr())
        held = getattr(w, _ATTR, None)
        if held is None or held[0] != key:
            held = (key, torch.ops.mkldnn._reorder_linear_weight(w.detach()))
            setattr(w, _ATTR, held)  # one assignment: a reader sees the old pair or the new one
        if x.dim() >= 2 and x.numel() == x.shape[-1]:
            # One row takes another oneDNN kernel than two or more and rounds differently, so a row alone and the
            # same row in a batch would disagree. From two rows up every row gets the same bits at any row count
            # (tests/test_packed.py), so a lone row is computed as a pair and its first half kept.
            return torch.ops.mkldnn._linear_pointwise(torch.cat([x, x], -2), held[1], self.bias, "none", [], "")[..., :1, :]
        return torch.ops.mkldnn._linear_pointwise(x, held[1], self.bias, "none", [], "")


def pack(model) -> int:
    """Make every nn.Linear of `model` a PackedLinear (in place). Returns how many were switched. Where oneDNN
    cannot pack bf16 (see `available`), the layers still compute a lone row as a pair, unpacked."""
    n = 0
    for m in model.modules():
        if type(m) is torch.nn.Linear:
            m.__class__ = PackedLinear
            n += 1
    return n


def packed_bytes(model) -> int:
    """Bytes held by packed copies (each shared weight counted once), for memory reports."""
    seen, total = set(), 0
    for p in model.parameters():
        held = getattr(p, _ATTR, None)
        if held is not None and id(p) not in seen:
            seen.add(id(p))
            total += p.numel() * p.element_size()
    return total


def unpack(model) -> int:
    """Turn PackedLinear layers back into plain nn.Linear (the baseline in bench/packed.py). Returns how many."""
    n = 0
    for m in model.modules():
        if type(m) is PackedLinear:
            m.__class__ = torch.nn.Linear
            n += 1
    return n
