"""Pre-training compute: a tiny model learning the objective, by next-token prediction (GPT: causal attention,
every character predicted from the ones before it) or by masked prediction (BERT: bidirectional attention, a few
hidden characters predicted from both sides). The objective read off the pretrained model is objective.py; the
scratch model and its character tools scratch.py; the optimizers and their schedule optim.py.

Pure functions on plain values and tensors; no Gradio. Training is a generator of progress events,
so the UI (or a benchmark, or a test) decides what to show and when to stop.
"""

from __future__ import annotations

import time
from dataclasses import asdict, dataclass, field
from typing import Callable, Iterator

import torch
import torch.nn.functional as F

from modes.codec import recordable
from modes.pretrain.config import EVAL_BATCH, PretrainConfig
from modes.pretrain.masked import (  # noqa: F401
    MASK,
    MASK_SHOWN,
    fill_in,
    fill_in_accuracy,
    fill_in_text,
    fixed_masks,
    mask_batch,
    parse_fill_in,
    unigram_accuracy,
    write_left_to_right,
)
from modes.pretrain.objective import TokenLossResult, token_losses  # noqa: F401  (the tab and tests read them here)
from modes.pretrain.optim import lr_at, lr_scale, make_optimizers  # noqa: F401
from modes.pretrain.scratch import LN2, VAL_SNIPPET_CHARS, CharVocab, sample_text, scratch_bpc, scratch_model
from modes.runs.events import Done, Eval, Sample, Step


@recordable
@dataclass
class PretrainResult(Done):
    steps: int
    params: int
    train_loss: float
    val_loss: float
    val_bpc: float
    pretrained_val_bpc: float | None
    tokens_per_s: float
    seconds: float
    samples: list[dict] = field(default_factory=list)
    params_updated_fraction: float = 1.0
    curve: list[dict] = field(default_factory=list)
    stopped: bool = False
    dtype: str = "float32"  # the scratch model's precision (its tiny matmuls gain nothing from bf16 here)
    objective: str = "next-token"  # what val_loss and val_bpc measure: every character, or the masked ones only
    fill_in_accuracy: float | None = None  # masked: share of held-out masked characters guessed exactly
    unigram_accuracy: float | None = None  # masked: the same for always guessing the corpus's commonest character
    left_to_right: str | None = None  # masked: text "written" one mask at a time at the end (what it cannot do well)

    def summary(self) -> dict:
        d = asdict(self)
        d.pop("curve")
        return d


def _update(model, opts, x: torch.Tensor, y: torch.Tensor, scale: float) -> float:
    """One optimizer step on a batch (x, y: [B, T] character ids) at `scale` x each group's peak rate; its loss."""
    for opt in opts:
        for g in opt.param_groups:
            g["lr"] = g["peak_lr"] * scale
    loss = _loss(model, x, y)
    for opt in opts:
        opt.zero_grad(set_to_none=True)
    loss.backward()
    torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
    for opt in opts:
        opt.step()
    return loss.item()


