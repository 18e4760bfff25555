"""The fine-tune tab: one button teaches the model English↔Korean with a LoRA adapter, with proof.

Compute lives in modes/finetune/core.py and modes/model/adapters.py (imported lazily). Here: the checks
and the handlers (module level, the app context bound in by `ui.endpoint`), then `build(page)`,
which lays out the tab and wires its events, then the tab's registry entry. The adapter lives in
the learner's session (gr.State).
"""

from __future__ import annotations

import dataclasses
import tempfile
from pathlib import Path

import gradio as gr
import pandas as pd

from modes import ui
from modes.data import tasks
from modes.data import translation as tr
from modes.data.uploads import InputError
from modes.finetune import base_side
from modes.finetune.base_side import shakespeare_val
from modes.finetune.config import FinetuneConfig
from modes.finetune.data_panel import resolve_data, task_and_upload, upload_columns, wire_preview
from modes.finetune.files import export, load_adapter
from modes.finetune.plan import estimate, gpu_kind, gpu_line
from modes.finetune.report import _best, result_text, score_row
from modes.runs import curves
from modes.runs import follow as records
from modes.runs.jobs import fmt_eta
from modes.runs.keys import code_version, runtime, text_hash
from modes.tabs import Page, Tab

MARK = "held-out eval"  # the series whose lowest point the plot marks when it rose after it


def make_config(lang: str, **kw) -> FinetuneConfig:
    """The run's config from the widgets or the API (3.0 from a JSON client is 3), refused in the learner's language."""
    return ui.settings(FinetuneConfig, lang, **kw)


def run_key(ctx, cfg, train, test) -> dict:
    """Everything a fine-tune's figures depend on: an identical key replays the recorded run."""
    return {"kind": "finetune", "cfg": dataclasses.asdict(cfg), "data": text_hash([(p.source, p.target) for p in train],
            [(p.source, p.target) for p in test], tr.DEFAULT_TEMPLATE, repr(tasks.prompting(
                cfg.task, cfg.direction, cfg.summary_lang))), "model": ctx.proof().reference,
            "dtype": ctx.loader.dtype_name, "train_dtype": ctx.loader.train_dtype,
            "code": code_version("finetune/core", "finetune/batches", "finetune/config", "finetune/offtask", "finetune/scoring", "model",
                                 "serving", "metrics", "data"),
            **runtime()}


OUT = ui.Outputs("progress", "plot", "result", "table", "adapter_file", "adapter", "summary", "anew", "run_id")
D = FinetuneConfig()


def finetune(ctx, steps: int = D.steps, r: int = D.r, learning_rate: float = D.learning_rate, seed: int = D.seed,
             alpha: int = D.alpha, dropout: float = D.dropout, target: str = D.target, batch_size: int = D.batch_size,
             max_length: int = D.max_length, direction: str = D.direction, data_source: str = "built-in",
             upload=None, hub_id: str = "", hub_src: str = "source", hub_tgt: str = "target", fresh: bool = False,
             task: str = D.task, summary_lang: str = D.summary_lang, upload_src: str = "", upload_tgt: str = "",
             adapter=None, session=None, request: gr.Request = None):
    """Fine-tune the shared model with LoRA on labelled pairs; stream curves; return before/after proof.
    `task`: 'translation' (in `direction`) or 'dialogue-summary' (in `summary_lang`). An upload's columns are
    `upload_src` and `upload_tgt` (empty: guessed from their names). An identical earlier run (same
    settings, seed, data, model and code) is replayed unless `fresh`."""
    lang = ui.lang_of(request)
    cfg = make_config(lang, steps=steps, r=r, alpha=alpha, dropout=dropout, target=target, learning_rate=learning_rate,
                      batch_size=batch_size, max_length=max_length, seed=seed, direction=direction, task=task,
                      summary_lang=summary_lang)
    train, test = resolve_data(data_source, upload, hub_id, hub_src, hub_tgt, direction, lang, cfg.task, cfg.summary_lang,
                               upload_src or "", upload_tgt or "")
    if not ctx.loader.ready:
        yield OUT(progress=ui.msg("waiting_model", lang))
    ctx.loader.get()  # the libraries and the model, loaded by their one owner: never race it
    yield OUT(progress=ui.msg("ft_preparing", lang))
    data = data_source if data_source != "hub" else f"hub:{hub_id}"
    run = start_run(ctx, session, cfg, train, test, data, bool(fresh))
    yield from follow(ctx, run, session, adapter, lang)


