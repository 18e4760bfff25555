"""The fine-tune's lead over four examples in the prompt: measured on the same held-out sentences as the in-context
tab's k=4, with a paired bootstrap interval, and told on the result card as clear, inside the noise, or behind, in
both languages, in both directions, through the API with its defaults and on the card the UI shows."""

from __future__ import annotations

import pytest

from modes.data import translation as task
from modes.finetune.report import lead_text
from modes.metrics import chrf, chrf_lead


def _refs(direction: str = "ko-en") -> list[str]:
    return [p.target for p in task.pairs_for(direction, "test")]


def test_the_lead_is_the_chrf_difference_and_its_interval_holds_it():
    refs = _refs()
    good, poor = [r[: len(r) * 2 // 3] for r in refs], [r[: len(r) // 3] for r in refs]
    out = chrf_lead(good, poor, refs)
    assert out["lead"] == pytest.approx(chrf(good, refs) - chrf(poor, refs), abs=0.02)
    assert 0 < out["low"] <= out["lead"] <= out["high"] and out["ahead"] == 1.0
    back = chrf_lead(poor, good, refs)
    assert back["high"] < 0 and back["ahead"] == 0.0
    same = chrf_lead(poor, poor, refs)
    assert same == {"lead": 0.0, "low": 0.0, "high": 0.0, "ahead": 0.0}


def test_one_sentence_apart_is_inside_the_noise():
    """Two systems that differ on a single sentence of 69: a lead of about a point, and an interval that holds 0."""
    refs = _refs()
    base = [r[: len(r) // 2] for r in refs]
    better = list(base)
    better[0] = refs[0]
    out = chrf_lead(better, base, refs)
    assert 0 < out["lead"] < 2 and out["low"] <= 0 <= out["high"]


@pytest.mark.parametrize("lang", ["en", "ko"])
def test_the_card_names_the_verdict_the_interval_gives(lang):
    from modes import ui

    clear = lead_text({"k": 4, "chrf_k": 8.8, "lead": 5.3, "low": 2.2, "high": 7.9, "ahead": 1.0}, 14.1, 69, lang)
    noise = lead_text({"k": 4, "chrf_k": 8.8, "lead": 1.3, "low": -1.2, "high": 3.9, "ahead": 0.8}, 10.1, 69, lang)
    behind = lead_text({"k": 4, "chrf_k": 8.8, "lead": -5.3, "low": -8.2, "high": -2.9, "ahead": 0.0}, 3.5, 69, lang)
    s = ui.strings(lang)
    first = lambda key: s[key].split("{")[0]  # the message's fixed opening words
    assert first("ft_lead_clear") in clear and first("ft_lead_noise") not in clear
    assert first("ft_lead_noise") in noise and first("ft_lead_clear") not in noise
    assert first("ft_lead_behind") in behind
    assert "8.8" in noise and "10.1" in noise and "+1.3" in noise and "-1.2" in noise and "+3.9" in noise


@pytest.mark.parametrize("direction", ["en-ko", "ko-en"])
def test_the_api_and_the_card_give_the_lead_over_the_in_context_tabs_k4(served, direction):
    """/finetune with its defaults (a shorter run) in each direction: its summary carries the lead over k=4, whose k=4
    side is the in-context tab's own k=4 figure on the same held-out pairs (/icl_sweep); the card (the UI's
    result, in Korean for a Korean browser) says it."""
    ko = served.client(headers={"Accept-Language": "ko-KR,ko;q=0.9"})
    out = ko.predict(steps=2, r=2, direction=direction, fresh=True, api_name="/finetune")
    card, s = out[2], out[-1]
    lead = s["lead"]
    assert lead["k"] == 4 and lead["low"] <= lead["lead"] <= lead["high"]
    assert lead["lead"] == pytest.approx(s["chrf_after"] - lead["chrf_k"], abs=0.02)
    sweep = served.client().predict(direction=direction, ks="4", api_name="/icl_sweep")[-1]
    assert sweep["chrf"]["4"] == lead["chrf_k"]
    assert "프롬프트 속 예시 4개와 비교" in card and f"**{lead['chrf_k']}**" in card


@pytest.mark.parametrize("lang, said", [("en", "4 examples in the prompt: 17.1"), ("ko", "프롬프트 예시 4개: 17.1")])
def test_the_scoreboard_row_puts_k4_beside_the_fine_tune(lang, said):
    from modes.finetune.report import score_row

    f = {"trainable_fraction": 0.002, "trainable_params": 1000, "n_pairs": 3012, "seconds": 60, "chrf_after": 25.0,
         "chrf_before": 1.0, "n_test": 69, "off_task": None, "label": "en-ko",
         "lead": {"k": 4, "chrf_k": 17.1, "lead": 7.9, "low": 4.0, "high": 11.0, "ahead": 1.0}}
    assert said in score_row(f, lang)
    assert said not in score_row({**f, "lead": None}, lang)  # a run from before the lead was measured says nothing
