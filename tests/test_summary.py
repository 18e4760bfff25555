"""The second fine-tune task and the upload path: the built-in dialogues (both languages, a held-out split
with no near-duplicate), the summary prompt and loss mask, a tiny summary fine-tune with translation as
its off-task price, the upload column guesser and picker, and the fine-tune tab's own offline message."""

from __future__ import annotations

import contextlib

import gradio as gr
import pytest

from modes.data import dialogues, pair_files, tasks
from modes.data import translation as tr
from modes.data.translation import Pair
from modes.finetune import core as fc
from modes.finetune import data_panel as ft


def test_the_built_in_dialogues_cover_both_languages_with_a_fixed_held_out_split():
    rows = dialogues.load_dialogues()
    train, test = dialogues.load_dialogues("train"), dialogues.load_dialogues("test")
    assert len(rows) >= 300 and len(test) >= 60 and len(train) + len(test) == len(rows)
    for r in rows:
        for lang in ("en", "ko"):
            turns = r[lang]["dialogue"].splitlines()
            assert 2 <= len(turns) <= 6 and all(": " in t for t in turns)
            assert r[lang]["summary"].strip() and "\n" not in r[lang]["summary"]
        assert len(r["en"]["dialogue"].splitlines()) == len(r["ko"]["dialogue"].splitlines())  # the same dialogue
        assert tr.hangul_share(r["ko"]["summary"]) > 0.5 and tr.hangul_share(r["en"]["summary"]) == 0


@pytest.mark.parametrize("lang", ["en", "ko"])
def test_no_held_out_dialogue_is_a_near_duplicate_of_a_training_one(lang):
    """Char 3-gram Jaccard between every held-out and every training dialogue stays under 0.7."""
    train = [tr.ngrams(p.source) for p in dialogues.pairs_for(lang, "train")]
    for p in dialogues.pairs_for(lang, "test"):
        q = tr.ngrams(p.source)
        worst = max(len(q & t) / len(q | t) for t in train)
        assert worst < 0.7, (p.source, worst)


@pytest.mark.parametrize("lang, head, tail", [("en", "Dialogue:", "Summary:"), ("ko", "대화:", "요약:")])
def test_the_summary_prompt_and_its_loss_mask(tiny_tokenizer, lang, head, tail):
    pair = dialogues.pairs_for(lang, "train")[0]
    pr = tasks.prompting("dialogue-summary", "en-ko", lang)
    prompt = pr.prompt(pair.source)
    assert prompt.startswith(head + "\n") and prompt.endswith("\n" + tail) and pair.source in prompt
    assert pr.target(pair.source, pair.target) == " " + pair.target + "\n" and pr.label == f"summary ({lang})"
    ids, labels = fc.encode_example(tiny_tokenizer, pr, pair, 256)
    learned = [i for i, lab in zip(ids, labels) if lab != -100]
    assert tiny_tokenizer.decode(learned) == " " + pair.target + "\n"  # only the summary is learned
    # Translation's prompt is the in-context tab's k=0 prompt: one template for both tabs.
    t = tasks.prompting("translation", "ko-en", lang)
    assert t.prompt("안녕") == tr.fewshot_prompt("ko-en", "안녕", 0)[1]


@pytest.mark.parametrize("lang", ["en", "ko"])
def test_a_tiny_summary_fine_tune_scores_summaries_and_prices_translation_both_ways(tiny_loader, lang):
    cfg = fc.FinetuneConfig(steps=3, batch_size=4, eval_every=2, r=4, alpha=8, task="dialogue-summary", summary_lang=lang)
    train, test = dialogues.pairs_for(lang, "train")[:16], dialogues.pairs_for(lang, "test")[:4]
    res = list(fc.finetune(tiny_loader, cfg, train, test, off_task=True, shakespeare_val="To be, or not to be.\n" * 20))[-1]
    assert res.steps == 3 and res.chrf_before is not None and res.chrf_after is not None
    assert [e["reference"] for e in res.examples] == [p.target for p in test] and res.adapter.direction == f"summary ({lang})"
    off = res.off_task
    assert set(off["translation_chrf"]) == {"en-ko", "ko-en"} and "reverse_direction" not in off
    assert all(set(v) == {"before", "after"} for v in off["translation_chrf"].values())
    from modes.finetune.offtask import translation_delta, verdict

    assert translation_delta(off) == min(v["after"] - v["before"] for v in off["translation_chrf"].values())
    assert "hurt" in verdict(res.chrf_before, res.chrf_after, "summary", off)
    from modes.finetune.report import result_text

    md = result_text(res, len(test), f"summary ({lang})", lang, "dialogue-summary")
    assert ("held-out dialogues" if lang == "en" else "평가용 대화") in md
    assert md.count("ko-en") >= 1 and md.count("en-ko") >= 1  # the translation rows of the price


