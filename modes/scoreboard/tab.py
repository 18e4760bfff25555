"""The three-ways scoreboard and the learner's runs: one row per tab that learns, from the learner's
best run of that kind, and below it every run they made, to compare, delete, or use.

Each row comes from its tab's `score_row` and `best` (the registry, modes/tabs.py), so a new tab
adds its own row. A row that has not been run says how to fill it; nothing is pre-filled. The
runs belong to the learner's owner id (modes/runs/history.py): a reload shows them again.
"""

from __future__ import annotations

import time

import gradio as gr
import pandas as pd

from modes import ui
from modes.runs import curves
from modes.runs import follow as records
from modes.tabs import Page, Tab

RUN_COLUMNS = ["run", "kind", "when", "status", "settings", "result"]


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
    m = lambda key, **kw: ui.msg(key, lang, **kw)
    p, f, i = runs.get("pretrain"), runs.get("finetune"), runs.get("incontext")
    claims = []
    if p or f or i:
        claims.append(m("sb_claim_weights"))
    if p and p.get("objective", "next-token") == "next-token":  # a masked run's bits/char are on another task
        ref = "—" if p.get("pretrained_val_bpc") is None else f"{p['pretrained_val_bpc']:.2f}"
        claims.append(m("sb_claim_scale", bpc=f"{p['val_bpc']:.2f}", ref=ref))
    if f and i and f.get("task", "translation") == "translation":  # the same task, measured the same way
        best = str(i["best_k"])
        diff = f["chrf_after"] - i["chrf"][best]
        key = "sb_claim_ft_wins" if diff > 0 else "sb_claim_icl_wins"
        claims.append(m(key, ft=f["chrf_after"], icl=i["chrf"][best], k=best, diff=f"{abs(diff):.1f}"))
        if f["n_test"] != i["n"]:
            claims.append(m("sb_claim_not_same_n", a=f["n_test"], b=i["n"]))
        claims.append(m("sb_claim_cost", pairs=f["n_pairs"], fsecs=f"{f['seconds']:.0f}", k=best))
    return claims


def best_runs(ctx, owner, tabs: list[Tab]) -> dict:
    """tab id -> (best run, number of finished runs of that kind) for every tab that scores runs."""
    return {t.id: ctx.history.best(owner, t.id, t.best) for t in tabs if t.best}


def board(ctx, owner, tabs: list[Tab], lang: str) -> str:
    """The three-ways table from the learner's best run of each kind, saying which run that is."""
    best = best_runs(ctx, owner, tabs)
    text = render({k: r.summary for k, (r, _) in best.items() if r is not None}, tabs, lang)
    titles = {t.id: ui.msg(t.title, lang) for t in tabs}
    which = [ui.msg("sb_best_which", lang, kind=titles[k], id=r.id, n=n) for k, (r, n) in best.items() if r]
    return text + ("\n\n" + " · ".join(which) if which else "")


def headline(run, tabs: list[Tab]) -> str:
    """A run's result in a few characters, for the runs table: its tab's own `headline` (the registry)."""
    if run.status == "interrupted":
        return f"interrupted at step {run.interrupted_at}"
    if run.summary is None:
        return "—"
    tab = next((t for t in tabs if t.id == run.kind), None)
    return tab.headline(run.summary) if tab is not None and tab.headline else "✓"


def run_table(runs, tabs: list[Tab]) -> pd.DataFrame:
    """One row per run; the settings column shows what each run's tab names in `shown` (compare shows every
    setting that differs)."""
    shown = {t.id: t.shown for t in tabs}
    rows = [[f"#{r.id}", r.kind, time.strftime("%H:%M:%S", time.localtime(r.created)), r.status,
             ", ".join(f"{k}={v}" for k, v in r.settings.items() if k in shown.get(r.kind, ())), headline(r, tabs)]
            for r in runs]
    return pd.DataFrame(rows, columns=RUN_COLUMNS)


def run_ids(value) -> list[str]:
    """Run ids from the picker or an API caller: "#a1" or "a1", a list or a comma-separated string."""
    items = value if isinstance(value, (list, tuple)) else str(value or "").split(",")
    return [str(x).split()[0].lstrip("#") for x in items if str(x).strip()]


