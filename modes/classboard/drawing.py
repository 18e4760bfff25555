"""The class board drawn: the three ways as a table, the leaderboards, the settings-against-result scatters, and
the learners' table, from the board's plain data (board.py). Gradio components and pandas frames only."""

from __future__ import annotations

import gradio as gr
import pandas as pd

from modes import ui
from modes.classboard import board as boards
from modes.classboard.doors import board_of
from modes.runs.classes import ClassError

X_DEFAULT = {"pretrain": "steps", "finetune": "r", "incontext": "k"}  # each scatter's x axis until the teacher picks one
LEARNER_COLUMNS = ["learner", "doing", "shared runs", "finished", "assigned value"]


def three_ways_md(tw: dict, metrics: dict, lang: str) -> str:
    """The three-ways table on the class's figures, each cell saying how many runs and learners it is from."""
    def cell(s, fmt="{:.1f}"):
        if not s:
            return "—"
        return (fmt.format(s["median"]) + f" ({fmt.format(s['low'])}–{fmt.format(s['high'])})"
                + " · " + ui.msg("cl_counts", lang, runs=s["runs"], learners=s["learners"]))

    lines = [ui.msg("cl_tw_header", lang)]
    for d, row in tw["directions"].items():
        k = "—" if row["most_common_k"] is None else str(row["most_common_k"])
        lines.append(f"| {d} | {cell(row['k0'])} | {cell(row['best_k'])} (k={k}) | {cell(row['lora'])} | "
                     f"{cell(row['reverse_chrf_drop'])} | {cell(row['general_bpc_rise'], '{:+.2f}')} |")
    if not tw["directions"]:
        lines.append("| — | — | — | — | — | — |")
    lines.append("")
    lines.append(ui.msg("cl_tw_pretrain", lang, cell=cell(tw["pretrain"], "{:.2f}")))
    return "\n".join(lines)


def _lim(values: list) -> list[float]:
    """An axis range with a margin, so the points at the ends are drawn whole (the plot's own range is tight)."""
    lo, hi = min(values), max(values)
    pad = (hi - lo) * 0.08 or abs(hi) * 0.1 or 1.0
    return [lo - pad, hi + pad]


def _points(df, x: str, y: str, x_title: str, y_title: str):
    if df is None:
        return gr.ScatterPlot(value=None)
    numeric = all(isinstance(v, (int, float)) for v in df[x])  # an experiment on `direction` has words for x
    return gr.ScatterPlot(value=df, x=x, y=y, x_title=x_title, y_title=y_title, x_lim=_lim(list(df[x])) if numeric else None,
                          y_lim=_lim(list(df[y])), tooltip=["learner", "run", x, y])


def _scatter(full: dict, kind: str, x: str, metric: str):
    pts = boards.scatter(kind, full["runs"].get(kind, []), x or X_DEFAULT.get(kind, "steps"))
    # No points: no value. An empty frame's columns are typed as categories, and the browser's plot keeps the
    # first types it is sent (numbers would then be drawn as categories, in the order they came).
    return _points(pd.DataFrame(pts, columns=["x", "y", "learner", "run"]) if pts else None, "x", "y", x, metric)


def _leaders(full: dict, kind: str) -> pd.DataFrame:
    rows = [{"learner": r["learner"], "run": f"#{r['id']}", "result": r["figure"],
             "settings": ", ".join(f"{k}={v}" for k, v in r["settings"].items() if k not in ("data", "adapter"))}
            for r in full["leaders"].get(kind, [])]
    return pd.DataFrame(rows, columns=["learner", "run", "result", "settings"])


def draw(ctx, tabs, teacher, x_pretrain: str = "steps", x_finetune: str = "r", x_incontext: str = "k",
         request: gr.Request = None):
    """The projected board, redrawn by the timer: the teacher's class (kept in their browser) or nothing."""
    lang = ui.lang_of(request)
    if not teacher or not teacher.get("code"):
        return (ui.msg("cl_no_board", lang),) + (gr.skip(),) * 10 + (gr.Timer(active=False),)
    try:
        room = ctx.classes.teacher(teacher.get("code"), teacher.get("key"))
    except ClassError as exc:
        return (ui.msg(exc.key, lang),) + (gr.skip(),) * 10 + (gr.Timer(active=False),)
    full = board_of(ctx, tabs, room)
    head = ui.msg("cl_board_head", lang, code=room.code, n=len(full["learners"]), at=full["at"],
                  closed=ui.msg("cl_closed_mark", lang) if full["closed"] else "")
    learners = pd.DataFrame([[x["name"], x["doing"], x["runs"], x["finished"], "" if x["value"] is None else x["value"]]
                             for x in full["learners"]], columns=LEARNER_COLUMNS)
    m = full["metrics"]
    exp = full["experiment"]
    if exp is None:
        exp_plot, exp_md = gr.ScatterPlot(value=None), ui.msg("cl_exp_none", lang)
    else:
        df = pd.DataFrame(exp["points"], columns=["value", "result", "learner", "run"]) if exp["points"] else None
        exp_plot = _points(df, "value", "result", exp["setting"], exp["metric"])
        exp_md = ui.msg("cl_exp_head", lang, kind=exp["kind"], setting=exp["setting"],
                        values=", ".join(map(str, exp["values"])), n=len(exp["points"])) + "\n\n" + "\n".join(
            f"- {exp['setting']} = {c['value']}: {c['median']} ({c['learners']})" for c in exp["curve"])
    return (head, learners, three_ways_md(full["three_ways"], m, lang),
            _leaders(full, "pretrain"), _scatter(full, "pretrain", x_pretrain, m.get("pretrain", "")),
            _leaders(full, "finetune"), _scatter(full, "finetune", x_finetune, m.get("finetune", "")),
            _leaders(full, "incontext"), _scatter(full, "incontext", x_incontext, m.get("incontext", "")),
            exp_plot, exp_md, gr.Timer(active=True))
