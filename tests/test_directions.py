"""Few-shot prompts follow the direction, through every door: the UI handler, the API with its
defaults, and the API with an explicit (English, Korean) pool. A tiny model; the prompt is what counts."""

from __future__ import annotations

import json

import pytest

from modes.data import translation as task
from modes.incontext import inputs
from tests.conftest import served_app

TEXT = {"en-ko": "Where is the nearest bus stop?", "ko-en": "가장 가까운 버스 정류장이 어디예요?"}


@pytest.fixture(scope="module")
def served(tiny_tokenizer):

    with served_app(tokenizer=tiny_tokenizer) as s:
        yield s.demo, s.client()


def has_hangul(s: str) -> bool:
    return task.hangul_share(s) > 0


def check_prompt(prompt: str, direction: str, k: int, text: str) -> None:
    """Every example's source line is in the source language, its target in the other; the query is last."""
    src_lang, tgt_lang = task.DIRECTIONS[direction][:2]
    blocks = prompt.split(task.EXAMPLE_SEPARATOR)
    assert len(blocks) == k + 1
    assert blocks[-1] == f"{src_lang}: {text}\n{tgt_lang}:"
    for block in blocks[:-1]:
        src_line, tgt_line = block.split("\n")
        assert src_line.startswith(f"{src_lang}: ") and tgt_line.startswith(f"{tgt_lang}: ")
        src, tgt = src_line.split(": ", 1)[1], tgt_line.split(": ", 1)[1]
        assert has_hangul(src) == (direction == "ko-en"), block
        assert has_hangul(tgt) == (direction == "en-ko"), block


def ui_handler(demo):
    return next(f.fn for f in demo.fns.values() if f.api_name == "translate")


@pytest.mark.parametrize("door", ["ui", "api-defaults", "api-pool"])
@pytest.mark.parametrize("k", [0, 1, 4])
@pytest.mark.parametrize("direction", ["en-ko", "ko-en"])
def test_fewshot_prompt_follows_the_direction(served, direction, k, door):
    demo, client = served
    text = TEXT[direction]
    if door == "ui":  # the handler as the button calls it, with the table exactly as the page shows it
        args = [text, direction, k, "random", 0, False, task.DEFAULT_TEMPLATE, 0.0, 1.0, 4, inputs.default_pool(), None]
        out = list(ui_handler(demo)(*args))[-1][-1]
    elif door == "api-defaults":
        out = client.predict(text=text, direction=direction, k=k, max_new_tokens=4, api_name="/translate")[-1]
    else:
        rows = [["Thank you very much.", "정말 고마워요."], ["The weather is nice today.", "오늘 날씨가 좋네요."],
                ["I like green tea.", "저는 녹차를 좋아해요."], ["See you tomorrow.", "내일 봐요."], ["Good night.", "잘 자요."]]
        pool = {"headers": ["English", "Korean"], "data": rows}
        out = client.predict(text=text, direction=direction, k=k, max_new_tokens=4, pool=pool, api_name="/translate")[-1]
        assert out["pool"] == "given"
        for block in out["prompt"].split(task.EXAMPLE_SEPARATOR)[:-1]:
            assert any(en in block and ko in block for en, ko in rows)  # the caller's own rows, oriented
    check_prompt(out["prompt"], direction, k, text)
    assert out["direction"] == direction and out["pool_warnings"] == []


def test_api_schema_carries_no_pool_rows(served):
    _, client = served
    params = client.view_api(print_info=False, return_format="dict")["named_endpoints"]["/translate"]["parameters"]
    pool = next(p for p in params if p["parameter_name"] == "pool")
    assert pool["parameter_default"]["data"] == []


def test_switching_direction_keeps_the_pool_and_its_edits():
    edited = inputs.default_pool()
    edited.iloc[0] = ["My cat sleeps all day.", "우리 고양이는 하루 종일 자요."]
    rows, _ = inputs.pool_from_table(edited, "en")
    for direction in task.DIRECTIONS:
        prefix, _, examples = task.fewshot_prompt(direction, TEXT[direction], 1, rows, "first")
        want = "My cat sleeps all day." if direction == "en-ko" else "우리 고양이는 하루 종일 자요."
        assert examples[0].source == want and want in prefix