def rerun(ctx, session, settings: dict, lang: str):
    """Run again (an interrupted run, from the scoreboard): a new run with the same settings and data. An
    upload's pairs are not kept, so such a run is refused with the reason."""
    data = str(settings.get("data") or "built-in")
    if data not in ("built-in",) and not data.startswith("hub:"):
        raise ui.error("err_rerun_upload", lang)
    fields = {f.name for f in dataclasses.fields(FinetuneConfig)} - {"eval_every"}
    cfg = make_config(lang, **{k: v for k, v in settings.items() if k in fields})
    source, hub_id = ("hub", data[4:]) if data.startswith("hub:") else ("built-in", "")
    train, test = resolve_data(source, None, hub_id, "source", "target", cfg.direction, lang, cfg.task, cfg.summary_lang)
    ctx.loader.get()
    return start_run(ctx, session, cfg, train, test, data, fresh=True)


def train_in_call(ctx, cfg: FinetuneConfig, train, test, chrf_before, off_task_base, fail_at_step, stop, base_outputs=None,
                  k_side=None):
    """Heavy (modes/serving/heavy.py): the fine-tune's events, where the seam runs it. Its scoring goes
    through that place's engine, in a private lane."""
    from modes.finetune.core import finetune as run_lora
    from modes.serving.engine import bulk_generator

    yield from run_lora(ctx.loader, cfg, train, test, should_stop=stop.is_set, chrf_before=chrf_before, base_outputs=base_outputs,
                        fail_at_step=fail_at_step, off_task_base=off_task_base, shakespeare_val=shakespeare_val(), k_side=k_side,
                        generate=ctx.base_answers(bulk_generator(ctx.engine, "ft:" + str(id(stop)))))


