"""Row-wise attention (modes/serving/rowwise.py): the same attention as sdpa, and in bf16 a row's numbers do not
depend on the batch it shares (with packed linears), in a forward and through the engine."""

from __future__ import annotations

import pytest
import torch

from modes.serving import packed, rowwise
from modes.serving.engine import Engine
from tests.conftest import make_tiny_model
from tests.test_engine import PREFIXES, QUERIES, run_all

TEXTS = ["English: Where is the station?\nKorean:", "Now", "English: I would like a cup of coffee, please.\nKorean: 커피",
         "The weather is nice today. The weather is nice today. The weather"]


def _left_padded(tok, texts):
    rows = [tok(t, add_special_tokens=True)["input_ids"] for t in texts]
    L = max(map(len, rows))
    ids = torch.full((len(rows), L), tok.pad_token_id)
    mask = torch.zeros((len(rows), L), dtype=torch.long)
    for i, r in enumerate(rows):
        ids[i, L - len(r):], mask[i, L - len(r):] = torch.tensor(r), 1
    pos = (mask.cumsum(1) - 1).clamp(min=0)
    return rows, ids, mask, pos


def _model(tok, dtype, window=512, rows=True):
    m = make_tiny_model(len(tok), seed=7, sliding_window=window).to(dtype)
    packed.pack(m)
    if rows:
        assert rowwise.use(m)
    return m


@pytest.mark.parametrize("window", [512, 3])  # 3: rows run past the sliding window
def test_rowwise_attention_computes_what_sdpa_computes(tiny_tokenizer, window):
    rows, ids, mask, pos = _left_padded(tiny_tokenizer, TEXTS)
    a, b = _model(tiny_tokenizer, torch.float32, window), _model(tiny_tokenizer, torch.float32, window, rows=False)
    with torch.no_grad():
        la = a(input_ids=ids, attention_mask=mask, position_ids=pos).logits
        lb = b(input_ids=ids, attention_mask=mask, position_ids=pos).logits
    real = mask.bool()
    assert torch.allclose(la[real], lb[real], atol=1e-5, rtol=1e-4)


@pytest.mark.parametrize("window", [512, 3])
def test_bf16_row_gives_the_same_bits_alone_and_in_a_padded_batch(tiny_tokenizer, window):
    model = _model(tiny_tokenizer, torch.bfloat16, window)
    rows, ids, mask, pos = _left_padded(tiny_tokenizer, TEXTS)
    with torch.no_grad():
        batch = model(input_ids=ids, attention_mask=mask, position_ids=pos).logits[:, -1]
        for i, r in enumerate(rows):
            alone = model(input_ids=torch.tensor([r])).logits[0, -1]
            assert torch.equal(alone, batch[i]), f"row {i}"


@pytest.mark.parametrize("window", [512, 12])
def test_bf16_engine_rows_decode_the_same_alone_and_batched(tiny_tokenizer, window):
    model = _model(tiny_tokenizer, torch.bfloat16, window)
    pairs = [(p, q) for p in PREFIXES for q in QUERIES]
    batched = run_all(Engine(max_rows=8), model, tiny_tokenizer, pairs, max_new=24)
    assert batched == run_all(Engine(max_rows=1), model, tiny_tokenizer, pairs, max_new=24)
    assert any(batched)


def test_only_sdpa_models_switch(tiny_tokenizer):
    m = make_tiny_model(len(tiny_tokenizer))
    m.set_attn_implementation("eager")
    assert not rowwise.use(m)
    assert m.config._attn_implementation == "eager"
