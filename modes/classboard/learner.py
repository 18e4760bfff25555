"""The learner's side of the class tab: who they are in which class, the class's own figures, their runs to share
or not, and the class experiment's value pre-set in its tab; joining, renaming, sharing and leaving redraw it.
Handlers with the app context bound in by `ui.endpoint` (modes/classboard/tab.py wires them)."""

from __future__ import annotations

import gradio as gr

from modes import ui
from modes.classboard import board as boards
from modes.classboard.doors import _refuse, board_of, class_join, class_leave
from modes.classboard.drawing import three_ways_md
from modes.runs.classes import ClassError


def learner_view(ctx, tabs, controls: list, session=None, request: gr.Request = None, preset: bool = True):
    """The learner's side after a join or a page load: who they are in which class, the class's aggregates, their
    runs to share or not, and (`preset`) the experiment's value set in its tab's widget (every other widget left
    alone). Opening the class tab again redraws all but the widget: a value the learner changed since stays."""
    lang = ui.lang_of(request)
    owner = session.owner if session else None
    found = ctx.classes.membership(owner) if owner else None
    query = dict(getattr(request, "query_params", None) or {}) if request is not None else {}
    if found is None:
        code = query.get("class", "")
        return (ui.msg("cl_not_joined", lang), "", gr.CheckboxGroup(choices=[], value=[]),
                gr.update(value=code) if code else gr.skip(), *(gr.skip() for _ in controls))
    room, member = found
    mine = boards.for_learner(board_of(ctx, tabs, room), member)
    exp = room.experiment
    you = ui.msg("cl_you", lang, name=member.name, code=room.code, n=mine["learners"])
    if exp is not None:
        title = next((ui.msg(t.title, lang) for t in tabs if t.id == exp.kind), exp.kind)
        you += "\n\n" + ui.msg("cl_your_value", lang, kind=title, setting=exp.setting, value=member.value)
    runs = [r for r in ctx.history.runs(owner) if r.created >= member.joined]
    choices = [(f"#{r.id} {r.kind} ({r.status})", r.id) for r in runs]
    shared = [r.id for r in runs if r.id not in member.unshared and r.id not in room.removed]
    presets = [gr.update(value=member.value) if preset and exp is not None and (kind, name) == (exp.kind, exp.setting)
               else gr.skip() for kind, name in controls]
    agg = three_ways_md(mine["three_ways"], {}, lang)
    if mine["experiment"] and mine["experiment"]["curve"]:
        e = mine["experiment"]
        agg += "\n\n" + ui.msg("cl_exp_class_curve", lang, setting=e["setting"], metric=e["metric"]) + "\n" + "\n".join(
            f"- {e['setting']} = {c['value']}: {c['median']} ({c['learners']})" for c in e["curve"])
    return (you, agg, gr.CheckboxGroup(choices=choices, value=shared), gr.update(value=room.code), *presets)


def refresh_view(ctx, tabs, controls, session=None, request: gr.Request = None):
    """The class tab opened again: the learner's side redrawn, their tab's widgets left as they are."""
    return learner_view(ctx, tabs, controls, session, request, preset=False)


def join_ui(ctx, tabs, controls, code: str, name: str, session=None, request: gr.Request = None):
    class_join(ctx, code, name, session, request)
    return learner_view(ctx, tabs, controls, session, request)


def rename_ui(ctx, tabs, controls, name: str, session=None, request: gr.Request = None):
    lang = ui.lang_of(request)
    try:
        ctx.classes.rename(session.owner if session else None, name)
    except ClassError as exc:
        raise _refuse(exc, lang) from None
    return learner_view(ctx, tabs, controls, session, request)


def shares_ui(ctx, tabs, controls, picked: list, session=None, request: gr.Request = None):
    """The learner ticked or unticked runs: exactly the ticked ones are shared."""
    owner = session.owner if session else None
    found = ctx.classes.membership(owner) if owner else None
    if found is None:
        return learner_view(ctx, tabs, controls, session, request)
    room, member = found
    picked = {str(p) for p in (picked or [])}
    for r in ctx.history.runs(owner):
        if r.created >= member.joined and (r.id in picked) == (r.id in member.unshared):
            ctx.classes.share(owner, r.id, r.id in picked)
    return learner_view(ctx, tabs, controls, session, request)


def leave_ui(ctx, tabs, controls, session=None, request: gr.Request = None):
    class_leave(ctx, session)
    return learner_view(ctx, tabs, controls, session, request)
