"""The class board as plain data: who is in and what they are doing, a leaderboard and a settings-against-
result scatter per tab, the three ways measured on the class's own runs, and the class experiment's curve.

Pure functions of a class (modes/runs/classes.py), its learners' runs and the tab registry: no Gradio
and no torch, so the board is the same JSON for the page, the API and the CSV export, and tests build it
without a server. What leaves here is settings and numbers only: never a sample, an adapter, an example
translation or uploaded text (privacy: `numbers` keeps numbers, `public_settings` hides upload names).
"""

from __future__ import annotations

import math
import statistics
import time
from collections import Counter

LEADERS = 5  # rows per leaderboard


def numbers(summary: dict | None) -> dict:
    """A run summary's numbers (and one level of named numbers, e.g. chrF by k): no text can leave this way."""
    def num(v):
        return isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v)

    out = {}
    for k, v in (summary or {}).items():
        if num(v):
            out[k] = _r(v)
        elif isinstance(v, dict):
            inner = {str(kk): _r(vv) for kk, vv in v.items() if num(vv)}
            if inner:
                out[k] = inner
    return out


def _r(v):
    """Four decimals are plenty for a board (and a third of the bytes of a float's seventeen digits)."""
    return round(v, 4) if isinstance(v, float) else v


def public_settings(settings: dict) -> dict:
    """A run's settings as the class sees them: an uploaded file's name becomes "upload", an adapter its presence."""
    out = dict(settings)
    corpus = out.get("corpus")
    if isinstance(corpus, str) and corpus != "shakespeare" and "/" not in corpus:
        out["corpus"] = "upload"
    if "adapter" in out:
        out["adapter"] = out["adapter"] is not None
    return out


def figure(tab, summary: dict | None):
    """The tab's one figure for a finished run (its registry `metric`), or None."""
    if tab is None or tab.metric is None or not summary:
        return None
    try:
        v = tab.metric[1](summary)
    except (KeyError, TypeError, ValueError):
        return None
    return _r(v) if isinstance(v, (int, float)) and math.isfinite(v) else None


def doing(runs: list) -> str:
    """What a learner is doing now, from their shared runs: idle, queued, or training a kind at step N."""
    active = [r for r in runs if r.active]
    if not active:
        return "idle"
    r = active[-1]
    if r.status == "queued":
        return f"queued for {r.kind} (place {r.position})"
    step = getattr(r.progress, "step", None)
    if step is None and r.curve:
        step = r.curve[-1]["x"]
    return f"training {r.kind}" + (f" at step {step}" if step is not None else "")


def spread(values: list) -> dict | None:
    """Median, lowest and highest of a list of figures (None when empty)."""
    if not values:
        return None
    return {"median": round(statistics.median(values), 2), "low": round(min(values), 2), "high": round(max(values), 2)}


def _stat(rows: list, value) -> dict | None:
    """spread() of value(row) over rows, with how many runs and learners it comes from."""
    vals = [(r["learner"], v) for r in rows if (v := value(r)) is not None]
    s = spread([v for _, v in vals])
    return None if s is None else {**s, "runs": len(vals), "learners": len({who for who, _ in vals})}


def three_ways(runs: dict) -> dict:
    """The seed's "main differences" on the class's own figures, per translation direction: chrF with no
    examples (k=0), with the best k, and after LoRA (with its off-task price), plus pre-training's val bits/char.
    Each figure says how many runs and learners it comes from."""
    ic = [r for r in runs.get("incontext", []) if r["result"].get("chrf")]
    # Translation only: a dialogue-summary adapter's chrF is another task's.
    ft = [r for r in runs.get("finetune", []) if r["result"].get("chrf_after") is not None
          and r["settings"].get("task", "translation") == "translation"]
    out: dict = {"directions": {}}
    for d in sorted({r["settings"].get("direction") for r in ic + ft} - {None}):
        ic_d = [r for r in ic if r["settings"].get("direction") == d]
        ft_d = [r for r in ft if r["settings"].get("direction") == d]
        best_ks = Counter(r["result"].get("best_k") for r in ic_d if r["result"].get("best_k") is not None)
        off = lambda r, a, b: (r["result"].get("off_task", {}).get(a), r["result"].get("off_task", {}).get(b))
        out["directions"][d] = {
            "k0": _stat(ic_d, lambda r: r["result"]["chrf"].get("0")),
            "best_k": _stat(ic_d, lambda r: r["result"]["chrf"].get(str(r["result"].get("best_k")))),
            "most_common_k": best_ks.most_common(1)[0][0] if best_ks else None,
            "lora": _stat(ft_d, lambda r: r["result"]["chrf_after"]),
            "lora_before": _stat(ft_d, lambda r: r["result"].get("chrf_before")),
            # The off-task price: how much the reverse direction's chrF fell, and general text's bits/char rose.
            "reverse_chrf_drop": _stat(ft_d, lambda r: None if None in off(r, "reverse_chrf_before", "reverse_chrf_after")
                                       else off(r, "reverse_chrf_before", "reverse_chrf_after")[0] - off(r, "reverse_chrf_before", "reverse_chrf_after")[1]),
            "general_bpc_rise": _stat(ft_d, lambda r: None if None in off(r, "general_bpc_after", "general_bpc_before")
                                      else off(r, "general_bpc_after", "general_bpc_before")[0] - off(r, "general_bpc_after", "general_bpc_before")[1]),
        }
    out["pretrain"] = _stat([r for r in runs.get("pretrain", []) if r["settings"].get("objective", "next-token") == "next-token"],
                            lambda r: r["figure"])
    return out