def start_run(ctx, session, cfg: FinetuneConfig, train, test, data: str, fresh: bool):
    """Start the run (queued, or replayed when identical to a recorded one) in its own thread; returns it."""
    cfg.eval_every = max(1, min(cfg.eval_every, cfg.steps // 3 or 1))
    from modes.finetune.core import FtResult
    from modes.serving.heavy import gpu_seconds

    # The base model's side of the scores is the same for every learner (modes/finetune/base_side.py):
    # looked up when the run starts, so one computed while it queued (by a run ahead, or in idle time) counts.
    base_key = base_side.base_key(ctx, cfg, test, train)
    base: dict = {}

    settings = {**dataclasses.asdict(cfg), "data": data}
    if cfg.task == "translation":
        settings.pop("summary_lang")  # a translation run's settings name what it depends on only
    est = estimate(cfg.task, cfg.steps)
    kind = gpu_kind(cfg.task)  # what a GPU call's seconds per step are measured for (modes/serving/gpu_budget.py)
    ctx.heavy.check(gpu_seconds(est), kind, cfg.steps)  # in-call mode: refused now if one GPU call could not hold it

    def compute(stop):
        base.update(ctx.results.get(base_key) or {})
        return ctx.heavy.stream(train_in_call, cfg, train, test, base.get("chrf"), base.get("off_task"),
                                ctx.hooks.get("fail_at_step"), stop=stop, seconds=gpu_seconds(est), kind=kind, steps=cfg.steps,
                                base_outputs=base.get("outputs"), k_side=base.get("k_side"))

    def on_done(run, res: FtResult) -> dict:
        if not run.replayed and not base:
            ctx.results.put(base_key, {"chrf": res.chrf_before, "off_task": res.off_task_base, "outputs": res.base_outputs,
                                       "k_side": res.k_side})
        meta = {f.name: getattr(res.adapter, f.name) for f in dataclasses.fields(res.adapter) if f.name not in ("zip_bytes", "path")}
        ctx.history.save_adapter(run, res.adapter.zip_bytes, meta)
        summary = {**res.summary(), "replay": records.replay_info(run.replayed), "n_pairs": len(train), "n_test": len(test),
                   "task": cfg.task, "label": tasks.prompting(cfg.task, cfg.direction, cfg.summary_lang).label}
        # The adapter's bytes live on disk and the curve is the run's own: neither is kept twice.
        light = dataclasses.replace(res, adapter=dataclasses.replace(res.adapter, zip_bytes=b""), curve=[])
        return {"result": light, "summary": summary, "outcome": "stopped" if res.stopped or res.diverged_at is not None else "done"}

    return records.start(ctx, session, TAB.id, settings, run_key(ctx, cfg, train, test), compute, est, on_done,
                         curves=TAB.curves, keep=lambda r: not r.stopped and r.diverged_at is None, fresh=fresh)


def follow(ctx, run, session, adapter, lang: str):
    """Stream a fine-tune run to this page until it ends (a reloaded page follows it again)."""
    def failed(error):
        if isinstance(error, InputError):  # the trained adapter failed the checks every adapter passes
            return ui.error(error.key, lang, **error.fmt)
        if isinstance(error, RuntimeError):
            return gr.Error(ui.msg("err_ft_failed", lang, why=str(error)))
        return error

    view = records.view_of(session, TAB.id)
    for kind, ev in records.progress_of(ctx, run, lang, failed):
        if kind == "queue":
            yield OUT(progress=ev, run_id=run.id)
        # The plot's colour legend is fixed by the first data it draws: the first drawing (step 1)
        # already holds both the train and the held-out series.
        elif ev.step:
            md = ui.msg("ft_progress", lang, step=ev.step, steps=ev.steps, eta=fmt_eta(ev.eta),
                        loss=f"{ev.loss:.3f}", sps=f"{ev.rate:.1f}")
            yield OUT(progress=records.progress_line(md, run.replayed, lang), plot=curves.plot_update(run, view), run_id=run.id)
    res = run.result
    if res is None:
        return  # left the queue, or a replay the learner stopped: no result (they can train anew)
    new_adapter = records.adapter_of(ctx, run.owner, run.id)
    path = Path(tempfile.mkdtemp(prefix="hml-adapter-")) / "lora-adapter.zip"  # this session's own download
    path.write_bytes(new_adapter.zip_bytes)
    new_adapter.path = str(path)
    if adapter is not None and adapter is not new_adapter:
        from modes.model.adapters import cleanup

        cleanup(adapter)  # the session's previous adapter file is replaced
    ft_task = run.settings.get("task", "translation")
    label = tasks.prompting(ft_task, run.settings["direction"], run.settings.get("summary_lang", "en")).label
    md = result_text(res, run.summary["n_test"], label, lang, ft_task)
    overfit = curves.overfit_line(run, lang)
    md = overfit + "\n\n" + md if overfit else md
    if run.replayed:
        md = records.replay_line(run.replayed, lang) + "\n\n" + md
    df = pd.DataFrame([[e["source"], e["base"], e["finetuned"], e["reference"]] for e in res.examples],
                      columns=["source", "base model", "fine-tuned", "reference"])
    if overfit:
        yield OUT(plot=records.CLEAR)  # the mark is a new series: the plot takes new series only when cleared first
    yield OUT(progress=ui.msg("ft_done", lang, steps=res.steps, secs=f"{res.seconds:.0f}"),
              plot=curves.plot_update(run, view, mark=MARK), result=md, table=df, adapter_file=str(path),
              adapter=new_adapter, summary=run.summary, anew=gr.update(visible=bool(run.replayed)), run_id=run.id)


def resume(ctx, session=None, adapter=None, request: gr.Request = None):
    """After a reload: follow the learner's fine-tune that is still running, if there is one."""
    lang = ui.lang_of(request)
    yield from records.reattach(ctx, TAB.id, session, lambda run: follow(ctx, run, session, adapter, lang), OUT())


def slider(name: str, label, **kw) -> gr.Slider:
    """A setting's slider, its bounds and default from FinetuneConfig."""
    return ui.setting(FinetuneConfig, name, label, **kw)


def build(page: Page) -> None:
    ctx = page.ctx
    gr.Markdown(ui.t("ft_card"), elem_classes=["card"])
    easier_btn = gr.Button(ui.t("ft_try_ko_en"), size="sm")

    # ---- data ----
    gr.Markdown(ui.t("ft_data_title"))
    ft_task, summary_lang, data_source, upload, upload_src, upload_tgt, columns_md = task_and_upload()
    with gr.Row():
        hub_id = gr.Textbox(value="", label=ui.t("ft_hub_id"), placeholder="org/dataset")
        hub_src = gr.Textbox(value="source", label=ui.t("ft_hub_src"))
        hub_tgt = gr.Textbox(value="target", label=ui.t("ft_hub_tgt"))
    preview = gr.Dataframe(headers=["source", "target"], label=ui.t("ft_preview"), interactive=False, wrap=True, elem_id="ft-preview")
    with gr.Row():
        prev_btn = gr.Button("◀", size="sm")
        page_no = gr.Number(value=1, precision=0, label=ui.t("ft_page"), minimum=1)
        next_btn = gr.Button("▶", size="sm")
        page_info = gr.Markdown()

    # ---- settings ----
    with gr.Accordion(ui.t("ft_advanced"), open=False):
        with gr.Row():
            direction = gr.Radio(list(tr.DIRECTIONS), value=D.direction, label=ui.t("direction_label"))
            target = gr.Radio(["attention", "all-linear"], value=D.target, label=ui.t("ft_target"))
        with gr.Row():
            r = slider("r", "r", info=ui.t("ft_r_info"))
            alpha = slider("alpha", "alpha", info=ui.t("ft_alpha_info"))
            dropout = slider("dropout", "dropout")
        with gr.Row():
            learning_rate = ui.checked_by_config(gr.Number(value=D.learning_rate, label=ui.t("ft_lr")))
            steps = slider("steps", ui.t("ft_steps"))
            batch_size = slider("batch_size", ui.t("ft_batch"))
            max_length = slider("max_length", ui.t("ft_maxlen"))
            seed = ui.checked_by_config(gr.Number(value=D.seed, precision=0, label=ui.t("seed_label")))
    with gr.Row():
        train_btn = gr.Button(ui.t("ft_train_btn"), variant="primary")
        stop_btn = gr.Button(ui.t("stop_btn"), variant="stop")
        anew_btn = gr.Button(ui.t("train_anew_btn"), visible=False)
        export_btn = gr.Button(ui.t("ft_export_btn"))
    fresh_box = gr.Checkbox(value=False, label=ui.t("fresh_label"), info=ui.t("fresh_info"))
    records.gpu_ask(page, ui.endpoint(gpu_line, ctx), [ft_task, steps], "ft-gpu-ask")
    progress_md = gr.Markdown()
    plot = gr.LinePlot(x="step", y="loss", color="split", label=ui.t("ft_plot_label"), height=260, elem_id="ft-plot",  # no initial value: see pretrain.py
                       color_map=curves.colors("train", "held-out eval", curves.BEST), color_title="")
    run_id = gr.State(None)  # the run the plot shows (the smoothing and log controls redraw it)
    records.curve_controls(ctx, TAB.id, run_id, page.session, plot, mark=MARK)
    result_md = gr.Markdown()
    table = gr.Dataframe(headers=["source", "base model", "fine-tuned", "reference"], label=ui.t("ft_table"), wrap=True)
    with gr.Row():
        adapter_file = gr.File(label=ui.t("ft_download"), interactive=False)
        script_file = gr.File(label=ui.t("ft_script"), interactive=False)
    with gr.Row():
        adapter_upload = gr.File(label=ui.t("ft_adapter_upload"), file_types=[".zip"], type="filepath")
        adapter_msg = gr.Markdown()
    summary = gr.JSON(label=ui.t("summary_json"))

    # ---- events ----
    wire_preview([data_source, upload, hub_id, hub_src, hub_tgt, direction, ft_task, summary_lang, upload_src, upload_tgt],
                  page_no, preview, page_info, prev_btn, next_btn)
    easier_btn.click(lambda: ("translation", "ko-en"), None, [ft_task, direction], api_name=False, queue=False)
    ft_task.change(lambda t: gr.update(visible=t == "dialogue-summary"), ft_task, summary_lang, api_name=False, queue=False)
    for comp in (upload, ft_task):  # a new file, or a task whose columns are named otherwise: offer and guess again
        comp.change(upload_columns, [upload, direction, ft_task], [upload_src, upload_tgt, columns_md], api_name=False, queue=False)

    settings = dict(steps=steps, r=r, learning_rate=learning_rate, seed=seed, alpha=alpha, dropout=dropout, target=target,
                    batch_size=batch_size, max_length=max_length, direction=direction)
    page.controls[TAB.id] = {name: settings[name] for name in TAB.presets}  # a class experiment may pre-set these
    inputs = ui.inputs(finetune, 1, **settings, data_source=data_source, upload=upload, hub_id=hub_id, hub_src=hub_src,
                       hub_tgt=hub_tgt, fresh=fresh_box, task=ft_task, summary_lang=summary_lang, upload_src=upload_src,
                       upload_tgt=upload_tgt, adapter=page.adapter, session=page.session)
    outputs = OUT.wire({"progress": progress_md, "plot": plot, "result": result_md, "table": table, "adapter_file": adapter_file,
                        "adapter": page.adapter, "summary": summary, "anew": anew_btn, "run_id": run_id})
    records.wire_training(ctx, TAB.id, ui.endpoint(finetune, ctx), ui.endpoint(resume, ctx), inputs, outputs,
                          train_btn, anew_btn, stop_btn, fresh_box, page, api_name="finetune", resume_inputs=[page.session, page.adapter])
    export_btn.click(ui.endpoint(export), ui.inputs(export, **settings, task=ft_task, summary_lang=summary_lang), script_file,
                     api_name="export_script")
    adapter_upload.upload(ui.endpoint(load_adapter, ctx), [adapter_upload, direction], [page.adapter, adapter_msg],
                          api_name="load_adapter")


TAB = Tab(id="finetune", title="tab_finetune", build=build, score_row=score_row, best=_best,
          curves=("train", "held-out eval"), headline=lambda s: f"{s.get('label') or ''} chrF {s['chrf_before']} → {s['chrf_after']}".strip(),
          shown=("task", "steps", "r", "learning_rate", "seed", "target", "direction", "summary_lang", "data"), rerun=rerun,
          # The class board ranks translation runs only: a summary's chrF is another task's.
          metric=("held-out chrF", lambda s: s["chrf_after"] if s.get("task", "translation") == "translation" else None),
          config=FinetuneConfig,
          presets=("steps", "r", "alpha", "dropout", "learning_rate", "batch_size", "max_length", "seed", "direction", "target"),
          warm=base_side.warm)
