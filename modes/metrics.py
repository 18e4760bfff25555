"""Metrics and proofs shared by every tab: chrF, bits per character, and the weights hash.

Plain functions of models, tokenizers and strings; no Gradio, and no tab imports them from another tab.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F


def chrf(hyps: list[str], refs: list[str]) -> float:
    """Corpus chrF (sacrebleu), rounded to 2 decimals."""
    import sacrebleu

    return round(sacrebleu.corpus_chrf(hyps, [refs]).score, 2)


def chrf_lead(hyps: list[str], base_hyps: list[str], refs: list[str], resamples: int = 1000, seed: int = 0) -> dict:
    """How far `hyps` lead `base_hyps` in corpus chrF on the same sentences, and how sure that is: a paired
    bootstrap (sacrebleu's method: resample the sentences with replacement, score both sides on each resample)
    gives the 95% interval of the lead. {"lead", "low", "high", "ahead": share of resamples where hyps lead}.
    With a few dozen sentences one sentence moves chrF by about a point, so a lead of 1 is often noise."""
    import numpy as np
    from sacrebleu.metrics import CHRF

    m = CHRF()
    a = np.array(m._extract_corpus_statistics(hyps, [refs]), dtype=np.int64)  # [n, stats]: chrF sums its stats
    b = np.array(m._extract_corpus_statistics(base_hyps, [refs]), dtype=np.int64)
    score = lambda st: m._compute_score_from_stats(list(st)).score
    lead = score(a.sum(0)) - score(b.sum(0))
    rng = np.random.default_rng(seed)
    idx = rng.integers(0, len(refs), size=(resamples, len(refs)))
    diffs = np.array([score(a[i].sum(0)) - score(b[i].sum(0)) for i in idx])
    return {"lead": round(float(lead), 2), "low": round(float(np.percentile(diffs, 2.5)), 2),
            "high": round(float(np.percentile(diffs, 97.5)), 2), "ahead": round(float((diffs > 0).mean()), 3)}


def bits_per_char(total_nats: float, n_chars: int) -> float:
    """Total next-token loss (nats) over a text, in bits per character of that text."""
    if n_chars <= 0:
        raise ValueError("n_chars must be positive")
    return total_nats / math.log(2) / n_chars


@torch.no_grad()
def pretrained_bpc(model, tokenizer, text: str, window: int = 512) -> float:
    """The pretrained model's bits/char on `text`, in windows of `window` tokens (each with <bos>)."""
    ids = tokenizer(text, add_special_tokens=False)["input_ids"]
    bos = tokenizer.bos_token_id
    total = 0.0
    for s in range(0, len(ids), window):
        chunk = torch.tensor([[bos, *ids[s : s + window]]], device=model.device)
        logits = model(input_ids=chunk).logits[0, :-1].float()
        total += float(F.cross_entropy(logits, chunk[0, 1:], reduction="sum"))
    return bits_per_char(total, len(text))


def weights_hash(model) -> str:
    """xxh3-128 over every parameter's bytes, in name order: any changed value changes it."""
    import xxhash

    h = xxhash.xxh3_128()
    for name, p in sorted(model.named_parameters(), key=lambda kv: kv[0]):
        h.update(name.encode())
        t = p.detach().cpu().contiguous()
        # bf16 has no numpy dtype: hash its raw 2-byte words (no float32 copy: 0.05 s instead of 1.8 s at 270M).
        h.update((t.view(torch.int16) if t.dtype == torch.bfloat16 else t).numpy().data)
    return h.hexdigest()
