"""The class tab: a teacher creates a class and projects its board; learners join with a short code.

The board (modes/classboard/board.py) shows the class what it learned, measured: who is in and what each is
doing, a leaderboard and a settings-against-result scatter per tab, the three ways on the class's own
figures, and a class experiment's curve (each learner given the next value of one setting, pre-set in
their tab). The classes themselves are rows in the durable store (modes/runs/classes.py).

Here: the handlers (module level, the app context bound in by `ui.endpoint`; the API's doors are the same
functions), then `build(page)`, which lays out the tab and wires its events, then the registry entry.
"""

from __future__ import annotations

import tempfile
from pathlib import Path

import gradio as gr

from modes import ui
from modes.classboard.doors import (  # noqa: F401
    _refuse,
    board_of,
    class_board,
    class_create,
    class_csv,
    class_experiment,
    class_join,
    class_leave,
    class_share,
    class_teacher,
    my_class,
    parse_values,
    teacher_room,
)
from modes.classboard.drawing import LEARNER_COLUMNS, X_DEFAULT, draw
from modes.classboard.learner import join_ui, learner_view, leave_ui, refresh_view, rename_ui, shares_ui
from modes.tabs import Page, Tab

REFRESH_S = 3.0  # the projected board's refresh period


# ---- the page's handlers (the drawing is in drawing.py) ------------------------------------------------
def create_ui(ctx, request: gr.Request = None):
    """The Create button: a new class, its key shown once and kept in this browser."""
    made = class_create(ctx)
    teacher = {"code": made["code"], "key": made["teacher_key"]}
    lang = ui.lang_of(request)
    # The key goes into a closed accordion, never onto the part of the page a teacher projects.
    return (teacher, ui.msg("cl_created", lang, code=made["code"]), gr.update(visible=True),
            ui.msg("cl_key_once", lang, tkey=made["teacher_key"]), gr.Timer(active=True))


def open_ui(ctx, code: str, key: str, request: gr.Request = None):
    """Open an existing class's board with its code and teacher key (another browser, a projector)."""
    room = teacher_room(ctx, code, key, ui.lang_of(request))
    return {"code": room.code, "key": key}, "", gr.Timer(active=True)


def teacher_ui(ctx, tabs, teacher, action: str, run_id: str = "", request: gr.Request = None):
    if not teacher:
        raise ui.error("cl_no_board", ui.lang_of(request))
    class_teacher(ctx, tabs, teacher.get("code"), teacher.get("key"), action, run_id, request)
    return ""


def experiment_ui(ctx, tabs, teacher, kind: str, setting: str, values: str, request: gr.Request = None):
    if not teacher:
        raise ui.error("cl_no_board", ui.lang_of(request))
    class_experiment(ctx, tabs, teacher.get("code"), teacher.get("key"), kind, setting, values, request)
    return ""


def csv_ui(ctx, tabs, teacher, request: gr.Request = None):
    if not teacher:
        raise ui.error("cl_no_board", ui.lang_of(request))
    text = class_csv(ctx, tabs, teacher.get("code"), teacher.get("key"), request)
    path = Path(tempfile.mkdtemp(prefix="hml-class-")) / f"class-{teacher['code']}.csv"
    path.write_text(text, encoding="utf-8")
    return gr.File(value=str(path), visible=True)


# ---- layout and wiring ------------------------------------------------------------------------------
def build(page: Page) -> None:
    ctx, tabs = page.ctx, page.tabs
    controls = [(kind, name) for kind, widgets in page.controls.items() for name in widgets]
    widgets = [page.controls[kind][name] for kind, name in controls]
    gr.Markdown(ui.t("cl_intro"))
    _build_learner(page, controls, widgets)
    with gr.Accordion(ui.t("cl_teacher_title"), open=False):
        _build_teacher(page)
    gr.api(ui.endpoint(class_create, ctx), api_name="class_create", queue=False)
    gr.api(ui.endpoint(class_board, ctx, tabs), api_name="class_board", queue=False)
    gr.api(ui.endpoint(class_experiment, ctx, tabs), api_name="class_experiment", queue=False)
    gr.api(ui.endpoint(class_teacher, ctx, tabs), api_name="class_teacher", queue=False)
    gr.api(ui.endpoint(class_csv, ctx, tabs), api_name="class_csv", queue=False)


