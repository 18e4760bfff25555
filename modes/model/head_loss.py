"""The LM head's cross-entropy in one pass over its weight: what a fine-tune step spends most of its time on.

Gemma 3's head is [V, H] = [262,144, 640]. The plain way, `F.cross_entropy(lm_head(h).float(), t)`, reads
the head's weight twice (the logits, then their gradient's product with it) and writes and reads
[N, V] float32 tensors several times over (the logits, their float copy, the log-softmax, its
gradient, the gradient's bf16 copy): with N = 120 target tokens a step, 126 MB each. On 2 cores
of an Intel Xeon that was about half of a LoRA step (the log-softmax alone, forward and backward, 167 ms).

Here the vocabulary goes by in chunks. Each chunk's logits [N, c] are made, folded into a running
log-sum-exp (the online softmax), and, when a gradient is wanted, their exp(z - running max) times
the chunk's weight is folded into a running [N, H] sum, rescaled when the max moves (as flash attention
does). So the weight is read once, nothing [N, V] is ever whole, and the gradient with respect to the
hidden states is ready when the forward ends: softmax(z) @ W - W[target], over N.

The head is frozen in a LoRA run, so no gradient for the weight is made. The logits are rounded as the
plain way rounds them (the head's dtype, then float32), so the loss agrees with it to float32's
rounding; the gradient's chunks are multiplied in the head's dtype, as the plain backward does.
"""

from __future__ import annotations

import torch

CHUNK = 8192  # vocabulary rows a chunk: [N, 8192] float32 logits stay small; measured in bench/head_loss.py


class _HeadCrossEntropy(torch.autograd.Function):
    @staticmethod
    def forward(ctx, h: torch.Tensor, weight: torch.Tensor, target: torch.Tensor, chunk: int):
        n, v = h.shape[0], weight.shape[0]
        want_grad = ctx.needs_input_grad[0]
        m = torch.full((n,), float("-inf"), dtype=torch.float32, device=h.device)  # running max of each row's logits
        s = torch.zeros(n, dtype=torch.float32, device=h.device)  # running sum of exp(z - m)
        acc = torch.zeros(n, h.shape[1], dtype=torch.float32, device=h.device) if want_grad else None  # sum of exp(z - m) W
        z_t = torch.empty(n, dtype=torch.float32, device=h.device)  # each row's target logit
        rows = torch.arange(n, device=h.device)
        for c0 in range(0, v, chunk):
            w = weight[c0 : c0 + chunk]  # [c, H]
            z = (h @ w.T).float()  # [N, c]: rounded in the head's dtype first, as lm_head(h).float() is
            hit = (target >= c0) & (target < c0 + w.shape[0])
            if hit.any():
                z_t[hit] = z[rows[hit], target[hit] - c0]
            m_new = torch.maximum(m, z.amax(dim=1))
            scale = torch.exp(m - m_new)  # [N]: the old sums, in the new max's units (exp(-inf) = 0 at first)
            p = z.sub_(m_new[:, None]).exp_()  # [N, c], in place
            s = s * scale + p.sum(dim=1)
            if acc is not None:
                acc = acc * scale[:, None] + (p.to(weight.dtype) @ w).float()
            m = m_new
        lse = m + torch.log(s)
        loss = (lse - z_t).mean()
        if acc is not None:
            grad = (acc / s[:, None] - weight[target].float()) / n  # d(mean loss)/dh: softmax @ W - W[t], over N
            ctx.save_for_backward(grad)
            ctx.h_dtype = h.dtype
        return loss

    @staticmethod
    def backward(ctx, grad_out):
        (grad,) = ctx.saved_tensors
        return (grad * grad_out).to(ctx.h_dtype), None, None, None


def head_cross_entropy(h: torch.Tensor, weight: torch.Tensor, target: torch.Tensor, chunk: int = CHUNK) -> torch.Tensor:
    """Mean cross-entropy of logits h @ weight.T ([N, H] @ [H, V]) against `target` ([N] ids), in one pass
    over `weight`; the gradient flows to `h` only (a frozen head, as in a LoRA run)."""
    if weight.requires_grad:
        raise ValueError("head_cross_entropy: the head must be frozen (no gradient is made for it)")
    if h.shape[0] == 0:
        raise ValueError("head_cross_entropy: no target tokens")
    return _HeadCrossEntropy.apply(h, weight, target, chunk)