def _loss(model, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    # [B, T] -> hidden [B, T, C] -> logits [B, T, V]; the char vocabulary is tiny, so all positions count
    # (masked: y is -100 except at the masked positions, which are the only ones scored).
    h = model.model(input_ids=x).last_hidden_state
    logits = model.lm_head(h)
    return F.cross_entropy(logits.view(-1, logits.shape[-1]), y.view(-1), ignore_index=-100)


@torch.no_grad()
def _eval(model, val: torch.Tensor, starts: torch.Tensor, block: int, batch: int, masks: list | None = None) -> float:
    """Mean val loss over the fixed windows. `masks` (masked objective): each batch's fixed (x, labels),
    so every estimate scores the same hidden characters."""
    model.eval()
    losses = []
    for n, i in enumerate(range(0, len(starts), batch)):
        s = starts[i : i + batch]
        if masks is not None:
            x, y = (t.to(model.device) for t in masks[n])
        else:
            x = torch.stack([val[j : j + block] for j in s]).to(model.device)
            y = torch.stack([val[j + 1 : j + 1 + block] for j in s]).to(model.device)
        losses.append(float(_loss(model, x, y)))
    model.train()
    return sum(losses) / len(losses)


def val_windows(n_val: int, block: int, cfg: PretrainConfig) -> torch.Tensor:
    """The fixed val windows (start offsets) every estimate uses: seeded, the same for any batch size."""
    gen = torch.Generator().manual_seed(cfg.seed + 1)
    return torch.randint(n_val - block - 1, (cfg.eval_batches * EVAL_BATCH,), generator=gen)


def train_scratch(
    loader,
    corpus,
    cfg: PretrainConfig,
    should_stop: Callable[[], bool] = lambda: False,
    reference_bpc: Callable[[str], float] | None = None,
) -> Iterator[Step | Eval | Sample | PretrainResult]:
    """Pre-train a fresh small Gemma 3 on characters. Yields a Step every step (after its Eval and
    Sample, when it has them), then one PretrainResult (modes/runs/events.py).

    `reference_bpc(text)` scores the same val snippet with a pretrained model, for the scale comparison
    (next-token only: the pretrained model predicts the next token, not a hidden one).
    Masked (cfg.objective): the same model, corpus, split and steps, with bidirectional attention; the
    loss is on the masked characters only, and a sample is a fill-in of a fixed val window.
    """
    p = cfg.preset
    masked = cfg.objective == "masked"
    vocab = CharVocab(corpus.train + corpus.val, mask=masked)
    train, val = vocab.encode(corpus.train), vocab.encode(corpus.val)
    if len(train) <= p.block_size + 1 or len(val) <= p.block_size + 1:
        raise ValueError("corpus: too short for this model's block size")
    model = scratch_model(loader, len(vocab), p.n_layer, p.n_head, p.n_embd, p.block_size, seed=cfg.seed, bidirectional=masked)
    model.train()
    params = sum(q.numel() for q in model.parameters())
    before = [q.detach().clone() for q in model.parameters()]
    opts = make_optimizers(model, cfg)
    gen = torch.Generator().manual_seed(cfg.seed)
    val_starts = val_windows(len(val), p.block_size, cfg)
    masks = fixed_masks(val, val_starts, p.block_size, EVAL_BATCH, cfg, vocab) if masked else None
    sample_gen = torch.Generator().manual_seed(cfg.seed + 2)
    # Batches as [B, T] views into the encoded text: index math once per step, no Python loop.
    offs = torch.arange(p.block_size)
    tokens_per_step = p.batch_size * p.block_size
    samples, curve = [], []
    t0 = time.perf_counter()
    train_loss = val_loss = float("nan")
    step = 0
    stopped = False
    for step in range(1, cfg.steps + 1):
        if should_stop():
            step -= 1
            stopped = True
            break
        ix = torch.randint(len(train) - p.block_size - 1, (p.batch_size,), generator=gen)
        x, y = _batch(train, ix, offs, cfg, vocab, gen, model.device)
        train_loss = _update(model, opts, x, y, lr_scale(step - 1, cfg))
        elapsed = time.perf_counter() - t0
        vl = sample = None
        if step % cfg.eval_every == 0 or step == cfg.steps or step == 1:
            vl = val_loss = _eval(model, val, val_starts, p.block_size, EVAL_BATCH, masks)
        # Samples every sample_every steps and at the end, skipping one that would land just before the end.
        if step == cfg.steps or (step % cfg.sample_every == 0 and cfg.steps - step >= cfg.sample_every // 2):
            sample = _sample(model, vocab, cfg, masks, sample_gen)
            samples.append({"step": step, "text": sample})
        curve.append({"step": step, "train_loss": train_loss, "val_loss": vl})
        tps = step * tokens_per_step / max(elapsed, 1e-9)
        if vl is not None:
            yield Eval(step, vl)
        if sample is not None:
            yield Sample(step, sample)
        yield Step(step, cfg.steps, train_loss, elapsed, (cfg.steps - step) * elapsed / step, tps)
    seconds = time.perf_counter() - t0
    if step > 0 and (not curve or curve[-1]["val_loss"] is None):
        val_loss = _eval(model, val, val_starts, p.block_size, EVAL_BATCH, masks)
        curve[-1]["val_loss"] = val_loss
    changed = sum(int((a != b).any()) * a.numel() for a, b in zip(before, model.parameters()))
    val_bpc, ref, extra = _final_figures(model, vocab, corpus, cfg, train, masks, val_loss, reference_bpc, sample_gen)
    yield PretrainResult(
        steps=step, params=params, train_loss=round(train_loss, 4), val_loss=round(val_loss, 4),
        val_bpc=round(val_bpc, 4), pretrained_val_bpc=None if ref is None else round(ref, 4),
        tokens_per_s=round(step * tokens_per_step / max(seconds, 1e-9), 1), seconds=round(seconds, 2),
        samples=samples, params_updated_fraction=round(changed / params, 4), curve=curve, stopped=stopped,
        dtype=str(next(model.parameters()).dtype).removeprefix("torch."), **extra,
    )


def _batch(text: torch.Tensor, ix: torch.Tensor, offs: torch.Tensor, cfg: PretrainConfig, vocab: CharVocab,
           gen: torch.Generator, device) -> tuple[torch.Tensor, torch.Tensor]:
    """[B, T] inputs and labels of the windows starting at `ix`: the next characters (next-token), or BERT's
    corruption of the window and its hidden characters (masked)."""
    if cfg.objective == "masked":
        x, y = mask_batch(text[ix[:, None] + offs], cfg.mask_rate, vocab.mask_id, len(vocab) - 1, gen)
    else:
        x, y = text[ix[:, None] + offs], text[ix[:, None] + offs + 1]
    return x.to(device), y.to(device)


def _sample(model, vocab: CharVocab, cfg: PretrainConfig, masks: list | None, gen: torch.Generator) -> str:
    """A generated sample (next-token), or the fill-in of the first fixed val window (masked: the same window
    every time, so the learner watches the guesses improve)."""
    if masks is not None:
        return fill_in_text(fill_in(model, vocab, masks[0][0][0], masks[0][1][0]))
    return sample_text(model, vocab, cfg.sample_chars, cfg.preset.block_size, gen)


def _final_figures(model, vocab, corpus, cfg: PretrainConfig, train, masks, val_loss: float, reference_bpc, gen) -> tuple:
    """(val bits/char, the pretrained model's on the same text or None, the objective's own figures).
    Next-token: every character of the val snippet. Masked: bits per masked character on the fixed val
    windows the curve uses, fill-in accuracy against a no-context guess, and a left-to-right attempt."""
    extra: dict = {"objective": cfg.objective}
    if masks is not None:
        extra.update(fill_in_accuracy=round(fill_in_accuracy(model, masks), 4), unigram_accuracy=round(unigram_accuracy(train, masks), 4),
                     left_to_right=write_left_to_right(model, vocab, min(cfg.sample_chars, 80), cfg.preset.block_size, gen))
        return val_loss / LN2, None, extra
    snippet = corpus.val[:VAL_SNIPPET_CHARS]
    ref = reference_bpc(snippet) if reference_bpc is not None else None
    return scratch_bpc(model, vocab, snippet, cfg.preset.block_size), ref, extra