def _build_learner(page: Page, controls: list, widgets: list) -> None:
    ctx, tabs = page.ctx, page.tabs
    gr.Markdown(ui.t("cl_learner_title"))
    with gr.Row():
        code = gr.Textbox(label=ui.t("cl_code_label"), max_lines=1, max_length=16, elem_id="class-code")
        name = gr.Textbox(label=ui.t("cl_name_label"), max_lines=1, max_length=64, elem_id="class-name")
    with gr.Row():
        join_btn = gr.Button(ui.t("cl_join_btn"), variant="primary", elem_id="class-join")
        rename_btn = gr.Button(ui.t("cl_rename_btn"), elem_id="class-rename")
        leave_btn = gr.Button(ui.t("cl_leave_btn"))
    you = gr.Markdown(elem_id="class-you")
    shared = gr.CheckboxGroup([], label=ui.t("cl_shared_label"), info=ui.t("cl_shared_info"), elem_id="class-shared")
    aggregates = gr.Markdown(elem_id="class-aggregates")
    out = [you, aggregates, shared, code, *widgets]
    join_btn.click(ui.endpoint(join_ui, ctx, tabs, controls), [code, name, page.session], out, api_name=False, queue=False)
    # The API's doors act as the caller's owner (X-HML-Owner), so they take the session: hidden buttons carry them.
    api_out = gr.JSON(visible=False)
    gr.Button(visible=False).click(ui.endpoint(class_join, ctx), [code, name, page.session], api_out, api_name="class_join",
                                   queue=False)
    gr.Button(visible=False).click(ui.endpoint(my_class, ctx, tabs), [page.session], api_out, api_name="my_class", queue=False)
    share_id, share_on = gr.Textbox(visible=False), gr.Checkbox(visible=False)
    gr.Button(visible=False).click(ui.endpoint(class_share, ctx), [share_id, share_on, page.session], api_out,
                                   api_name="class_share", queue=False)
    rename_btn.click(ui.endpoint(rename_ui, ctx, tabs, controls), [name, page.session], out, api_name=False, queue=False)
    leave_btn.click(ui.endpoint(leave_ui, ctx, tabs, controls), [page.session], out, api_name=False, queue=False)
    shared.input(ui.endpoint(shares_ui, ctx, tabs, controls), [shared, page.session], out, api_name=False, queue=False)
    view = ui.endpoint(learner_view, ctx, tabs, controls)
    if page.attached is not None:  # after a reload: the class, the aggregates and the pre-set value are back
        page.attached.then(view, [page.session], out, api_name=False, queue=False)
    if page.tab is not None:
        page.tab.select(ui.endpoint(refresh_view, ctx, tabs, controls), [page.session], out, api_name=False, queue=False)


def _build_teacher(page: Page) -> None:
    ctx, tabs = page.ctx, page.tabs
    secret = ctx.browser_secret()
    teacher = gr.BrowserState(None, storage_key="hml-teacher", secret=secret)  # {"code", "key"} of the teacher's class
    gr.Markdown(ui.t("cl_teacher_intro"))
    with gr.Row():
        create_btn = gr.Button(ui.t("cl_create_btn"), variant="primary", elem_id="class-create")
        t_code = gr.Textbox(label=ui.t("cl_code_label"), max_lines=1, max_length=16)
        t_key = gr.Textbox(label=ui.t("cl_key_label"), type="password", max_lines=1, max_length=64)
        open_btn = gr.Button(ui.t("cl_open_btn"))
    created = gr.Markdown(elem_id="class-created")
    with gr.Accordion(ui.t("cl_key_title"), open=False, visible=False, elem_id="class-key-box") as key_box:
        key_md = gr.Markdown(elem_id="class-key")
    with gr.Row():
        hide_btn = gr.Button(ui.t("cl_hide_btn"), size="sm")
        show_btn = gr.Button(ui.t("cl_show_btn"), size="sm")
        remove_id = gr.Textbox(label=ui.t("cl_remove_label"), max_lines=1, max_length=20, scale=1)
        remove_btn = gr.Button(ui.t("cl_remove_btn"), size="sm")
        close_btn = gr.Button(ui.t("cl_close_btn"), size="sm", variant="stop")
        csv_btn = gr.Button(ui.t("cl_csv_btn"), size="sm")
    note = gr.Markdown()
    csv_file = gr.File(label=ui.t("cl_csv_label"), interactive=False, visible=False, height=80, elem_id="class-csv")
    with gr.Column(elem_id="class-board"):  # what a teacher projects: no key, no controls above it
        xs, outs = _build_board(tabs)
        started, exp_ui = _build_experiment(page, teacher)
    timer = gr.Timer(REFRESH_S, active=False)
    outs += [*exp_ui, timer]
    drawing = ui.endpoint(draw, ctx, tabs)
    redraw = dict(fn=drawing, inputs=[teacher, *xs], outputs=outs, api_name=False, queue=False, show_progress="hidden")
    timer.tick(**redraw)
    for x in xs:
        if isinstance(x, gr.Dropdown):
            x.change(**redraw)
    if page.tab is not None:
        page.tab.select(**redraw)
    create_btn.click(ui.endpoint(create_ui, ctx), None, [teacher, created, key_box, key_md, timer], api_name=False,
                     queue=False).then(**redraw)
    open_btn.click(ui.endpoint(open_ui, ctx), [t_code, t_key], [teacher, created, timer], api_name=False,
                   queue=False).then(**redraw)
    for btn, action in ((hide_btn, "hide_names"), (show_btn, "show_names"), (remove_btn, "remove_run"), (close_btn, "close")):
        btn.click(_teacher_action(ctx, tabs, action), [teacher, remove_id], note, api_name=False, queue=False).then(**redraw)
    started.then(**redraw)
    csv_btn.click(ui.endpoint(csv_ui, ctx, tabs), [teacher], csv_file, api_name=False, queue=False)


