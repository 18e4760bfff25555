"""In-context learning: prompt builder, pool hygiene, prefix reuse equals plain greedy, no weight change."""

from __future__ import annotations

import gradio as gr
import pandas as pd
import pytest
import torch

from modes.data import translation as task
from modes.data.translation import DataError, Pair
from modes.incontext import core as ic
from modes.incontext import inputs
from modes.incontext import tab as incontext
from modes.serving.engine import stop_ids

T = task.DEFAULT_TEMPLATE


def test_prompt_builder_on_plain_strings():
    ex = [Pair("Hello.", "안녕하세요."), Pair("Thanks.", "고마워요.")]
    p = task.build_fewshot_prompt(T, "en-ko", ex, "Good night.")
    assert p == ("English: Hello.\nKorean: 안녕하세요.\n\nEnglish: Thanks.\nKorean: 고마워요.\n\n"
                 "English: Good night.\nKorean:")
    assert task.build_fewshot_prompt(T, "ko-en", [], "안녕") == "Korean: 안녕\nEnglish:"
    assert task.render_target(T, "en-ko", "Hi", "안녕") == " 안녕\n"
    prefix, query = task.split_prompt(T, "en-ko", ex, "Good night.")
    assert prefix + query == p and query == "English: Good night.\nKorean:"
    custom = "Q: {source}\nA ({tgt_lang}):{target}"
    assert task.build_fewshot_prompt(custom, "en-ko", ex[:1], "Hi") == "Q: Hello.\nA (Korean):안녕하세요.\n\nQ: Hi\nA (Korean):"


@pytest.mark.parametrize("template, key", [("no slots", "err_template_source"), ("{source} only", "err_template_target"),
                                           ("{source} {target} {oops}", "err_template_format")])
def test_template_without_slots_is_rejected(template, key):
    with pytest.raises(DataError) as e:
        task.check_template(template)
    assert e.value.key == key


def test_pool_never_contains_a_heldout_pair():
    pool = inputs.default_pool()
    assert list(pool.columns) == ["English", "Korean"] and len(pool) >= 400
    for d in task.DIRECTIONS:
        test = {p.source for p in task.pairs_for(d, "test")}
        assert not {p.source for p in task.orient(task.builtin_pool(), d)} & test


def test_selection_modes():
    pool = [Pair(f"sentence number {i}", f"문장 {i}") for i in range(20)] + [Pair("Where is the station?", "역은 어디에 있어요?")]
    assert task.select_examples(pool, 3, "first") == pool[:3]
    assert task.select_examples(pool, 3, "random", seed=1) == task.select_examples(pool, 3, "random", seed=1)
    assert task.select_examples(pool, 2, "similar", "Where is the bus station?")[-1] == pool[-1]
    with pytest.raises(ValueError, match="k"):
        task.select_examples(pool, 22, "first")


@pytest.mark.parametrize("window", [64, 512])  # 64: the prompt runs past the sliding window
def test_greedy_same_with_and_without_prefix_reuse(tiny_tokenizer, window):
    from tests.conftest import make_tiny_model

    model, tok = make_tiny_model(len(tiny_tokenizer), sliding_window=window), tiny_tokenizer
    ex = task.pairs_for("en-ko", "train")[:3]
    queries = [task.render_prompt(T, "en-ko", p.source) for p in task.pairs_for("en-ko", "test")[:5]]
    prefix, _ = task.split_prompt(T, "en-ko", ex, "x")
    fast = ic.generate_batch(model, tok, prefix, queries, max_new_tokens=12)
    slow = []
    for q in queries:
        ids = torch.tensor([tok(prefix)["input_ids"] + tok(q, add_special_tokens=False)["input_ids"]])
        g = model.generate(input_ids=ids, attention_mask=torch.ones_like(ids), max_new_tokens=12, do_sample=False,
                           eos_token_id=stop_ids(tok), pad_token_id=tok.pad_token_id)
        slow.append(tok.decode(g[0, ids.shape[1]:], skip_special_tokens=True).split("\n")[0].strip())
    assert fast == slow
    streamed = list(ic.stream_generate(model, tok, prefix, queries[0], max_new_tokens=12))[-1]
    assert streamed.done and streamed.text == slow[0]


def test_weights_unchanged_after_translation(tiny_loader):
    from modes.metrics import weights_hash

    model, tok = tiny_loader.get()
    before = weights_hash(model)
    list(ic.stream_generate(model, tok, "English: Hi\nKorean: 안녕\n\n", "English: Bye\nKorean:", max_new_tokens=8))
    assert weights_hash(model) == before


POOL = pd.DataFrame([["Hi.", "안녕."], ["Bye.", "잘 가요."]], columns=["English", "Korean"])


