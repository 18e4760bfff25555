"""BERT's objective, for the pre-training tab: hide some characters and predict them from both sides.

The corruption recipe (mask_batch), the fixed held-out masks every estimate scores, the fill-in view
of one window (guesses right or wrong), fill-in accuracy against a no-context guess, and what a masked
model "writes" left to right. Pure tensor functions; core.train_scratch runs them when
`objective="masked"`. A vocabulary here is anything with encode/decode, `mask_id` and len().
"""

from __future__ import annotations

import re

import torch

MASK = "\ue000"  # the mask symbol: a private-use character no corpus holds (shown as MASK_SHOWN)
MASK_SHOWN = "▢"


def mask_batch(clean: torch.Tensor, rate: float, mask_id: int, n_chars: int, gen: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
    """BERT's corruption of [B, T] character ids: each position is picked with probability `rate`
    (at least one per row); a picked one becomes the mask symbol 80% of the time, a random character
    10%, and stays as it is 10%. Returns (input ids, labels: the original id where picked, else -100)."""
    picked = torch.rand(clean.shape, generator=gen) < rate
    none = ~picked.any(dim=1)
    if none.any():  # a row with nothing to predict teaches nothing: pick one position in it
        picked[none, torch.randint(clean.shape[1], (int(none.sum()),), generator=gen)] = True
    roll = torch.rand(clean.shape, generator=gen)
    x = clean.clone()
    x[picked & (roll < 0.8)] = mask_id
    rand = picked & (roll >= 0.8) & (roll < 0.9)
    x[rand] = torch.randint(n_chars, (int(rand.sum()),), generator=gen)  # n_chars excludes the mask symbol
    labels = torch.where(picked, clean, torch.full_like(clean, -100))
    return x, labels


def fixed_masks(val: torch.Tensor, starts: torch.Tensor, block: int, batch: int, cfg, vocab) -> list:
    """The val windows' corruption, drawn once (seeded): [(x, labels)] per eval batch."""
    gen = torch.Generator().manual_seed(cfg.seed + 3)
    out = []
    for i in range(0, len(starts), batch):
        clean = torch.stack([val[j : j + block] for j in starts[i : i + batch]])
        out.append(mask_batch(clean, cfg.mask_rate, vocab.mask_id, len(vocab) - 1, gen))
    return out


@torch.no_grad()
def fill_in(model, vocab, x: torch.Tensor, labels: torch.Tensor) -> list[tuple[str, bool | None]]:
    """One corrupted window's fill-in: [(character shown, right?)] where right is None for a character
    the model was not asked about, and the guess at a masked position is shown with True/False."""
    model.eval()
    guess = model.lm_head(model.model(input_ids=x[None].to(model.device)).last_hidden_state)[0].argmax(-1).cpu()
    model.train()
    return [(vocab.decode([int(x[t])]) if int(lab) == -100 else vocab.decode([int(guess[t])]),
             None if int(lab) == -100 else bool(int(guess[t]) == int(lab))) for t, lab in enumerate(labels)]


def fill_in_text(spans: list[tuple[str, bool | None]]) -> str:
    """A fill-in as one line of text: guesses in brackets, ✓ right or ✗ wrong ("to b[e]✓ or n[i]✗t")."""
    return "".join(ch if ok is None else f"[{ch}]{'✓' if ok else '✗'}" for ch, ok in spans).replace(MASK, MASK_SHOWN)


def parse_fill_in(text: str) -> list[tuple[str, bool | None]]:
    """fill_in_text's line back to spans (for the coloured view of a streamed sample)."""
    out, pos = [], 0
    for m in re.finditer(r"\[(.)\]([✓✗])", text, flags=re.S):
        out += [(c, None) for c in text[pos : m.start()]]
        out.append((m.group(1), m.group(2) == "✓"))
        pos = m.end()
    return out + [(c, None) for c in text[pos:]]


@torch.no_grad()
def fill_in_accuracy(model, masks: list) -> float:
    """Share of the val windows' masked characters the model guesses exactly (argmax)."""
    model.eval()
    right = total = 0
    for x, labels in masks:
        guess = model.lm_head(model.model(input_ids=x.to(model.device)).last_hidden_state).argmax(-1).cpu()
        keep = labels != -100
        right += int((guess[keep] == labels[keep]).sum())
        total += int(keep.sum())
    model.train()
    return right / max(total, 1)


def unigram_accuracy(train: torch.Tensor, masks: list) -> float:
    """The same share for a guesser with no context: always the training text's commonest character."""
    top = int(torch.bincount(train).argmax())
    labels = torch.cat([lab[lab != -100] for _, lab in masks])
    return float((labels == top).float().mean()) if len(labels) else 0.0


@torch.no_grad()
def write_left_to_right(model, vocab, n_chars: int, block: int, gen: torch.Generator, prompt: str = "\n",
                        temperature: float = 0.8) -> str:
    """What a masked model "writes": a mask appended after the text so far, filled, again and again.
    It never trained with nothing to the right of a hidden character, so this shows why BERT-style
    models are not used to generate text left to right."""
    ids = vocab.encode(prompt).tolist()
    out: list[int] = []
    model.eval()
    for _ in range(n_chars):
        ctx = (ids + out)[-(block - 1):] + [vocab.mask_id]
        h = model.model(input_ids=torch.tensor([ctx], device=model.device)).last_hidden_state[:, -1]
        logits = model.lm_head(h).float()[0]
        logits[vocab.mask_id] = -float("inf")  # the mask symbol is never a character of the text
        out.append(int(torch.multinomial(torch.softmax(logits / temperature, -1).cpu(), 1, generator=gen)))
    model.train()
    return vocab.decode(out)
