"""A run's curves drawn the way trainers read them: smoothed (TensorBoard's debiased moving average) with the raw
line faint beneath, on a log axis if asked, the point where the held-out loss stopped falling marked; and several
runs' curves on one plot, with only the settings that differ between them."""

from __future__ import annotations

import math
from typing import TYPE_CHECKING

import pandas as pd

from modes import ui

if TYPE_CHECKING:
    from modes.runs.history import Run

COLORS = {"train": "#6366f1", "train (raw)": "#c7d2fe", "val": "#f97316", "held-out eval": "#f97316",
          "lowest held-out loss": "#10b981"}
RAW = " (raw)"  # suffix of the faint unsmoothed series drawn beneath a smoothed one
BEST = "lowest held-out loss"  # the fine-tune plot's mark where the held-out loss stopped falling


def colors(*series: str) -> dict[str, str]:
    """A plot's colour map: its series, each with its faint raw line (a plot's legend lists every key)."""
    return {k: COLORS[k] for s in series for k in (s, s + RAW) if k in COLORS}


def ema(values: list[float], weight: float) -> list[float]:
    """TensorBoard's smoothing: an exponential moving average, debiased so the start is not pulled to 0."""
    out, last = [], 0.0
    for i, v in enumerate(values, start=1):
        last = last * weight + (1 - weight) * v
        out.append(last / (1 - weight**i) if weight > 0 else v)
    return out


def lowest_point(rows: list[dict], series: str) -> tuple[float, float] | None:
    """(x, y) where `series` was lowest, when it rose again after that point (else None)."""
    pts = [(r["x"], r["y"]) for r in rows if r["series"] == series]
    if len(pts) < 3:
        return None
    best = min(pts, key=lambda p: p[1])
    return best if pts[-1][1] > best[1] and best != pts[-1] else None


def frame(rows: list[dict], smoothing: float = 0.0, log: bool = False, smooth: tuple[str, ...] = ("train",),
          mark: str | None = None) -> pd.DataFrame:
    """Curve rows {"x", "y", "series"} as the plot draws them: the `smooth` series smoothed (their
    raw values stay as a faint "<series> (raw)" line beneath), log10 of y when `log`, and, when
    `mark` names a series that rose after its lowest point, a vertical BEST line there."""
    rows = list(rows)
    out = []
    for name in dict.fromkeys(r["series"] for r in rows):
        pts = [r for r in rows if r["series"] == name]
        if smoothing > 0 and name in smooth:
            out += [{**r, "series": name + RAW} for r in pts]
            out += [{**r, "y": y} for r, y in zip(pts, ema([r["y"] for r in pts], smoothing))]
        else:
            out += pts
    low = lowest_point(rows, mark) if mark else None
    if low is not None:
        ys = [r["y"] for r in rows]
        out += [{"x": low[0], "y": min(ys), "series": BEST}, {"x": low[0], "y": max(ys), "series": BEST}]
    df = pd.DataFrame(out, columns=["x", "y", "series"])
    if log:
        df = df[df["y"] > 0].assign(y=lambda d: d["y"].map(math.log10))
    return df


def plot_update(run: Run, view: dict, smooth=("train",), mark: str | None = None):
    """The tab's LinePlot for a run, drawn with the learner's smoothing and axis choices."""
    import gradio as gr

    x, y = run.axes
    df = frame(run.curve, view.get("smoothing", 0.0), view.get("log", False), smooth, mark)
    return gr.LinePlot(value=df.rename(columns={"x": x, "y": y, "series": "split"}),
                       y_title=f"log₁₀ {y}" if view.get("log") else y, color_map=COLORS)


def overfit_line(run: Run, lang: str) -> str:
    """One line under the fine-tune plot when the held-out loss stopped falling ('' when it did not)."""
    low = lowest_point(run.curve, "held-out eval")
    if low is None:
        return ""
    last = [r["y"] for r in run.curve if r["series"] == "held-out eval"][-1]
    return ui.msg("ft_overfit_mark", lang, step=int(low[0]), low=f"{low[1]:.3f}", last=f"{last:.3f}")


# ---- comparing runs -------------------------------------------------------------------------------
def settings_diff(runs: list[Run]) -> dict[str, list]:
    """Only the settings that differ between the runs: name -> one value per run."""
    names = list(dict.fromkeys(k for r in runs for k in r.settings))
    return {k: [r.settings.get(k) for r in runs] for k in names if len({repr(r.settings.get(k)) for r in runs}) > 1}


def compare_frame(runs: list[Run], smoothing: float = 0.0, log: bool = False) -> pd.DataFrame:
    """Every run's curves on one plot, each series named after its run ("#a1 train")."""
    parts = []
    for r in runs:
        df = frame(r.curve, smoothing, log)
        parts.append(df[~df["series"].str.endswith(RAW)].assign(series=lambda d, r=r: f"#{r.id} " + d["series"]))
    return pd.concat(parts, ignore_index=True) if parts else pd.DataFrame(columns=["x", "y", "series"])


def aligned(runs: list[Run]) -> dict:
    """The runs' curves aligned on one x axis, per series: {series: {"x": [...], run id: [y or None]}}."""
    out: dict = {}
    for name in dict.fromkeys(row["series"] for r in runs for row in r.curve):
        xs = sorted({row["x"] for r in runs for row in r.curve if row["series"] == name})
        table = {"x": xs}
        for r in runs:
            ys = {row["x"]: row["y"] for row in r.curve if row["series"] == name}
            table[r.id] = [ys.get(x) for x in xs]
        out[name] = table
    return out
