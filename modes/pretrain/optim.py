"""The pre-training optimizer: Muon for the hidden matrices, AdamW for embeddings and norms; and the learning-rate
schedule a run follows (warmup, then warmup-stable-decay for Muon or cosine for AdamW).

Muon (momentum, then a Newton-Schulz orthogonalised update; the modded-nanoGPT speedrun's biggest
sample-efficiency gain) is what lets the `baby` model reach 1.60 nats/char in about a minute on 2
cores. torch.optim.Muon orthogonalises one matrix at a time: 28 small matrices cost 11.6 ms a step
here, a third of the step. This one stacks same-shape matrices (q/o, k/v, the three MLP matrices
with `down` transposed) and runs the same bf16 iteration as batched matmuls: 6.7 ms.

The iteration runs in bf16 only where bf16 matmuls are native (a GPU, or a CPU whose oneDNN has bf16
kernels: avx512bw/vl/dq or avx_ne_convert). On an AVX2-only CPU a bf16 baddbmm of these shapes took
2.9 ms against 0.07 ms in float32 (42x): there it runs in float32, which is also the more exact one.
"""

from __future__ import annotations

import functools
import math

import torch

from modes.pretrain.config import PretrainConfig

NS_COEFFICIENTS = (3.4445, -4.775, 2.0315)  # torch.optim.Muon's (Keller Jordan's) quintic iteration


@functools.lru_cache(maxsize=None)
def ns_dtype(device_type: str) -> torch.dtype:
    """The Newton-Schulz iteration's dtype: bf16 where its matmuls are native, else float32."""
    if device_type == "cpu" and not (torch.backends.mkldnn.is_available() and torch.ops.mkldnn._is_mkldnn_bf16_supported()):
        return torch.float32
    return torch.bfloat16


class BatchedMuon(torch.optim.Optimizer):
    """torch.optim.Muon's update (nesterov momentum, 5 Newton-Schulz steps in bf16 (see ns_dtype), decoupled weight
    decay, Moonshot's "match_rms_adamw" learning-rate scale 0.2*sqrt(max(A, B))), batched by shape."""

    def __init__(self, params, lr: float = 0.02, weight_decay: float = 0.1, momentum: float = 0.95, ns_steps: int = 5):
        super().__init__(params, dict(lr=lr, weight_decay=weight_decay, momentum=momentum, ns_steps=ns_steps))
        for g in self.param_groups:
            if any(p.dim() != 2 for p in g["params"]):
                raise ValueError("BatchedMuon takes 2-D matrices only")

    @torch.no_grad()
    def step(self, closure=None):
        for g in self.param_groups:
            by_shape: dict = {}
            for p in g["params"]:
                if p.grad is not None:
                    by_shape.setdefault((min(p.shape), max(p.shape)), []).append(p)
            for (a, b), ps in by_shape.items():
                wide = [p.shape[0] <= p.shape[1] for p in ps]  # orient every matrix as [a, b] with a <= b
                grads = torch.stack([p.grad if w else p.grad.T for p, w in zip(ps, wide)])  # [n, a, b]
                state = self.state[ps[0]]
                buf = state.get("momentum_buffer")
                if buf is None or buf.shape != grads.shape:
                    buf = state["momentum_buffer"] = torch.zeros_like(grads)
                buf.mul_(g["momentum"]).add_(grads)
                update = grads.add(buf, alpha=g["momentum"])  # nesterov
                x = update.to(ns_dtype(update.device.type))
                x = x / x.norm(dim=(1, 2), keepdim=True).clamp(min=1e-7)  # spectral norm <= 1
                ca, cb, cc = NS_COEFFICIENTS
                for _ in range(g["ns_steps"]):
                    gram = torch.bmm(x, x.mT)  # [n, a, a]
                    x = torch.baddbmm(x, torch.baddbmm(gram, gram, gram, beta=cb, alpha=cc), x, beta=ca)
                x = x.float()
                if g["weight_decay"]:
                    torch._foreach_mul_(ps, 1 - g["lr"] * g["weight_decay"])
                lr = g["lr"] * 0.2 * max(a, b) ** 0.5
                torch._foreach_add_(ps, [u if w else u.T for u, w in zip(x.unbind(0), wide)], alpha=-lr)


def pretrain_optimizers(model, muon_lr: float, adam_lr: float, weight_decay: float, fused_adam: dict) -> list:
    """[Muon on the hidden matrices, AdamW on the (tied) embedding and the norm weights]."""
    hidden = [p for n, p in model.named_parameters() if p.dim() == 2 and "embed" not in n]
    other = [p for n, p in model.named_parameters() if not (p.dim() == 2 and "embed" not in n)]
    opts = [
        BatchedMuon(hidden, lr=muon_lr, weight_decay=weight_decay),
        torch.optim.AdamW(other, lr=adam_lr, betas=(0.9, 0.99), weight_decay=0.0, **fused_adam),
    ]
    for o in opts:
        for g in o.param_groups:
            g["peak_lr"] = g["lr"]
    return opts


# ---- the schedule, and the optimizers of a run ----------------------------------------------------
def lr_scale(step: int, cfg: PretrainConfig) -> float:
    """The learning rate as a fraction of its peak: linear warmup, then warmup-stable-decay (muon:
    flat, then a linear decay over the last decay_frac of the steps) or cosine decay (adamw)."""
    warmup = min(cfg.warmup, cfg.steps // 10)  # short runs (a 30-step demo) warm up for a tenth
    if step < warmup:
        return (step + 1) / warmup
    lo = cfg.min_lr_ratio
    if cfg.optimizer == "adamw":
        frac = (step - warmup) / max(1, cfg.steps - warmup)
        return lo + (1 - lo) * 0.5 * (1 + math.cos(math.pi * min(1.0, frac)))
    decay_start = max(warmup, int(cfg.steps * (1 - cfg.decay_frac)))
    if step < decay_start:
        return 1.0
    return lo + (1 - lo) * max(0.0, 1 - (step - decay_start) / max(1, cfg.steps - decay_start))


def lr_at(step: int, cfg: PretrainConfig) -> float:
    """AdamW's learning rate at `step` (the baseline GPT in bench/pretrain.py uses it too)."""
    return cfg.preset.lr * lr_scale(step, cfg)


def make_optimizers(model, cfg: PretrainConfig) -> list:
    p = cfg.preset
    if cfg.optimizer == "muon":
        return pretrain_optimizers(model, p.muon_lr, p.embed_lr, cfg.weight_decay, _fast_adam_kwargs(model))
    decay = [q for q in model.parameters() if q.dim() >= 2]
    no_decay = [q for q in model.parameters() if q.dim() < 2]
    opt = torch.optim.AdamW([{"params": decay, "weight_decay": cfg.weight_decay}, {"params": no_decay, "weight_decay": 0.0}],
                            lr=p.lr, betas=(0.9, 0.99), **_fast_adam_kwargs(model))
    for g in opt.param_groups:
        g["peak_lr"] = g["lr"]
    return [opt]


def _fast_adam_kwargs(model) -> dict:
    """The fused AdamW kernel where this torch has it (CPU and CUDA in torch >= 2.4), else foreach."""
    try:
        torch.optim.AdamW([torch.nn.Parameter(torch.zeros(1, device=model.device))], fused=True)
        return {"fused": True}
    except (RuntimeError, TypeError):
        return {"foreach": True}
