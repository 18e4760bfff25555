"""The LM head's cross-entropy, fused (modes/model/head_loss.py) against the plain way, at the shape of a
fine-tune step: N target tokens of hidden size 640 against Gemma 3's 262,144-row head, forward and backward
(the gradient to the hidden states only, the head frozen), in the head's dtype (bf16 and float32).
Prints the medians, their ratio, the largest differences in loss and gradient, and the CPU.
Usage: python bench/head_loss.py [--n 120] [--reps 7] [--chunks 4096,8192,16384]
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

import torch
import torch.nn.functional as F

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from modes.model.head_loss import CHUNK, head_cross_entropy
from modes.serving.precision import cpu_line


def plain(h, w, t):
    return F.cross_entropy((h @ w.T).float(), t)


def timed(fn, h, w, t, reps: int) -> tuple[float, torch.Tensor, torch.Tensor]:
    times = []
    for _ in range(reps + 1):
        x = h.detach().clone().requires_grad_(True)
        t0 = time.perf_counter()
        loss = fn(x, w, t)
        loss.backward()
        times.append(time.perf_counter() - t0)
    return statistics.median(times[1:]), loss.detach(), x.grad


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--n", type=int, default=120, help="target tokens a step (8 pairs of about 15 target tokens)")
    ap.add_argument("--reps", type=int, default=7)
    ap.add_argument("--chunks", default=str(CHUNK))
    args = ap.parse_args()
    print(cpu_line())
    torch.manual_seed(0)
    for dtype in (torch.bfloat16, torch.float32):
        w = (torch.randn(262_144, 640) * 0.03).to(dtype)
        h = (torch.randn(args.n, 640) * 2).to(dtype)
        t = torch.randint(0, 262_144, (args.n,))
        base_s, base_loss, base_grad = timed(plain, h, w, t, args.reps)
        print(f"{str(dtype).removeprefix('torch.')}: plain {base_s * 1e3:.0f} ms (forward and backward, median of {args.reps})")
        for c in (int(x) for x in args.chunks.split(",")):
            s, loss, grad = timed(lambda a, b, d: head_cross_entropy(a, b, d, chunk=c), h, w, t, args.reps)
            rel = float((grad.float() - base_grad.float()).norm() / base_grad.float().norm())
            print(f"  fused, chunk {c}: {s * 1e3:.0f} ms ({base_s / s:.2f}x faster); loss differs by {abs(float(loss - base_loss)):.1e}, "
                  f"gradient by {rel:.1e} (relative norm)")


if __name__ == "__main__":
    main()