def list_runs(ctx, tabs, session=None, request: gr.Request = None):
    """The learner's runs (settings and summary, no curves), newest first; and the board."""
    lang = ui.lang_of(request)
    owner = session.owner if session else None
    runs = ctx.history.runs(owner)
    dropped = ctx.history.take_dropped(owner)
    note = ui.msg("sb_dropped", lang, ids=", ".join(f"#{i}" for i in dropped), cap=ctx.history.max_runs) if dropped else ""
    if ctx.history.unsaved:  # a store write failed: say so, the work itself is still here
        note = (note + "\n\n" if note else "") + ui.msg("sb_unsaved", lang)
    choices = [f"#{r.id} {r.kind}" for r in runs]
    return (board(ctx, owner, tabs, lang), run_table(runs, tabs), gr.Dropdown(choices=choices), note,
            [r.public() for r in runs])


def runs_api(ctx, session=None, request: gr.Request = None) -> list[dict]:
    """This session's runs (or the X-HML-Owner caller's): id, kind, status, settings and summary (no curves,
    no tensors), newest first."""
    return [r.public() for r in ctx.history.runs(session.owner if session else None)]


def new_owner(ctx) -> dict:
    """A new owner token for an API caller. Send it as the X-HML-Owner header on every call
    (gradio_client: Client(url, headers={"X-HML-Owner": token})) and every client with it acts as one owner:
    the runs one starts, another lists. A token this server did not issue acts as nobody."""
    return {"owner": ctx.history.issue()}


def compare(ctx, tabs, picked, smoothing: float = 0.0, log: bool = False, session=None, request: gr.Request = None):
    """Overlay the curves of two or more runs of one kind, with the settings that differ and the results."""
    lang = ui.lang_of(request)
    owner = session.owner if session else None
    runs = [r for r in (ctx.history.get(owner, i) for i in run_ids(picked)) if r is not None]
    if len(runs) < 2:
        raise ui.error("sb_compare_need_two", lang)
    if len({r.kind for r in runs}) > 1:
        raise ui.error("sb_compare_one_kind", lang)
    diff = curves.settings_diff(runs)
    x, y = runs[0].axes
    df = curves.compare_frame(runs, float(smoothing or 0), bool(log)).rename(columns={"x": x, "y": y, "series": "run"})
    plot = gr.LinePlot(value=df, x=x, y=y, color="run", y_title=f"log₁₀ {y}" if log else y)
    lines = [f"- **{k}**: " + " · ".join(f"#{r.id} = {v}" for r, v in zip(runs, vals)) for k, vals in diff.items()]
    md = ui.msg("sb_compare_diff_title", lang) + "\n" + ("\n".join(lines) if lines else ui.msg("sb_compare_same", lang))
    if len({r.settings.get("objective") or "next-token" for r in runs}) > 1:  # two objectives' losses: not one task
        md = ui.msg("sb_compare_objectives", lang) + "\n\n" + md
    results = pd.DataFrame([{"run": f"#{r.id}", "status": r.status, "result": headline(r, tabs),
                             "seconds": (r.summary or {}).get("seconds")} for r in runs])
    out = {"runs": [r.public() for r in runs], "diff": diff, "axes": list(runs[0].axes), "curves": curves.aligned(runs)}
    yield records.CLEAR, gr.skip(), gr.skip(), gr.skip()  # other runs, other series: the plot takes them once cleared
    yield plot, md, results, out


def recompare(ctx, tabs, picked, smoothing: float = 0.0, log: bool = False, session=None, request: gr.Request = None):
    """The smoothing or log control moved: redraw the comparison if there is one to draw."""
    owner = session.owner if session else None
    runs = [r for r in (ctx.history.get(owner, i) for i in run_ids(picked)) if r is not None]
    if len(runs) < 2 or len({r.kind for r in runs}) > 1:
        yield gr.skip(), gr.skip(), gr.skip(), gr.skip()
        return
    yield from compare(ctx, tabs, picked, smoothing, log, session, request)


def delete(ctx, tabs, picked, session=None, request: gr.Request = None):
    """Delete the picked runs (a running one is kept: stop it first) and show what is left."""
    owner = session.owner if session else None
    kept = [i for i in run_ids(picked) if not ctx.history.delete(owner, i)]
    board_md, table, choices, note, data = list_runs(ctx, tabs, session, request)
    if kept:
        note = ui.msg("sb_not_deleted", ui.lang_of(request), ids=", ".join(f"#{i}" for i in kept))
    return board_md, table, choices, note, data


def use_adapter(ctx, picked, session=None, request: gr.Request = None):
    """Make the picked fine-tune's adapter the one the in-context tab uses."""
    lang = ui.lang_of(request)
    owner = session.owner if session else None
    for i in run_ids(picked):
        adapter = records.adapter_of(ctx, owner, i)
        if adapter is not None:
            return adapter, ui.msg("sb_adapter_used", lang, id=i, direction=adapter.direction)
    raise ui.error("sb_adapter_none", lang)


