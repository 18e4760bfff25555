"""The three-ways scoreboard: one row per tab that learns, filled only from this learner's own runs.

Each row comes from its tab's `score_row` (the registry, modes/tabs.py), so a new tab adds its own
row. Below the rows, the differences the three ways show side by side. A row that has not been run
says how to fill it; nothing is pre-filled.
"""

from __future__ import annotations

import gradio as gr

from modes import ui
from modes.tabs import Page, Tab


def render(runs: dict | None, tabs: list[Tab], lang: str = "en") -> str:
    runs = runs or {}
    rows = [ui.msg("sb_header", lang)] + [t.score_row(runs.get(t.id), lang) for t in tabs if t.score_row]
    claims = differences(runs, lang)
    text = "\n".join(rows)
    if claims:
        text += "\n\n" + ui.msg("sb_differences", lang) + "\n" + "\n".join(f"- {c}" for c in claims)
    return text


def differences(runs: dict, lang: str) -> list[str]:
    """What the three ways of learning did differently, from the runs the learner has made."""
    m = lambda key, **kw: ui.msg(key, lang, **kw)  # noqa: E731
    p, f, i = runs.get("pretrain"), runs.get("finetune"), runs.get("incontext")
    claims = []
    if p or f or i:
        claims.append(m("sb_claim_weights"))
    if p:
        ref = "—" if p.get("pretrained_val_bpc") is None else f"{p['pretrained_val_bpc']:.2f}"
        claims.append(m("sb_claim_scale", bpc=f"{p['val_bpc']:.2f}", ref=ref))
    if f and i:
        best = str(i["best_k"])
        diff = f["chrf_after"] - i["chrf"][best]
        key = "sb_claim_ft_wins" if diff > 0 else "sb_claim_icl_wins"
        claims.append(m(key, ft=f["chrf_after"], icl=i["chrf"][best], k=best, diff=f"{abs(diff):.1f}"))
        if f["n_test"] != i["n"]:
            claims.append(m("sb_claim_not_same_n", a=f["n_test"], b=i["n"]))
        claims.append(m("sb_claim_cost", pairs=f["n_pairs"], fsecs=f"{f['seconds']:.0f}", k=best))
    return claims


def build(page: Page) -> None:
    tabs = page.tabs

    def show(runs: dict | None, request: gr.Request = None) -> str:
        return render(runs, tabs, ui.lang_of(request))

    gr.Markdown(ui.t("sb_intro"))
    board = gr.Markdown(render(None, tabs))
    refresh = gr.Button(ui.t("sb_refresh"), size="sm")
    refresh.click(show, page.runs, board, api_name=False, queue=False)
    if page.tab is not None:
        page.tab.select(show, page.runs, board, api_name=False, queue=False)


TAB = Tab(id="scoreboard", title="tab_scoreboard", build=build)
