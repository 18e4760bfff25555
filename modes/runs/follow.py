"""The learner's runs as the tabs show them: starting a training as a run the page follows, the
lines that describe a run (its place in the queue, that it is a replay), and the widgets every
training tab has; its curves are drawn by modes/runs/curves.py.

The runs themselves live in modes/runs/history.py; this module is what every tab shares to show them.
"""

from __future__ import annotations

import functools

from modes import ui
from modes.runs.curves import plot_update
from modes.runs.events import Done, Eval, Left, Queued, Replaying, Sample, Step
from modes.runs.history import Run, Session
from modes.runs.jobs import fmt_eta, run_job

CLEAR = {"__type__": "update", "value": None}  # empties a plot: the next data sets its series (and colours) anew


def new_session() -> Session:
    return Session()


# ---- starting and following a training -------------------------------------------------------
def start(ctx, session: Session | None, kind: str, settings: dict, key: dict | None, compute, est_seconds: float,
          on_done, curves: tuple[str, str] = ("train", "val"), keep=lambda result: True, fresh: bool = False,
          axes: tuple = ("step", "loss")) -> Run:
    """A training as a run of the session's owner: queued in the training slot (or replayed), driven
    in its own thread, and followed by whichever page shows it. `compute(stop)` yields the typed
    events (modes/runs/events.py); `on_done(run, result)` gives the run's changes for the result;
    `curves`: the names of the tab's train and held-out series (its registry entry's)."""
    history = ctx.history
    run = history.new_run(history.owner_of(session), kind, settings, axes)
    fold = functools.partial(fold_event, on_done=on_done, curves=curves)
    # In in-call mode (ZeroGPU) the request that started the run drives it: its GPU call must be the request's.
    history.start(run, run_job(ctx, key, lambda: compute(run.stop), run.stop, est_seconds, keep=keep, fresh=fresh, owner=run.owner), fold,
                  inline=ctx.heavy.in_call)
    return run


def fold_event(run: Run, ev, on_done, curves: tuple[str, str]) -> dict:
    """The one loop's body: any training's event, as changes of its run (curve points and samples are added here)."""
    if isinstance(ev, Queued):
        return {"status": "queued", "position": ev.position, "wait": ev.wait}
    if isinstance(ev, Left):
        return {"status": "left"}
    if isinstance(ev, Replaying):
        return {"status": "running", "replayed": ev.recording}
    if isinstance(ev, Step):
        run.curve.append({"x": ev.step, "y": ev.loss, "series": curves[0]})
        return {"status": "running", "progress": ev}
    if isinstance(ev, Eval):
        run.curve.append({"x": ev.step, "y": ev.loss, "series": curves[1]})
    elif isinstance(ev, Sample):
        run.samples.insert(0, f"— step {ev.step} —\n{ev.text}")
    elif isinstance(ev, Done):
        return {"status": "running", **on_done(run, ev)}
    else:
        raise TypeError(f"not a training event: {type(ev).__name__}")
    return {"status": "running"}


def progress_of(ctx, run: Run, lang: str, failed=lambda error: error):
    """What a page following `run` shows, until it ends: ("queue", line) while it waits, and
    ("progress", event) while it trains. A failure is raised as `failed(error)`."""
    for r in ctx.history.follow(run):
        if r.status in ("queued", "left"):
            yield "queue", queue_line(r, lang)
        elif r.status == "failed":
            if getattr(r.error, "key", None) and isinstance(getattr(r.error, "fmt", None), dict):
                raise ui.error(r.error.key, lang, **r.error.fmt)  # a refusal (ZeroGPU's quota, say), in the learner's language
            raise failed(r.error)
        elif r.result is None and r.progress is not None:
            yield "progress", r.progress


def reattach(ctx, kind: str, session: Session | None, follow, idle):
    """After a reload: `follow(run)` for the owner's run of this kind still going, or one `idle`
    update (every output left as it is) when there is none."""
    run = ctx.history.active(session.owner if session else None, kind)
    if run is None:
        yield idle
        return
    yield from follow(run)


def stop(ctx, kind: str, session: Session | None) -> None:
    """The Stop button: stops the owner's running (or queued) run of this kind, from any page."""
    run = ctx.history.active(session.owner if session else None, kind)
    if run is not None:
        ctx.history.stop(run)  # here at once, or through the database when another replica drives it


def queue_line(run: Run, lang: str) -> str:
    """A waiting learner's line: place in the queue and the estimated wait, or that they left it."""
    if run.status == "left":
        return ui.msg("queue_left", lang)
    return ui.msg("queue_wait", lang, pos=run.position, wait=fmt_eta(run.wait))


def replay_info(replayed) -> dict | None:
    """The summary's `replay` entry: None for a computed run, else when the original ran and how long."""
    if replayed is None:
        return None
    return {"recorded_at": replayed.recorded_at, "original_seconds": round(replayed.seconds, 1)}


def replay_line(replayed, lang: str) -> str:
    """Said plainly above a replayed result: these figures are an identical earlier run's."""
    return "♻️ " + ui.msg("replay_note", lang, when=replayed.recorded_at, secs=f"{replayed.seconds:.0f}")