NAN, INF = float("nan"), float("inf")


@pytest.mark.parametrize(
    "kw, key, field",
    [
        ({"text": ""}, "err_text_empty", None),
        ({"text": "   "}, "err_text_empty", None),
        ({"text": "x" * 501}, "err_text_too_long", None),
        ({"k": 3}, "err_k_pool", None),
        ({"template": "{target} only"}, "err_template_source", None),
        # The config's own checks (the server's one validation path): refused by field name.
        ({"k": 17}, "err_setting", "k"),
        ({"k": "3"}, "err_setting", "k"),
        ({"k": True}, "err_setting", "k"),
        ({"max_new_tokens": 0}, "err_setting", "max_new_tokens"),
        ({"max_new_tokens": 10_000}, "err_setting", "max_new_tokens"),
        ({"direction": "fr-de"}, "err_setting", "direction"),
        ({"temperature": NAN}, "err_setting", "temperature"),
        ({"temperature": INF}, "err_setting", "temperature"),
        ({"top_p": -INF}, "err_setting", "top_p"),
        ({"top_p": NAN}, "err_setting", "top_p"),
        ({"seed": -1}, "err_setting", "seed"),
        ({"selection": None}, "err_setting", "selection"),
    ],
)
def test_bad_translate_inputs_are_rejected(kw, key, field):
    import re

    args = dict(text="Hello", direction="en-ko", k=1, template=T, max_new_tokens=32, pool=POOL)
    args.update(kw)
    pool, _ = inputs.pool_from_table(args.pop("pool"), "en")
    text = args.pop("text")
    with pytest.raises(gr.Error) as e:
        inputs.check_inputs(text, inputs.translate_config("en", **args), pool, "en")
    # The whole message is the key's string, its {slots} filled: a message from another key cannot pass.
    want = re.escape(incontext.ui.strings("en")[key])
    assert re.fullmatch(re.sub(r"\\\{\w+\\\}", ".+", want), e.value.message, re.S), e.value.message
    if field:
        assert e.value.message.startswith(f"Invalid setting: {field}: "), e.value.message


def test_pool_row_with_empty_side_is_rejected():
    bad = pd.DataFrame([["Hi.", "안녕."], ["Bye.", ""]], columns=["English", "Korean"])
    with pytest.raises(gr.Error, match="row 2"):
        inputs.pool_from_table(bad, "en")
    with pytest.raises(gr.Error, match="2번째 행"):
        inputs.pool_from_table(bad, "ko")
    blank_rows_ok = pd.DataFrame([["Hi.", "안녕."], ["", ""]], columns=["English", "Korean"])
    assert inputs.pool_from_table(blank_rows_ok, "en") == ([("Hi.", "안녕.")], [])
    # No rows at all (the API's default, a Gradio table cannot be None) means the built-in pool.
    assert inputs.pool_from_table(pd.DataFrame(columns=["English", "Korean"]), "en") == (None, [])
    assert inputs.pool_from_table(None, "en") == (None, [])


@pytest.mark.parametrize("lang, pattern", [("en", r"needs the columns English and Korean.*Missing: English, Korean.*Found: source, target"),
                                           ("ko", r"English와 Korean 열.*없는 열: English, Korean")])
def test_pool_with_a_missing_column_is_refused_in_the_learners_language(lang, pattern):
    with pytest.raises(gr.Error, match=pattern):
        inputs.pool_from_table(pd.DataFrame([["Hi.", "안녕."]], columns=["source", "target"]), lang)


def test_pool_rows_in_the_wrong_language_are_flagged_and_a_swapped_pool_is_refused():
    mixed = pd.DataFrame([["Hi.", "안녕."], ["Bye.", "Bye."], ["고마워요.", "고마워요."], ["Tea.", "차."]], columns=["English", "Korean"])
    rows, flagged = inputs.pool_from_table(mixed, "en")
    assert len(rows) == 4 and flagged == [2, 3]
    assert "row 2, 3" in inputs.pool_warning(flagged, "en") and "2, 3행" in inputs.pool_warning(flagged, "ko")
    swapped = pd.DataFrame([["안녕.", "Hi."], ["잘 가요.", "Bye."], ["차.", "Tea."]], columns=["English", "Korean"])
    with pytest.raises(gr.Error, match="3 of the 3 pool rows look swapped"):
        inputs.pool_from_table(swapped, "en")


def test_parse_ks():
    assert inputs.parse_ks("8, 0,2,2", "en") == [0, 2, 8]
    for bad in ("", "a,b", "0,99", "-1"):
        with pytest.raises(gr.Error, match="k values must be whole numbers"):
            inputs.parse_ks(bad, "en")