@pytest.mark.parametrize("columns, direction, roles, want", [
    (["english", "korean"], "en-ko", ("source", "target"), ("english", "korean")),
    (["english", "korean"], "ko-en", ("source", "target"), ("korean", "english")),
    (["EN", "KO"], "en-ko", ("source", "target"), ("EN", "KO")),
    (["src", "tgt"], "ko-en", ("source", "target"), ("src", "tgt")),  # role names win over the direction
    (["input", "output"], "en-ko", ("source", "target"), ("input", "output")),
    (["id", "Dialogue", "Summary"], None, ("dialogue", "summary"), ("Dialogue", "Summary")),
    (["foo", "bar"], "en-ko", ("source", "target"), (None, None)),
])
def test_column_guesses(columns, direction, roles, want):
    assert pair_files.guess_columns(columns, direction, roles) == want


def test_an_upload_with_other_column_names_loads_guessed_or_picked(tmp_path):
    f = tmp_path / "pairs.csv"
    f.write_text("id,english,korean\n1,Hello,안녕하세요\n2,Thanks,고마워요\n", encoding="utf-8")
    assert pair_files.upload_columns(f, "en-ko") == (["id", "english", "korean"], "english", "korean")
    assert pair_files.from_upload(f, direction="en-ko")[0] == Pair("Hello", "안녕하세요")
    assert pair_files.from_upload(f, direction="ko-en")[0] == Pair("안녕하세요", "Hello")
    assert pair_files.from_upload(f, "korean", "english")[1] == Pair("고마워요", "Thanks")  # picked
    with pytest.raises(tr.DataError) as e:
        pair_files.from_upload(f, "id", "id")
    assert e.value.key == "err_data_same_column"
    with pytest.raises(tr.DataError) as e:
        pair_files.from_upload(f, "english", "japanese")
    assert e.value.key == "err_data_no_such_column" and e.value.fmt["missing"] == "japanese"


@pytest.mark.parametrize("lang, text", [("en", "Use the built-in pairs, or upload a CSV or JSONL file"),
                                        ("ko", "내장된 문장 쌍을 쓰거나")])
def test_the_fine_tune_tab_has_its_own_offline_message(monkeypatch, lang, text):
    """Not the pre-training tab's "use 'shakespeare' or upload a .txt file"."""
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    with pytest.raises(gr.Error) as e:
        ft.resolve_data("hub", None, "someone/pairs", "en", "ko", "en-ko", lang)
    assert text in e.value.message and "shakespeare" not in e.value.message and ".txt" not in e.value.message


@pytest.mark.parametrize("lang", ["en", "ko"])
def test_a_summary_fine_tune_and_the_column_picker_through_the_api(tiny_tokenizer, tmp_path, lang):
    """/finetune with task="dialogue-summary" (built-in, the API's other defaults), then an upload whose
    columns (`left,right`) say nothing, with the columns picked by name; unpicked, it is refused by role."""
    from gradio_client import Client, handle_file

    from tests.conftest import served_app

    f = tmp_path / "mine.csv"
    rows = dialogues.pairs_for(lang, "train")[:6]
    f.write_text("left,right\n" + "".join(f'"{p.source}","{p.target}"\n' for p in rows), encoding="utf-8")
    stack = contextlib.ExitStack()
    url = stack.enter_context(served_app(tokenizer=tiny_tokenizer)).url
    try:
        c = Client(url, verbose=False, headers={"Accept-Language": "ko"} if lang == "ko" else {})
        out = c.predict(steps=2, task="dialogue-summary", summary_lang=lang, api_name="/finetune")
        s = out[-1]
        assert s["task"] == "dialogue-summary" and s["label"] == f"summary ({lang})"
        assert s["n_pairs"] == len(dialogues.pairs_for(lang, "train")) and s["n_test"] == len(dialogues.pairs_for(lang, "test"))
        assert set(s["off_task"]["translation_chrf"]) == {"en-ko", "ko-en"}
        out = c.predict(steps=1, task="dialogue-summary", summary_lang=lang, data_source="upload", upload=handle_file(str(f)),
                        upload_src="left", upload_tgt="right", api_name="/finetune")
        assert out[-1]["n_pairs"] == 6
        with pytest.raises(Exception, match="dialogue, summary"):  # no guess for these names
            c.predict(steps=1, task="dialogue-summary", summary_lang=lang, data_source="upload", upload=handle_file(str(f)),
                      api_name="/finetune")
    finally:
        stack.close()
