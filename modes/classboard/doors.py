"""The class tab's doors: the API endpoints (and the handlers the page shares with them), as plain values.

Each takes the app context first (bound by `ui.endpoint`) and returns dicts or strings, never Gradio
components; the layout and drawing are in modes/classboard/tab.py, the board as data in board.py.
"""

from __future__ import annotations

import csv
import io
import time

import gradio as gr

from modes import ui
from modes.classboard import board as boards
from modes.runs.classes import ClassError


def _refuse(exc: ClassError, lang: str) -> gr.Error:
    return ui.error(exc.key, lang, **exc.fmt)


def _client(request) -> str:
    """The address a failed join is counted by: the real client's, behind a Space's proxy too (modes/address.py)."""
    from modes.address import client_address

    return client_address(request)


def teacher_room(ctx, code, teacher_key, lang: str):
    """The class when the key is its teacher's; the same short refusal for a wrong key or an unknown code."""
    try:
        return ctx.classes.teacher(code, teacher_key)
    except ClassError as exc:
        raise _refuse(exc, lang) from None


def board_of(ctx, tabs, room) -> dict:
    """The class's board, built once per change: three projected boards and the API polling an unchanged class
    (or one whose runs have not moved since) share one build."""
    runs = ctx.history.runs_of(list(room.members))
    mark = (id(tabs), room.version, tuple((r.id, r.version) for rs in runs.values() for r in rs))
    drawn = room.drawn
    if drawn is None or drawn[0] != mark:
        drawn = room.drawn = (mark, boards.board(room, runs, tabs))
    return {**drawn[1], "at": time.strftime("%H:%M:%S")}


def class_create(ctx) -> dict:
    """Create a class: its join code (6 characters, for learners) and its teacher key (128 bits, shown once:
    keep it; it opens the board)."""
    code, key = ctx.classes.create()
    return {"code": code, "teacher_key": key}


def class_join(ctx, code: str, name: str = "", session=None, request: gr.Request = None) -> dict:
    """Join a class with its code (as the X-HML-Owner caller, or this session). `name`: your display name
    (empty: a generated one). Your runs from now on are shared with the class; each can be unshared."""
    lang = ui.lang_of(request)
    owner = ctx.history.owner_of(session)
    try:
        member = ctx.classes.join(code, owner, name, lang, _client(request))
    except ClassError as exc:
        raise _refuse(exc, lang) from None
    room, _ = ctx.classes.membership(owner)
    exp = room.experiment
    return {"code": room.code, "name": member.name, "assigned": None if exp is None else
            {"kind": exp.kind, "setting": exp.setting, "value": member.value}}


def class_board(ctx, tabs, code: str, teacher_key: str, request: gr.Request = None) -> dict:
    """The class board as JSON (the teacher's): learners and what each is doing, runs per kind with settings
    and results (numbers only), leaderboards, the three ways on the class's figures, the experiment's points."""
    room = teacher_room(ctx, code, teacher_key, ui.lang_of(request))
    return board_of(ctx, tabs, room)


def class_experiment(ctx, tabs, code: str, teacher_key: str, kind: str, setting: str, values: str,
                     request: gr.Request = None) -> dict:
    """Start a class experiment: each learner (in join order, then each newcomer) is given the next of `values`
    (comma-separated) for `setting` of the `kind` tab, pre-set in their tab. Empty `values` ends it. Returns the board."""
    lang = ui.lang_of(request)
    room = teacher_room(ctx, code, teacher_key, lang)
    if not str(values or "").strip():
        ctx.classes.stop_experiment(room)
        return board_of(ctx, tabs, room)
    parsed = parse_values(tabs, kind, setting, values, lang)
    try:
        ctx.classes.set_experiment(room, kind, setting, parsed)
    except ClassError as exc:
        raise _refuse(exc, lang) from None
    return board_of(ctx, tabs, room)


