"""The tiny model pre-training trains from scratch, and its character tools: the character vocabulary, a
fresh small Gemma 3 (causal for GPT's objective, bidirectional for BERT's), sampling from it with a KV cache,
and its bits per character on a text, scored like the pretrained model's. Pure compute; no Gradio."""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F

from modes.pretrain.masked import MASK

LN2 = math.log(2.0)


class CharVocab:
    """Character-level vocabulary: one id per distinct character of the corpus (and the mask symbol,
    last, when `mask` is set: the character ids of the two objectives' runs then agree)."""

    def __init__(self, text: str, mask: bool = False):
        self.chars = sorted(set(text) - {MASK}) + ([MASK] if mask else [])
        self.stoi = {c: i for i, c in enumerate(self.chars)}
        self.mask_id = self.stoi.get(MASK)

    def __len__(self) -> int:
        return len(self.chars)

    def encode(self, text: str) -> torch.Tensor:
        """The ids of `text`'s characters; a character outside the vocabulary reads as a space (or id 0). One table
        lookup over the code points: a per-character dict lookup took ~1 s of every run on the 1 MB corpus."""
        import numpy as np

        unk = self.stoi.get(" ", 0)
        if "_table" not in self.__dict__:  # code point -> id, up to the largest code point in the vocabulary
            self._table = np.full(max(map(ord, self.chars), default=0) + 2, unk, dtype=np.int64)
            self._table[[ord(c) for c in self.chars]] = np.arange(len(self.chars))
        cps = np.frombuffer(text.encode("utf-32-le"), dtype=np.uint32)
        return torch.from_numpy(self._table[np.minimum(cps, len(self._table) - 1)])

    def decode(self, ids) -> str:
        return "".join(self.chars[int(i)] for i in ids)


VAL_SNIPPET_CHARS = 4_000  # the val text both models are scored on (the 270M model reads it in ~2 s)


def scratch_model(loader, vocab_size: int, n_layer: int, n_head: int, n_embd: int, block_size: int, seed: int = 0,
                  bidirectional: bool = False):
    """A freshly initialised small Gemma 3 (same family as the pretrained model), on the loader's device.
    `bidirectional`: every position attends to the whole window (BERT's encoder), not only to the left."""
    loader.libraries()
    from transformers import Gemma3ForCausalLM, Gemma3TextConfig

    cfg = Gemma3TextConfig(
        vocab_size=vocab_size,
        hidden_size=n_embd,
        intermediate_size=((8 * n_embd // 3 + 7) // 8) * 8,  # gated MLP at nanoGPT's 4x parameter budget
        num_hidden_layers=n_layer,
        num_attention_heads=n_head,
        num_key_value_heads=1,  # one shared K/V head, as Gemma 3 270M has (and ~10% faster steps on CPU)
        head_dim=n_embd // n_head,
        query_pre_attn_scalar=n_embd // n_head,
        max_position_embeddings=block_size,
        sliding_window=block_size,  # the window covers the whole block, so every layer sees it all
        layer_types=["full_attention"] * n_layer,
        pad_token_id=0,
        bos_token_id=None,
        eos_token_id=None,
        tie_word_embeddings=True,
        attn_implementation="sdpa",
        use_cache=False,
        use_bidirectional_attention=bidirectional,
    )
    torch.manual_seed(seed)
    return Gemma3ForCausalLM(cfg).to(loader.resolved_device())


@torch.no_grad()
def sample_text(model, vocab: CharVocab, n_chars: int, block: int, gen: torch.Generator, prompt: str = "\n", temperature: float = 0.8) -> str:
    """Sample characters from the scratch model with a KV cache: one position per character instead of
    re-reading the whole context (0.29 s -> about 0.1 s for 160 characters at `baby`). Positions never
    pass the block the model was trained on: at the block's end the last half-block is read afresh."""
    from transformers import DynamicCache

    ids = vocab.encode(prompt).to(model.device)[None]  # [1, T]
    out: list[int] = []
    cache, fed = None, 0  # fed: positions in the cache
    nxt = None
    for _ in range(n_chars):
        if cache is None or fed >= block:
            ctx = torch.cat([ids, torch.tensor([out], dtype=torch.long, device=ids.device)], 1) if out else ids
            ctx = ctx[:, -(block // 2 if cache is not None else block):]
            cache = DynamicCache(config=model.config)
            h = model.model(input_ids=ctx, cache=cache, use_cache=True).last_hidden_state[:, -1]
            fed = ctx.shape[1]
        else:
            h = model.model(input_ids=nxt, cache=cache, use_cache=True).last_hidden_state[:, -1]
            fed += 1
        probs = torch.softmax(model.lm_head(h).float() / temperature, dim=-1)
        nxt = torch.multinomial(probs.cpu(), 1, generator=gen).to(ids.device)  # [1, 1]
        out.append(int(nxt))
    return vocab.decode(out)


@torch.no_grad()
def scratch_bpc(model, vocab: CharVocab, text: str, block: int) -> float:
    """The scratch model's bits/char on `text`: windows of `block` chars with half-block overlap,
    each character scored once, with at least half a block of context after the first window."""
    ids = vocab.encode(text).to(model.device)
    model.eval()
    total, counted, half = 0.0, 0, block // 2
    start = 0
    while True:
        chunk = ids[start : start + block + 1]
        if len(chunk) < 2:
            break
        logits = model.lm_head(model.model(input_ids=chunk[None, :-1]).last_hidden_state)[0].float()
        losses = F.cross_entropy(logits, chunk[1:], reduction="none")
        skip = 0 if start == 0 else half  # the first half was already scored by the previous window
        total += float(losses[skip:].sum())
        counted += len(losses) - skip
        if start + block + 1 >= len(ids):
            break
        start += half
    # The first character has no context: it is not predicted by either model, so both skip it.
    return total / LN2 / max(counted, 1)
