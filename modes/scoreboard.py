"""The three-ways scoreboard: one row per way of learning, filled only from this session's own runs.

`runs` is a plain dict in gr.State; the training events record into it and the board is rendered
from it. A row that has not been run says how to fill it; nothing is pre-filled.
"""

from __future__ import annotations

import gradio as gr

from modes import ui


def new_runs() -> dict:
    return {}


def record_pretrain(runs: dict | None, summary: dict, corpus_name: str, n_chars: int) -> None:
    if runs is not None:
        runs["pretrain"] = {**summary, "corpus": corpus_name, "n_chars": n_chars}


def record_finetune(runs: dict | None, summary: dict, n_pairs: int, n_test: int) -> None:
    if runs is not None:
        runs["finetune"] = {**summary, "n_pairs": n_pairs, "n_test": n_test}


def record_sweep(runs: dict | None, summary: dict) -> None:
    if runs is not None:
        runs["incontext"] = summary


def render(runs: dict | None, lang: str = "en") -> str:
    runs = runs or {}
    m = lambda key, **kw: ui.msg(key, lang, **kw)  # noqa: E731
    rows = [m("sb_header")]
    p, f, i = runs.get("pretrain"), runs.get("finetune"), runs.get("incontext")
    if p:
        ref = "—" if p.get("pretrained_val_bpc") is None else f"{p['pretrained_val_bpc']:.2f}"
        rows.append(m("sb_row_pretrain", pct=f"{100 * p['params_updated_fraction']:.0f}", params=f"{p['params']:,}",
                      chars=f"{p['n_chars']:,}", corpus=p["corpus"], secs=f"{p['seconds']:.0f}", bpc=f"{p['val_bpc']:.2f}", ref=ref,
                      other=m("sb_other_pretrain", bpc=f"{p['val_bpc']:.2f}")))
    else:
        rows.append(m("sb_empty_pretrain"))
    if f:
        rows.append(m("sb_row_finetune", pct=f"{100 * f['trainable_fraction']:.2f}", params=f"{f['trainable_params']:,}",
                      pairs=f["n_pairs"], secs=f"{f['seconds']:.0f}", after=f["chrf_after"], before=f["chrf_before"], n=f["n_test"],
                      other=_finetune_other(f, m)))
    else:
        rows.append(m("sb_empty_finetune"))
    if i:
        best = str(i["best_k"])
        rows.append(m("sb_row_incontext", k=best, secs=f"{i['seconds']:.0f}", score=i["chrf"][best], n=i["n"],
                      other=m("sb_other_incontext")))
    else:
        rows.append(m("sb_empty_incontext"))
    text = "\n".join(rows)
    claims = []
    if p or f or i:
        claims.append(m("sb_claim_weights"))
    if p:
        claims.append(m("sb_claim_scale", bpc=f"{p['val_bpc']:.2f}", ref="—" if p.get("pretrained_val_bpc") is None else f"{p['pretrained_val_bpc']:.2f}"))
    if f and i:
        same_n = f["n_test"] == i["n"]
        best = str(i["best_k"])
        diff = f["chrf_after"] - i["chrf"][best]
        key = "sb_claim_ft_wins" if diff > 0 else "sb_claim_icl_wins"
        claims.append(m(key, ft=f["chrf_after"], icl=i["chrf"][best], k=best, diff=f"{abs(diff):.1f}"))
        if not same_n:
            claims.append(m("sb_claim_not_same_n", a=f["n_test"], b=i["n"]))
        claims.append(m("sb_claim_cost", pairs=f["n_pairs"], fsecs=f"{f['seconds']:.0f}", k=best))
    if claims:
        text += "\n\n" + m("sb_differences") + "\n" + "\n".join(f"- {c}" for c in claims)
    return text


def _finetune_other(f: dict, m) -> str:
    off = f.get("off_task")
    if not off:
        return m("sb_other_finetune_none")
    return m("sb_other_finetune", bpc=f"{off['general_bpc_after'] - off['general_bpc_before']:+.3f}", rev=off["reverse_direction"],
             rev_delta=f"{off['reverse_chrf_after'] - off['reverse_chrf_before']:+.1f}")


def show(runs: dict | None, request: gr.Request = None) -> str:
    return render(runs, ui.lang_of(request))


def build(runs: gr.State) -> gr.Markdown:
    gr.Markdown(ui.t("sb_intro"))
    board = gr.Markdown(render(None))
    refresh = gr.Button(ui.t("sb_refresh"), size="sm")
    refresh.click(show, runs, board, api_name=False, queue=False)
    return board