def progress_line(md: str, replayed, lang: str) -> str:
    """A progress line, marked as a replay when it is one."""
    return "♻️ " + ui.msg("replay_progress", lang) + " " + md if replayed else md


def gpu_line(ctx, kind: str, steps: int, guess_s: float, lang: str) -> str:
    """In-call mode (ZeroGPU): how many GPU seconds a `kind` run of `steps` steps will ask for, and whether that was
    measured (modes/serving/gpu_budget.py) or is still the guess; '' in threads mode."""
    if not ctx.heavy.in_call:
        return ""
    from modes.serving.heavy import gpu_seconds

    secs = ctx.heavy.asked(gpu_seconds(guess_s), kind, steps)
    measured = ctx.heavy.budget.ask(kind, steps, 0.0, ctx.heavy.gpu)[1]
    key = "gpu_ask_over" if secs > ctx.heavy.limit_s else "gpu_ask_measured" if measured else "gpu_ask_guess"
    return ui.msg(key, lang, secs=f"{secs:.0f}", limit=f"{ctx.heavy.limit_s:.0f}")


def gpu_ask(page, line, inputs: list, elem_id: str) -> None:
    """Under a training button in in-call mode: the GPU seconds a run with the settings shown will ask for (`line`,
    an endpoint of `inputs`), drawn when the page opens and again when any of them changes."""
    import gradio as gr

    md = gr.Markdown(visible=page.ctx.heavy.in_call, elem_id=elem_id)
    if not page.ctx.heavy.in_call:
        return
    for comp in inputs:
        comp.change(line, inputs, md, api_name=False, queue=False, show_progress="hidden")
    if page.attached is not None:
        page.attached.then(line, inputs, md, api_name=False, queue=False)


# ---- the page's owner and adapter ----------------------------------------------------------------
def attach(ctx, browser_owner, session: Session):
    """Page load: the browser's owner id if this server issued it (else a new one, which the browser
    keeps), and that owner's chosen adapter back in the session."""
    owner = ctx.history.attach(session, browser_owner)
    return owner, adapter_of(ctx, owner)


def adapter_of(ctx, owner: str | None, run_id=None):
    """The Adapter of the owner's chosen fine-tune (or of `run_id`), read back from disk; None if gone."""
    from modes.model.adapters import Adapter

    found = ctx.history.adapter_bytes_of(owner, run_id)
    if found is None:
        return None
    run, data = found
    if run_id is not None:
        ctx.history.chosen[owner] = run.id
    return Adapter(zip_bytes=data, **run.adapter_meta)


# ---- the widgets every training tab has ------------------------------------------------------------
def view_of(session: Session | None, kind: str) -> dict:
    """How this page draws a tab's curves: {"smoothing", "log"} (changed live by the controls)."""
    return session.view.setdefault(kind, {"smoothing": 0.0, "log": False}) if session is not None else {}


def redraw(ctx, kind: str, run_id, smoothing: float, log: bool, session: Session | None = None,
           mark: str | None = None):
    """The smoothing or log control moved: remember it (a running stream uses it too) and redraw."""
    import gradio as gr

    view = view_of(session, kind)
    view.update(smoothing=float(smoothing or 0.0), log=bool(log))
    run = ctx.history.get(session.owner if session else None, run_id)
    if run is None:
        yield gr.skip()
        return
    yield CLEAR  # a plot keeps the colour domain of the first data it drew: clear it, then draw
    yield plot_update(run, view, mark=mark)


def curve_controls(ctx, kind: str, run_id, session, plot, mark: str | None = None) -> None:
    """A smoothing slider (EMA; 0 = raw) and a log-axis toggle under a loss plot."""

    import gradio as gr

    with gr.Row():
        smoothing = gr.Slider(0, 0.99, value=0.0, step=0.01, label=ui.t("curve_smoothing"), info=ui.t("curve_smoothing_info"),
                              elem_id=f"{kind}-smoothing")
        log = gr.Checkbox(value=False, label=ui.t("curve_log"), elem_id=f"{kind}-log")
    fn = functools.partial(redraw, ctx, kind, mark=mark)
    for comp in (smoothing, log):
        comp.change(fn, [run_id, smoothing, log, session], plot, api_name=False, show_progress="hidden")


def wire_training(ctx, kind: str, train, resume, inputs, outputs, train_btn, anew_btn, stop_btn, fresh_box, page,
                  api_name: str, resume_inputs: list | None = None) -> None:
    """The buttons of a training (train, train anew, stop) and its reattachment after a reload."""

    # Trainings queue in the app's training slot (visible position, leavable), not in Gradio's
    # queue: a replay never waits behind a real training, and a reattached page is never refused.
    train_btn.click(train, inputs, outputs, api_name=api_name, concurrency_limit=None)
    anew_btn.click(lambda: True, None, fresh_box, api_name=False, queue=False).then(
        train, inputs, outputs, api_name=False, concurrency_limit=None).then(lambda: False, None, fresh_box, api_name=False, queue=False)
    stop_btn.click(functools.partial(stop, ctx, kind), [page.session], None, queue=False, api_name=False)
    if page.attached is not None:
        page.attached.then(resume, resume_inputs or [page.session], outputs, api_name=False, concurrency_limit=None, show_progress="hidden")
