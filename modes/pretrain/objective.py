"""What pre-training optimises, read off the pretrained model: every token's next-token loss (and the
model's top guesses for it), their mean, perplexity and bits per character. Pure compute; no Gradio."""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass

import torch

from modes.metrics import bits_per_char

TOP_K = 5


@dataclass
class TokenLossResult:
    tokens: list[dict]  # {token, loss, top: [[token, prob], ...]} for every token after <bos>
    mean_loss: float  # nats per token
    perplexity: float
    bits_per_char: float
    n_chars: int

    def as_dict(self) -> dict:
        return asdict(self)


@torch.no_grad()
def token_losses(model, tokenizer, text: str, top_k: int = TOP_K) -> TokenLossResult:
    """Next-token loss of every token of `text` under `model`, with the model's top-k guesses."""
    enc = tokenizer(text, return_tensors="pt", add_special_tokens=True)
    ids = enc["input_ids"].to(model.device)  # [1, n]; ids[0, 0] is <bos> for Gemma
    if ids.shape[1] < 2:
        raise ValueError("text has no tokens after the start token")
    logits = model(input_ids=ids).logits[0, :-1].float()  # [n-1, vocab]: position i predicts token i+1
    logp = torch.log_softmax(logits, dim=-1)
    target = ids[0, 1:]
    losses = -logp.gather(1, target[:, None])[:, 0]  # [n-1]
    top_p, top_i = logp.exp().topk(top_k, dim=-1)
    rows = []
    for j in range(target.shape[0]):
        rows.append(
            {
                "token": tokenizer.decode([int(target[j])]),
                "loss": round(float(losses[j]), 4),
                "top": [[tokenizer.decode([int(i)]), round(float(p), 4)] for p, i in zip(top_p[j], top_i[j])],
            }
        )
    total = float(losses.sum())
    mean = total / len(rows)
    return TokenLossResult(rows, round(mean, 4), round(math.exp(mean), 3), round(bits_per_char(total, len(text)), 4), len(text))