def parse_values(tabs, kind: str, setting: str, values: str, lang: str) -> list:
    """The experiment's values, each checked by the tab's own config (the one validation path): "1, 2, 4"."""
    tab = next((t for t in tabs if t.id == kind and t.config is not None and t.presets), None)
    if tab is None:
        raise ui.error("cl_exp_kind", lang, kinds=", ".join(t.id for t in tabs if t.config is not None and t.presets))
    default = getattr(tab.config, setting, None) if setting in tab.presets else None
    if default is None:
        raise ui.error("cl_exp_setting", lang, setting=setting, kind=kind)
    out = []
    for raw in str(values).split(","):
        raw = raw.strip()
        if not raw:
            continue
        try:
            v = int(raw) if isinstance(default, int) else float(raw) if isinstance(default, float) else raw
        except ValueError:
            what = "a whole number" if isinstance(default, int) else "a number"
            raise ui.error("err_setting", lang, why=f"{setting}: must be {what}, got {raw!r}") from None
        ui.settings(tab.config, lang, **{setting: v})  # refused by field name when out of bounds
        out.append(v)
    return out


def class_teacher(ctx, tabs, code: str, teacher_key: str, action: str, run_id: str = "", request: gr.Request = None) -> dict:
    """A teacher's control: action "hide_names", "show_names", "remove_run" (run_id) or "close". Returns the board."""
    lang = ui.lang_of(request)
    room = teacher_room(ctx, code, teacher_key, lang)
    if action in ("hide_names", "show_names"):
        ctx.classes.set_names_shown(room, action == "show_names")
    elif action == "remove_run" and str(run_id or "").strip():
        ctx.classes.remove_run(room, str(run_id).strip())
    elif action == "close":
        ctx.classes.close(room)
    else:
        raise ui.error("cl_action", lang, action=str(action)[:40])
    return board_of(ctx, tabs, room)


def class_csv(ctx, tabs, code: str, teacher_key: str, request: gr.Request = None) -> str:
    """The board's runs as CSV, one row per run: learner, kind, status, settings and results."""
    room = teacher_room(ctx, code, teacher_key, ui.lang_of(request))
    rows = boards.csv_rows(board_of(ctx, tabs, room))  # new rows: the board itself is shared, never changed
    if not room.show_names:  # the export is the teacher's own: real names, whatever the projector shows
        names = {room.display(m): m.name for m in room.members.values()}
        for r in rows:
            r["learner"] = names.get(r["learner"], r["learner"])
    cols = list(dict.fromkeys(k for r in rows for k in r)) or ["learner", "kind", "run", "status"]
    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=cols)
    writer.writeheader()
    writer.writerows(rows)
    return buf.getvalue()


def my_class(ctx, tabs, session=None, request: gr.Request = None) -> dict:
    """The class you are in, as a learner sees it: its aggregates (the three ways, the experiment's medians, how
    many are in), your name and your assigned value; never another learner's runs. None when in no class."""
    owner = session.owner if session else None
    found = ctx.classes.membership(owner) if owner else None
    if found is None:
        return {}
    room, member = found
    return boards.for_learner(board_of(ctx, tabs, room), member)


def class_share(ctx, run_id: str, shared: bool = True, session=None, request: gr.Request = None) -> dict:
    """Share one of your runs with your class, or take it back (shared=False)."""
    lang = ui.lang_of(request)
    owner = session.owner if session else None
    if ctx.history.get(owner, str(run_id).lstrip("#")) is None:
        raise ui.error("cl_no_run", lang, id=str(run_id).lstrip("#")[:20])
    try:
        ctx.classes.share(owner, str(run_id), bool(shared))
    except ClassError as exc:
        raise _refuse(exc, lang) from None
    return {"run": str(run_id).lstrip("#"), "shared": bool(shared)}


def class_leave(ctx, session=None) -> dict:
    """Leave your class: your runs stay yours and leave its board."""
    if session is not None and session.owner:
        ctx.classes.leave(session.owner)
    return {}