def scatter(kind: str, rows: list, x: str) -> list[dict]:
    """One point per run: its setting `x` against its figure (in-context: one point per k it measured)."""
    pts = []
    for r in rows:
        if kind == "incontext" and x == "k":
            pts += [{"x": int(k), "y": v, "learner": r["learner"], "run": r["id"]} for k, v in r["result"].get("chrf", {}).items()]
            continue
        v = r["settings"].get(x)
        if isinstance(v, (int, float)) and not isinstance(v, bool) and r["figure"] is not None:
            pts.append({"x": v, "y": r["figure"], "learner": r["learner"], "run": r["id"]})
    return pts


def experiment_points(room, rows_by_kind: dict, names: dict, tabs: dict) -> dict | None:
    """The class experiment: a point per learner (their best finished run with their assigned value) and the
    median per value, in the order of the values."""
    exp = room.experiment
    if exp is None:
        return None
    tab = tabs.get(exp.kind)
    points = []
    for owner, member in room.members.items():
        mine = [r for r in rows_by_kind.get(exp.kind, []) if r["owner"] == owner and r["figure"] is not None
                and r["score"] is not None and _same(r["settings"].get(exp.setting), member.value)]
        if mine:
            best = max(mine, key=lambda r: r["score"])  # the tab's own ranking (higher is better)
            points.append({"value": member.value, "result": best["figure"], "learner": names[owner], "run": best["id"]})
    order = {str(v): i for i, v in enumerate(exp.values)}
    points.sort(key=lambda p: (order.get(str(p["value"]), len(order)), p["learner"]))
    curve = []
    for v in dict.fromkeys(exp.values):
        got = [p["result"] for p in points if _same(p["value"], v)]
        if got:
            curve.append({"value": v, "median": round(statistics.median(got), 3), "learners": len(got)})
    assigned = Counter(str(m.value) for m in room.members.values())
    return {**exp.as_dict(), "metric": tab.metric[0] if tab and tab.metric else "", "points": points, "curve": curve,
            "assigned": {str(v): assigned.get(str(v), 0) for v in exp.values}}


def _same(a, b) -> bool:
    try:
        return float(a) == float(b)
    except (TypeError, ValueError):
        return str(a) == str(b)


def board(room, runs_by_owner: dict, tabs: list, now: float | None = None) -> dict:
    """The whole board as JSON (what /class_board returns; the page draws the same). `runs_by_owner`: every
    member's runs (History.runs_of); only the runs the class shares are read."""
    by_id = {t.id: t for t in tabs}
    names = {o: room.display(m) for o, m in room.members.items()}
    learners, rows_by_kind = [], {}
    for owner, member in room.members.items():
        shared = [r for r in runs_by_owner.get(owner, []) if room.shared(member, r)]
        learners.append({"name": names[owner], "doing": doing(shared), "runs": len(shared),
                         "finished": sum(r.summary is not None for r in shared), "value": member.value})
        for r in shared:
            tab = by_id.get(r.kind)
            rows_by_kind.setdefault(r.kind, []).append({
                "id": r.id, "owner": owner, "learner": names[owner], "kind": r.kind, "status": r.status,
                "created": round(r.created, 1), "settings": public_settings(r.settings), "result": numbers(r.summary),
                "figure": figure(tab, r.summary), "score": None if r.summary is None or tab is None or tab.best is None
                else _safe(tab.best, r.summary)})
    leaders = {}
    for kind, rows in rows_by_kind.items():
        ranked = sorted((r for r in rows if r["score"] is not None), key=lambda r: -r["score"])
        leaders[kind] = [{k: r[k] for k in ("learner", "id", "figure", "settings")} for r in ranked[:LEADERS]]
    out = {"code": room.code, "closed": room.closed_at is not None, "names_shown": room.show_names,
           "at": time.strftime("%H:%M:%S", time.localtime(now or time.time())), "learners": learners,
           "metrics": {t.id: t.metric[0] for t in tabs if t.metric}, "leaders": leaders,
           "three_ways": three_ways(rows_by_kind), "experiment": experiment_points(room, rows_by_kind, names, by_id),
           "runs": {k: [{kk: v for kk, v in r.items() if kk not in ("owner", "score", "kind")} for r in rows]
                    for k, rows in rows_by_kind.items()}}
    return out


def _safe(fn, summary):
    try:
        v = fn(summary)
    except (KeyError, TypeError, ValueError):
        return None
    return v if isinstance(v, (int, float)) and math.isfinite(v) else None


def for_learner(full: dict, member) -> dict:
    """What a learner sees of their class: the aggregates (the three ways, the experiment's medians, how many
    are in), their own name and value; never another learner's name, runs or results."""
    exp = full["experiment"]
    return {"code": full["code"], "closed": full["closed"], "learners": len(full["learners"]), "you": member.name,
            "your_value": member.value, "three_ways": full["three_ways"],
            "experiment": None if exp is None else {k: exp[k] for k in ("kind", "setting", "values", "metric", "curve")}}


def csv_rows(full: dict) -> list[dict]:
    """One row per shared run (name, kind, status, settings, results) for the teacher's CSV export."""
    rows = []
    for kind, runs in full["runs"].items():
        for r in runs:
            row = {"learner": r["learner"], "kind": kind, "run": r["id"], "status": r["status"],
                   "created": time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(r["created"]))}
            row.update({f"setting.{k}": v for k, v in r["settings"].items()})
            for k, v in r["result"].items():
                if isinstance(v, dict):
                    row.update({f"result.{k}.{kk}": vv for kk, vv in v.items()})
                else:
                    row[f"result.{k}"] = v
            rows.append(row)
    return rows