def test_flagged_rows_reach_the_api_caller(served):
    _, client = served
    rows = [["Thank you.", "고마워요."], ["Good night.", "Good night."], ["See you.", "또 봐요."]]
    out = client.predict(text="Hello.", direction="en-ko", k=3, max_new_tokens=2, selection="first",
                         pool={"headers": ["English", "Korean"], "data": rows}, api_name="/translate")[-1]
    assert out["pool_warnings"] == [2]


def test_a_pool_in_other_columns_is_refused_clearly(served):
    _, client = served
    with pytest.raises(Exception, match="needs the columns English and Korean"):
        client.predict(text="Hello.", k=1, pool={"headers": ["source", "target"], "data": [["Hi.", "안녕."]]}, api_name="/translate")


@pytest.mark.parametrize("lang", ["en", "ko"])
@pytest.mark.parametrize("which", ["dev_pairs", "dev2_pairs"])
def test_the_dev_set_shares_no_near_duplicate_with_the_built_in_pairs(lang, which):
    """The recipe is chosen on sentences unlike the built-in ones: char 3-gram Jaccard < 0.7 against every built-in pair
    (training and held-out), and the two dev sets share none either."""
    from modes.data import translation as tr

    direction = "en-ko" if lang == "en" else "ko-en"
    dev = getattr(tr, which)(direction)
    assert len(dev) >= (100 if which == "dev_pairs" else 64) and len({p.source for p in dev}) == len(dev)
    other = tr.dev2_pairs(direction) if which == "dev_pairs" else tr.dev_pairs(direction)
    built = [tr.ngrams(r[lang]) for r in tr.load_pairs()] + [tr.ngrams(p.source) for p in tr.heldout_pairs(direction) + other]
    for p in dev:
        q = tr.ngrams(p.source)
        worst = max(len(q & b) / len(q | b) for b in built)
        assert worst < 0.7, (p.source, worst)
        assert (tr.hangul_share(p.source) > 0.5) == (lang == "ko") and (tr.hangul_share(p.target) > 0.5) == (lang == "en")


@pytest.mark.parametrize("lang", ["en", "ko"])
def test_the_extra_training_pairs_share_no_near_duplicate_with_held_out_or_dev(lang):
    from modes.data import translation as tr

    direction = "en-ko" if lang == "en" else "ko-en"
    more = tr.more_pairs(direction)
    assert len(more) >= 2_500 and len({p.source.lower() for p in more}) == len(more)
    first = {json.loads(line)[lang].lower() for line in tr.PAIRS_FILE.read_text(encoding="utf-8").splitlines() if line.strip()}
    assert not [p.source for p in more if p.source.lower() in first]  # none repeats one of the first 485 pairs
    others = [tr.ngrams(p.source) for p in tr.pairs_for(direction, "test") + tr.dev_pairs(direction)]
    for p in more:
        q = tr.ngrams(p.source)
        assert max(len(q & o) / len(q | o) for o in others) < 0.7, p.source


@pytest.mark.parametrize("lang", ["en", "ko"])
def test_the_held_out_split_shares_no_near_duplicate_with_training(lang):
    """Held-out scores measure translation, not recall: no held-out sentence (the test split and the extra held-out
    pairs) is within char 3-gram Jaccard 0.7 of any training sentence (the first 485 pairs' train split and the
    extra training pairs)."""
    from modes.data import translation as tr

    extra = [json.loads(line) for line in tr.HELDOUT_FILE.read_text(encoding="utf-8").splitlines() if line.strip()]
    train, test = tr.load_pairs("train"), tr.load_pairs("test") + extra
    assert len(train) >= 3_000 and len(test) >= 200 and len(tr.heldout_pairs("ko-en")) == len(test)
    assert not {r["en"] for r in extra} & {r["en"] for r in tr.load_pairs()}  # the extra held-out pairs are in no split
    assert len([r for r in train if r["id"] >= 485]) == len(tr.more_pairs("en-ko"))  # the extra pairs are training pairs
    grams = [tr.ngrams(r[lang]) for r in train]
    for r in test:
        q = tr.ngrams(r[lang])
        assert max(len(q & g) / len(q | g) for g in grams) < 0.7, r[lang]
