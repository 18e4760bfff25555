"""Packed CPU linears (modes/serving/packed.py): bitwise the same numbers as plain nn.Linear in bf16 for two or
more rows (a lone row is computed as a pair, so it matches its row in any batch), a packed copy that
follows weight changes, and plain F.linear wherever packing does not apply."""

from __future__ import annotations

import copy

import pytest
import torch

from modes.serving import packed
from tests.conftest import make_tiny_model

PACKS = pytest.mark.skipif(not packed.available(), reason="oneDNN cannot pack bf16 weights on this CPU (it needs avx512bw/vl/dq or avx_ne_convert)")


def _pair(tok, dtype=torch.bfloat16):
    plain = make_tiny_model(len(tok), seed=5).to(dtype)
    fast = copy.deepcopy(plain)
    assert packed.pack(fast) > 0
    return plain, fast


def _ids(tok, texts):
    enc = tok(texts, return_tensors="pt", padding=True)
    return enc["input_ids"], enc["attention_mask"]


def test_packed_bf16_logits_are_bitwise_equal_and_a_lone_row_matches_its_batch(tiny_tokenizer):
    plain, fast = _pair(tiny_tokenizer)
    ids, mask = _ids(tiny_tokenizer, ["English: Where is the station?\nKorean:", "Now, fair Hippolyta"])
    with torch.no_grad():
        assert torch.equal(plain(input_ids=ids, attention_mask=mask).logits, fast(input_ids=ids, attention_mask=mask).logits)
        # One row is computed as a pair: 2+ rows give every row the same bits, 1 row takes another kernel.
        for lin in (fast.lm_head, fast.model.layers[0].mlp.down_proj):
            x = torch.randn(64, lin.in_features).to(torch.bfloat16)
            batch = lin(x)
            assert all(torch.equal(lin(x[j : j + 1])[0], batch[j]) for j in range(64))
            assert torch.equal(lin(x[:2]), plain.get_submodule(_name(fast, lin))(x[:2]))
    # it really ran the packed path where oneDNN packs bf16 (the pair fallback elsewhere)
    assert (packed.packed_bytes(fast) > 0) == packed.available() and packed.packed_bytes(plain) == 0
    assert fast.state_dict().keys() == plain.state_dict().keys()  # saving and hashing see the same model


def _name(model, module) -> str:
    return next(n for n, m in model.named_modules() if m is module)


@PACKS
def test_a_changed_weight_is_repacked(tiny_tokenizer):
    plain, fast = _pair(tiny_tokenizer)
    ids, _ = _ids(tiny_tokenizer, ["The weather is nice today."])
    with torch.no_grad():
        fast(input_ids=ids)  # packs
        for m in (plain, fast):
            m.model.layers[0].mlp.down_proj.weight.mul_(3)  # in place, as a test or a merge would
            m.lm_head.weight.view(-1)[:50] += 0.5  # the tied LM head / embedding
        assert torch.equal(plain(input_ids=ids).logits, fast(input_ids=ids).logits)


def test_training_and_float32_take_the_plain_path(tiny_tokenizer):
    plain, fast = _pair(tiny_tokenizer)
    ids, _ = _ids(tiny_tokenizer, ["Where is the station?"])
    out = fast(input_ids=ids, labels=ids)  # grad enabled: plain F.linear, so backward works
    out.loss.backward()
    assert fast.model.layers[0].mlp.up_proj.weight.grad is not None
    assert packed.packed_bytes(fast) == 0
    plain32, fast32 = _pair(tiny_tokenizer, torch.float32)
    with torch.no_grad():
        assert torch.equal(plain32(input_ids=ids).logits, fast32(input_ids=ids).logits)
    assert packed.packed_bytes(fast32) == 0  # float32 packing is not bitwise-equal, so it is not used


def test_a_merged_lora_on_a_packed_base_serves_the_same_numbers(tiny_tokenizer):
    from peft import LoraConfig, get_peft_model

    plain, fast = _pair(tiny_tokenizer)
    cfg = LoraConfig(r=2, target_modules=["q_proj", "v_proj"], init_lora_weights=False, task_type="CAUSAL_LM")
    torch.manual_seed(0)
    a = get_peft_model(copy.deepcopy(plain).float(), cfg).merge_and_unload().to(torch.bfloat16)
    torch.manual_seed(0)
    b = get_peft_model(copy.deepcopy(fast).float(), cfg).merge_and_unload().to(torch.bfloat16)
    ids, _ = _ids(tiny_tokenizer, ["I would like a cup of coffee, please."])
    with torch.no_grad():
        assert torch.equal(a(input_ids=ids).logits, b(input_ids=ids).logits)
    assert (packed.packed_bytes(b) > 0) == packed.available()  # the merged copy of a packed base is packed too


def test_the_engine_decodes_the_same_tokens_on_a_packed_model(tiny_tokenizer):
    """Batched bf16 rows through the engine: packing changes the speed, not one token."""
    from modes.serving.engine import Engine
    from tests.test_engine import PREFIXES, QUERIES, run_all

    plain, fast = _pair(tiny_tokenizer)
    pairs = [(p, q) for p in PREFIXES for q in QUERIES]
    got = run_all(Engine(max_rows=8), fast, tiny_tokenizer, pairs, max_new=24)
    assert got == run_all(Engine(max_rows=8), plain, tiny_tokenizer, pairs, max_new=24)
    assert any(got) and (packed.packed_bytes(fast) > 0) == packed.available()


def test_a_served_adapter_shares_the_base_weights_it_did_not_change(tiny_tokenizer):
    """A merged adapter keeps only its LoRA targets' weights; the rest (the tied embedding and LM head
    included) is the base's own Parameter, with one packed copy, and the numbers are unchanged."""
    from peft import LoraConfig, get_peft_model

    from modes.model.adapters import merged_copy

    plain, base = _pair(tiny_tokenizer)
    cfg = LoraConfig(r=2, target_modules=["q_proj"], init_lora_weights=False, task_type="CAUSAL_LM")
    torch.manual_seed(1)
    peft_model = get_peft_model(copy.deepcopy(plain).float(), cfg)
    unshared = copy.deepcopy(peft_model).merge_and_unload().to(torch.bfloat16)
    served = merged_copy(peft_model, base)
    assert served.lm_head.weight is base.lm_head.weight and served.model.embed_tokens.weight is base.model.embed_tokens.weight
    assert served.model.layers[0].mlp.down_proj.weight is base.model.layers[0].mlp.down_proj.weight
    assert served.model.layers[0].self_attn.q_proj.weight is not base.model.layers[0].self_attn.q_proj.weight
    assert isinstance(served.model.layers[0].self_attn.q_proj, packed.PackedLinear)
    from modes.serving import rowwise

    assert rowwise.use(base) and merged_copy(peft_model, base).config._attn_implementation == rowwise.NAME
    ids, _ = _ids(tiny_tokenizer, ["My sister lives in Busan."])
    with torch.no_grad():
        assert torch.equal(served(input_ids=ids).logits, unshared(input_ids=ids).logits)
        assert not torch.equal(served(input_ids=ids).logits, base(input_ids=ids).logits)  # the adapter still acts
