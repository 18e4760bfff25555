"""The LM head's one-pass cross-entropy (modes/model/head_loss.py) gives the plain way's loss and gradient."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from modes.model.head_loss import head_cross_entropy


def _both(dtype, chunk, n=13, v=1000, hdim=24, seed=0):
    g = torch.Generator().manual_seed(seed)
    w = (torch.randn(v, hdim, generator=g) * 0.5).to(dtype)
    h0 = (torch.randn(n, hdim, generator=g) * 2).to(dtype)
    t = torch.randint(0, v, (n,), generator=g)
    t[0], t[1] = 0, v - 1  # the first and the last vocabulary rows: the first and the last chunk
    a, b = h0.clone().requires_grad_(True), h0.clone().requires_grad_(True)
    plain = F.cross_entropy((a @ w.T).float(), t)
    plain.backward()
    fused = head_cross_entropy(b, w, t, chunk=chunk)
    fused.backward()
    return plain.detach(), fused.detach(), a.grad, b.grad


@pytest.mark.parametrize("chunk", [1000, 256, 333, 7])  # one chunk, several, one that does not divide V, tiny
def test_float32_loss_and_gradient_match_the_plain_way(chunk):
    plain, fused, ga, gb = _both(torch.float32, chunk)
    assert fused.dtype == torch.float32 and abs(float(fused - plain)) < 1e-5
    assert gb.dtype == torch.float32 and torch.allclose(ga, gb, atol=1e-6, rtol=1e-4)


def test_bf16_loss_matches_and_the_gradient_is_as_close_as_bf16_allows():
    plain, fused, ga, gb = _both(torch.bfloat16, 256)
    assert abs(float(fused - plain)) < 1e-4  # the same bf16-rounded logits, summed in another order
    assert gb.dtype == torch.bfloat16
    assert float((gb.float() - ga.float()).norm() / ga.float().norm()) < 2e-2


def test_a_wrong_gradient_would_be_seen():
    """The comparison above can fail: a loss whose target row is off by one gives another gradient."""
    g = torch.Generator().manual_seed(1)
    w, h = torch.randn(50, 8, generator=g), torch.randn(4, 8, generator=g)
    t = torch.tensor([1, 2, 3, 4])
    a, b = h.clone().requires_grad_(True), h.clone().requires_grad_(True)
    F.cross_entropy(a @ w.T, t).backward()
    head_cross_entropy(b, w, t + 1, chunk=16).backward()
    assert not torch.allclose(a.grad, b.grad, atol=1e-3)


def test_no_gradient_wanted_and_a_trainable_head_refused():
    w, h, t = torch.randn(40, 8), torch.randn(3, 8), torch.tensor([0, 5, 39])
    with torch.no_grad():
        assert abs(float(head_cross_entropy(h, w, t, chunk=16) - F.cross_entropy(h @ w.T, t))) < 1e-5
    with pytest.raises(ValueError, match="frozen"):
        head_cross_entropy(h, w.clone().requires_grad_(True), t)