def _build_board(tabs) -> tuple[list, list]:
    """The board's head, learners, three-ways table, and a leaderboard and scatter per tab that scores runs.
    Returns (the scatters' x-axis inputs, the outputs `draw` fills, in its order)."""
    head = gr.Markdown(elem_id="class-board-head")
    learners = gr.Dataframe(headers=LEARNER_COLUMNS, interactive=False, wrap=True, label=ui.t("cl_learners_label"),
                            elem_id="class-learners", datatype="str")
    three = gr.Markdown(elem_id="class-three-ways")
    by_id = {}
    for t in tabs:
        if t.metric is None:
            continue
        gr.Markdown(ui.t(t.title), elem_classes=["class-part"])
        with gr.Row():
            lb = gr.Dataframe(headers=["learner", "run", "result", "settings"], interactive=False, wrap=True,
                              label=ui.t("cl_leaders_label"), elem_id=f"class-leaders-{t.id}", datatype="str")
            # Numeric settings only: the scatter's x axis is a number line.
            names = ["k"] if t.id == "incontext" else [s for s in t.shown if isinstance(getattr(t.config, s, None), (int, float))]
            x = gr.Dropdown(names, value=X_DEFAULT.get(t.id, names[0] if names else None), label=ui.t("cl_x_label"), scale=0,
                            min_width=120)
        sc = gr.ScatterPlot(x="x", y="y", label=ui.t("cl_scatter_label"), height=240, elem_id=f"class-scatter-{t.id}")
        by_id[t.id] = (lb, x, sc)
    xs = [by_id[k][1] if k in by_id else gr.State(X_DEFAULT[k]) for k in ("pretrain", "finetune", "incontext")]
    outs = [head, learners, three]
    for k in ("pretrain", "finetune", "incontext"):
        outs += [by_id[k][0], by_id[k][2]] if k in by_id else [gr.State(), gr.State()]
    return xs, outs


def _teacher_action(ctx, tabs, action: str):
    """A teacher button's handler: `action` on the teacher's class (then the board redraws)."""
    def handler(teacher, run_id: str = "", request: gr.Request = None):
        return teacher_ui(ctx, tabs, teacher, action, run_id, request)

    return ui.guard(handler)


def _build_experiment(page: Page, teacher) -> tuple:
    """The class experiment's controls and its plot; returns (the start event, the two outputs the board redraws)."""
    ctx, tabs = page.ctx, page.tabs
    kinds = [t.id for t in tabs if t.presets and t.id in page.controls]
    gr.Markdown(ui.t("cl_exp_title"))
    with gr.Row():
        kind = gr.Dropdown(kinds, value="finetune" if "finetune" in kinds else (kinds[0] if kinds else None),
                           label=ui.t("cl_exp_kind_label"), elem_id="class-exp-kind")
        setting = gr.Dropdown(sorted(page.controls.get("finetune", {})) if "finetune" in kinds else [], value="r",
                              label=ui.t("cl_exp_setting_label"), allow_custom_value=True, elem_id="class-exp-setting")
        values = gr.Textbox(value="1, 2, 4, 8, 16, 32", label=ui.t("cl_exp_values_label"), max_lines=1, max_length=400,
                            elem_id="class-exp-values")
        start = gr.Button(ui.t("cl_exp_start_btn"), variant="primary", elem_id="class-exp-start")
    note = gr.Markdown()
    kind.change(lambda k: gr.Dropdown(choices=sorted(page.controls.get(k, {})), value=None), kind, setting, api_name=False,
                queue=False)
    started = start.click(ui.endpoint(experiment_ui, ctx, tabs), [teacher, kind, setting, values], note, api_name=False,
                          queue=False)
    exp_plot = gr.ScatterPlot(x="value", y="result", label=ui.t("cl_exp_plot_label"), height=260, elem_id="class-exp-plot")
    exp_md = gr.Markdown(elem_id="class-exp-md")
    return started, [exp_plot, exp_md]


TAB = Tab(id="classboard", title="tab_class", build=build)