def run_again(ctx, tabs, picked, session=None, request: gr.Request = None):
    """Run again: for each picked run that was interrupted (or stopped, or failed), a new run of its tab with
    the same settings, started in its own thread (its tab follows it after a reload; in in-call mode, run
    to its end inside this request). Returns the runs list, with a note naming the new runs."""
    lang = ui.lang_of(request)
    owner = session.owner if session else None
    by_kind = {t.id: t for t in tabs if t.rerun}
    old = [r for r in (ctx.history.get(owner, i) for i in run_ids(picked)) if r is not None and not r.active and r.kind in by_kind]
    if not old:
        raise ui.error("sb_run_again_none", lang)
    new = [by_kind[r.kind].rerun(ctx, session, r.settings, lang) for r in old]
    if ctx.heavy.in_call:  # in-call mode has no thread to run them: this request drives each to its end
        for r in new:
            for _ in ctx.history.follow(r):
                pass
    board_md, table, choices, _, data = list_runs(ctx, tabs, session, request)
    note = ui.msg("sb_run_again_started", lang, ids=", ".join(f"#{r.id}" for r in new), old=", ".join(f"#{r.id}" for r in old))
    return board_md, table, choices, note, data


def build(page: Page) -> None:
    ctx, tabs = page.ctx, page.tabs
    listing = ui.endpoint(list_runs, ctx, tabs)

    gr.Markdown(ui.t("sb_intro"))
    board_md = gr.Markdown(render(None, tabs))
    refresh = gr.Button(ui.t("sb_refresh"), size="sm")
    gr.Markdown(ui.t("sb_runs_title"))
    table = gr.Dataframe(headers=RUN_COLUMNS, interactive=False, wrap=True, elem_id="runs-table", label=ui.t("sb_runs_label"))
    note = gr.Markdown()
    picked = gr.Dropdown([], multiselect=True, allow_custom_value=True, label=ui.t("sb_pick_label"), elem_id="runs-pick")
    with gr.Row():
        compare_btn = gr.Button(ui.t("sb_compare_btn"), variant="primary")
        adapter_btn = gr.Button(ui.t("sb_use_adapter_btn"))
        again_btn = gr.Button(ui.t("sb_run_again_btn"))
        delete_btn = gr.Button(ui.t("sb_delete_btn"), variant="stop")
    with gr.Row():
        smoothing = gr.Slider(0, 0.99, value=0.0, step=0.01, label=ui.t("curve_smoothing"), elem_id="compare-smoothing")
        log = gr.Checkbox(value=False, label=ui.t("curve_log"))
    plot = gr.LinePlot(x="step", y="loss", color="run", label=ui.t("sb_compare_plot"), height=300, elem_id="compare-plot")
    diff_md = gr.Markdown(elem_id="compare-diff")
    results = gr.Dataframe(label=ui.t("sb_compare_results"), interactive=False)
    runs_json = gr.JSON(visible=False)
    compare_json = gr.JSON(label=ui.t("summary_json"))
    adapter_md = gr.Markdown()
    api_btn = gr.Button(visible=False)  # carries the /runs endpoint: the caller's runs as JSON

    shown = [board_md, table, picked, note, runs_json]
    refresh.click(listing, page.session, shown, api_name=False, queue=False)
    if page.tab is not None:
        page.tab.select(listing, page.session, shown, api_name=False, queue=False)
    if page.attached is not None:  # the board and the runs are back after a reload
        page.attached.then(listing, page.session, shown, api_name=False, queue=False)
    api_btn.click(ui.endpoint(runs_api, ctx), page.session, runs_json, api_name="runs", queue=False)
    gr.api(ui.endpoint(new_owner, ctx), api_name="owner", queue=False)
    comparing = ui.endpoint(compare, ctx, tabs)
    compare_btn.click(comparing, [picked, smoothing, log, page.session], [plot, diff_md, results, compare_json],
                      api_name="compare")
    for comp in (smoothing, log):
        comp.change(ui.endpoint(recompare, ctx, tabs), [picked, smoothing, log, page.session], [plot, diff_md, results, compare_json],
                    api_name=False, show_progress="hidden")
    delete_btn.click(ui.endpoint(delete, ctx, tabs), [picked, page.session], shown, api_name=False, queue=False)
    again_btn.click(ui.endpoint(run_again, ctx, tabs), [picked, page.session], shown, api_name="run_again")
    adapter_btn.click(ui.endpoint(use_adapter, ctx), [picked, page.session], [page.adapter, adapter_md], api_name="use_adapter",
                      queue=False)


TAB = Tab(id="scoreboard", title="tab_scoreboard", build=build)
