"""The pre-training tab: next-token loss on any text, and a tiny Gemma 3 pre-trained live from scratch.

Compute lives in modes/pretrain/core.py (imported lazily, so the page appears before torch loads).
Here: the checks and the handlers (module level, the app context bound in by `ui.endpoint`), then
`build(page)`, which lays out the tab and wires its events, then the tab's registry entry.
"""

from __future__ import annotations

import dataclasses
from dataclasses import asdict

import gradio as gr

from modes import ui
from modes.data import corpus as corpus_mod
from modes.data.uploads import InputError
from modes.pretrain.cards import _best, _headline, result_card, samples_view, score_row, two_ways
from modes.pretrain.config import MAX_TEXT_CHARS, PretrainConfig
from modes.pretrain.plan import estimate, gpu_kind, gpu_line
from modes.runs import curves
from modes.runs import follow as records
from modes.runs.jobs import fmt_eta
from modes.runs.keys import code_version, runtime, text_hash
from modes.tabs import Page, Tab

# Loss buckets for the colour legend (nats): low = the model saw it coming.
BUCKETS = [(1.0, "loss < 1"), (3.0, "1–3"), (6.0, "3–6"), (float("inf"), "≥ 6")]
COLORS = {"loss < 1": "#22c55e", "1–3": "#a3e635", "3–6": "#f59e0b", "≥ 6": "#ef4444"}
SIZES = ("tiny", "baby", "small")
EXAMPLES = [
    ["Now is the winter of our discontent\nMade glorious summer by this sun of York;"],
    ["오늘은 날씨가 맑아서 공원에 산책하러 갔어요."],
    ["qzx vbnm tkpl wrj fdhs gmyq"],
    ["The quick brown fox jumps over the lazy dog. The quick brown fox jumps over the lazy dog."],
]


def bucket(loss: float) -> str:
    return next(label for top, label in BUCKETS if loss < top)


def validate_text(text: str | None, lang: str) -> str:
    if text is None or not str(text).strip():
        raise ui.error("err_text_empty", lang)
    if len(text) > MAX_TEXT_CHARS:
        raise ui.error("err_text_too_long", lang, n=len(text), cap=MAX_TEXT_CHARS)
    return text


def resolve_corpus(name: str | None, upload, lang: str):
    """'shakespeare', 'upload' (the uploaded .txt), or a Hub dataset id."""
    name = (name or "shakespeare").strip()
    try:
        if name == "shakespeare":
            return corpus_mod.shakespeare()
        if name == "upload":
            if upload is None:
                raise ui.error("err_upload_missing", lang)
            return corpus_mod.from_upload(upload if isinstance(upload, str) else upload.name)
        return corpus_mod.from_hub(name)
    except InputError as exc:
        raise ui.error(exc.key, lang, **exc.fmt) from None


def parse_config(size, steps, seed, lang: str, objective: str = PretrainConfig.objective, mask_rate: float = PretrainConfig.mask_rate):
    """The run's config from the widgets or the API, checked by PretrainConfig (the one validation path)."""
    cfg = ui.settings(PretrainConfig, lang, size=size, steps=steps, seed=seed, objective=objective, mask_rate=mask_rate)
    # About 20 val points and 6 samples whatever the run length, but never so often that they dominate.
    cfg.eval_every = max(10, cfg.steps // 20)
    cfg.sample_every = max(25, cfg.steps // 6)
    return cfg


def run_key(ctx, cfg, data) -> dict:
    """Everything a pre-training run's figures depend on: an identical key replays the recorded run."""
    return {"kind": "pretrain", "cfg": asdict(cfg), "corpus": [data.name, text_hash(data.train, data.val)],
            "code": code_version("pretrain/core", "pretrain/config", "pretrain/optim", "pretrain/scratch", "pretrain/masked",
                                 "model", "metrics"),
            "reference_model": [ctx.loader.model_id, ctx.loader.dtype_request], **runtime()}


def losses_in_call(ctx, text: str):
    """Heavy (modes/serving/heavy.py): every token's loss under the served model."""
    from modes.pretrain.core import token_losses

    return token_losses(*ctx.loader.get(), text)


def train_in_call(ctx, data, cfg: PretrainConfig, stop):
    """Heavy: the pre-training's events (modes/runs/events.py), where the seam runs it."""
    from modes.metrics import pretrained_bpc
    from modes.pretrain.core import train_scratch

    loader = ctx.loader
    yield from train_scratch(loader, data, cfg, should_stop=stop.is_set, reference_bpc=lambda text: pretrained_bpc(*loader.get(), text))


def token_loss(ctx, text: str, request: gr.Request = None):
    """Next-token loss of every token of `text` under the pretrained model, with top-5 guesses."""
    lang = ui.lang_of(request)
    text = validate_text(text, lang)
    ctx.loader.get()  # waits for the libraries and the model: never import them before
    from modes.serving.heavy import gpu_seconds

    res = ctx.heavy.call(losses_in_call, text, seconds=gpu_seconds(5))
    spans = [(r["token"], bucket(r["loss"])) for r in res.tokens]
    md = ui.msg("pt_totals", lang, mean=res.mean_loss, ppl=res.perplexity, bpc=res.bits_per_char, n=len(res.tokens))
    return spans, md, None, {**res.as_dict(), "dtype": ctx.loader.dtype_name}


def show_top(summary: dict, evt: gr.SelectData):
    """The top-5 guesses at the token the learner clicked."""
    if not summary or evt.index is None:
        return None
    i = evt.index if isinstance(evt.index, int) else evt.index[0]
    row = summary["tokens"][i]
    return {repr(t)[1:-1] or "∅": p for t, p in row["top"]}


OUT = ui.Outputs("progress", "plot", "samples", "fill_in", "result", "summary", "anew", "run_id")  # the summary stays the API's last value


def pretrain(ctx, corpus: str = "shakespeare", size: str = PretrainConfig.size, steps: int = PretrainConfig.steps,
             seed: int = PretrainConfig.seed, upload=None, fresh: bool = False, objective: str = PretrainConfig.objective,
             mask_rate: float = PretrainConfig.mask_rate, session=None, request: gr.Request = None):
    """Pre-train a tiny Gemma 3 on characters from scratch, streaming curves and samples. `objective`:
    'next-token' (GPT: predict each character from the left) or 'masked' (BERT: predict hidden characters
    from both sides; `mask_rate` of them). An identical earlier run (same settings, seed, data and code)
    is replayed unless `fresh`."""
    lang = ui.lang_of(request)
    cfg = parse_config(size, steps, seed, lang, objective, mask_rate)
    data = resolve_corpus(corpus, upload, lang)
    if not ctx.loader.libraries_ready:
        yield OUT(progress=ui.msg("waiting_libraries", lang))
    run = start_run(ctx, session, cfg, data, bool(fresh))
    yield from follow(ctx, run, session, lang)


def rerun(ctx, session, settings: dict, lang: str):
    """Run again (an interrupted run, from the scoreboard): a new run with the same settings. An upload's
    text is not kept, so such a run is refused with the reason."""
    if settings.get("corpus") not in (None, "shakespeare") and "/" not in str(settings.get("corpus")):
        raise ui.error("err_rerun_upload", lang)
    cfg = parse_config(settings.get("size"), settings.get("steps"), settings.get("seed"), lang,
                       settings.get("objective", PretrainConfig.objective), settings.get("mask_rate", PretrainConfig.mask_rate))
    return start_run(ctx, session, cfg, resolve_corpus(settings.get("corpus") or "shakespeare", None, lang), fresh=True)


def start_run(ctx, session, cfg: PretrainConfig, data, fresh: bool):
    """Start the run (queued, or replayed when identical to a recorded one) in its own thread; returns it."""
    ctx.loader.libraries()  # the one owner of torch/transformers imports: never race it
    from modes.pretrain.core import PretrainResult
    from modes.serving.heavy import gpu_seconds

    est = estimate(cfg.steps)
    kind = gpu_kind(cfg.size, cfg.objective)  # what a GPU call's seconds per step are measured for
    ctx.heavy.check(gpu_seconds(est), kind, cfg.steps)  # in-call mode: refused now if one GPU call could not hold it

    def compute(stop):
        return ctx.heavy.stream(train_in_call, data, cfg, stop=stop, seconds=gpu_seconds(est), kind=kind, steps=cfg.steps)

    def on_done(run, res: PretrainResult) -> dict:
        summary = {**res.summary(), "replay": records.replay_info(run.replayed), "corpus": data.name,
                   "n_chars": len(data.train) + len(data.val)}
        kept = dataclasses.replace(res, curve=[])  # the curve is the run's own (run.curve)
        return {"result": kept, "summary": summary, "outcome": "stopped" if res.stopped else "done"}

    settings = {"corpus": data.name, "size": cfg.size, "steps": cfg.steps, "seed": cfg.seed, "objective": cfg.objective}
    if cfg.objective == "masked":
        settings["mask_rate"] = cfg.mask_rate
    return records.start(ctx, session, TAB.id, settings, run_key(ctx, cfg, data), compute, est, on_done, curves=TAB.curves,
                         keep=lambda r: not r.stopped, fresh=fresh)



def follow(ctx, run, session, lang: str):
    """Stream a pre-training run to this page until it ends (a reloaded page follows it again)."""
    view = records.view_of(session, TAB.id)
    shown = -1  # samples sent to this page so far (-1: none yet, so the first update sends them)
    for kind, ev in records.progress_of(ctx, run, lang):
        if kind == "queue":
            yield OUT(progress=ev, run_id=run.id)
            continue
        md = ui.msg("pt_progress", lang, step=ev.step, steps=ev.steps, tps=f"{ev.rate:,.0f}",
                    eta=fmt_eta(ev.eta), loss=f"{ev.loss:.3f}")
        samples = {}
        if len(run.samples) != shown:  # a new sample: once per sample_every steps, not every step
            shown = len(run.samples)
            text, colour = samples_view(run)
            samples = {"samples": text, "fill_in": gr.update(value=colour, visible=colour is not None)}
        yield OUT(progress=records.progress_line(md, run.replayed, lang), plot=curves.plot_update(run, view),
                  anew=gr.update(visible=bool(run.replayed)), run_id=run.id, **samples)
    res = run.result
    if res is None:
        return  # left the queue, or a replay the learner stopped: no result (they can train anew)
    md = result_card(res, lang)
    two = two_ways(ctx, session, lang)
    if two:
        md += "\n\n" + two
    if run.replayed:  # said plainly: these figures are an identical earlier run's, streamed again
        md = records.replay_line(run.replayed, lang) + "\n\n" + md
    text, colour = samples_view(run)
    yield OUT(progress=ui.msg("pt_progress_done", lang, step=res.steps, secs=f"{res.seconds:.0f}"),
              plot=curves.plot_update(run, view), samples=text, fill_in=gr.update(value=colour, visible=colour is not None),
              result=md, summary=run.summary, anew=gr.update(visible=bool(run.replayed)), run_id=run.id)


def resume(ctx, session=None, request: gr.Request = None):
    """After a reload: follow the learner's pre-training that is still running, if there is one."""
    lang = ui.lang_of(request)
    yield from records.reattach(ctx, TAB.id, session, lambda run: follow(ctx, run, session, lang), OUT())


def build(page: Page) -> None:
    ctx, defaults = page.ctx, PretrainConfig()
    gr.Markdown(ui.t("pt_card"), elem_classes=["card"])

    # ---- Part 1 ----
    gr.Markdown(ui.t("pt_part1_title"))
    with gr.Row():
        with gr.Column(scale=3):
            text = gr.Textbox(label=ui.t("pt_text_label"), lines=3, value=EXAMPLES[0][0], max_length=MAX_TEXT_CHARS)
            gr.Examples(EXAMPLES, inputs=[text], label=ui.t("pt_examples_label"), example_labels=[
                "Shakespeare", "한국어 (Korean)", "random letters", "repeated phrase"])
            gr.Markdown(ui.t("pt_examples_hint"))
            score_btn = gr.Button(ui.t("pt_score_btn"), variant="primary")
        with gr.Column(scale=2):
            totals = gr.Markdown()
            top5 = gr.Label(label=ui.t("pt_top5_label"), num_top_classes=5)
    tokens = gr.HighlightedText(label=ui.t("pt_tokens_label"), color_map=COLORS, show_legend=True, combine_adjacent=False, interactive=False)
    loss_json = gr.JSON(label=ui.t("summary_json"), visible=False)

    # ---- Part 2 ----
    gr.Markdown(ui.t("pt_part2_title"))
    with gr.Row():
        corpus_dd = gr.Dropdown(["shakespeare", "upload"], value="shakespeare", allow_custom_value=True,
                                label=ui.t("pt_corpus_label"), info=ui.t("pt_corpus_info"))
        upload = gr.File(label=ui.t("pt_upload_label"), file_types=[".txt"], type="filepath")
    with gr.Row():
        size = gr.Radio(list(SIZES), value=defaults.size, label=ui.t("pt_size_label"), info=ui.t("pt_size_info"))
        steps = ui.setting(PretrainConfig, "steps", ui.t("pt_steps_label"))
        seed = ui.checked_by_config(gr.Number(value=defaults.seed, precision=0, label=ui.t("seed_label")))
    with gr.Row():
        objective = ui.checked_by_config(gr.Radio([(ui.t("pt_objective_next"), "next-token"), (ui.t("pt_objective_masked"), "masked")],
                             value=defaults.objective, label=ui.t("pt_objective_label"), info=ui.t("pt_objective_info"),
                             elem_id="pt-objective"))
        mask_rate = ui.setting(PretrainConfig, "mask_rate", ui.t("pt_mask_rate_label"), info=ui.t("pt_mask_rate_info"),
                               visible=defaults.objective == "masked")
    with gr.Row():
        train_btn = gr.Button(ui.t("pt_train_btn"), variant="primary")
        stop_btn = gr.Button(ui.t("stop_btn"), variant="stop")
        anew_btn = gr.Button(ui.t("train_anew_btn"), visible=False)
    fresh_box = gr.Checkbox(value=False, label=ui.t("fresh_label"), info=ui.t("fresh_info"))
    records.gpu_ask(page, ui.endpoint(gpu_line, ctx), [size, steps, objective], "pt-gpu-ask")
    progress_md = gr.Markdown()
    # No initial value: an empty DataFrame fixes the column types as numbers, and the lines then
    # never draw (tests/test_browser.py checks the drawn paths).
    # A fixed colour map gives the legend its entries before the first point arrives.
    plot = gr.LinePlot(x="step", y="loss", color="split", label=ui.t("pt_plot_label"), height=280, elem_id="pt-plot",
                       color_map=curves.colors("train", "val"), color_title="")
    run_id = gr.State(None)  # the run the plot shows (the smoothing and log controls redraw it)
    records.curve_controls(page.ctx, TAB.id, run_id, page.session, plot)
    samples_box = gr.Textbox(label=ui.t("pt_samples_label"), lines=8, interactive=False)
    fill_in = gr.HighlightedText(label=ui.t("pt_fill_in_label"), color_map={"right": "#22c55e", "wrong": "#ef4444"},
                                 show_legend=True, combine_adjacent=False, interactive=False, visible=False, elem_id="pt-fill-in")
    result_md = gr.Markdown()
    summary = gr.JSON(label=ui.t("summary_json"))

    # ---- events ----
    score_btn.click(ui.endpoint(token_loss, ctx), [text], [tokens, totals, top5, loss_json], api_name="token_loss")
    tokens.select(show_top, [loss_json], [top5], api_name=False, queue=False)
    objective.change(lambda o: gr.update(visible=o == "masked"), objective, mask_rate, api_name=False, queue=False)
    outputs = OUT.wire({"progress": progress_md, "plot": plot, "samples": samples_box, "fill_in": fill_in, "result": result_md,
                        "summary": summary, "anew": anew_btn, "run_id": run_id})
    inputs = ui.inputs(pretrain, 1, corpus=corpus_dd, size=size, steps=steps, seed=seed, upload=upload, fresh=fresh_box,
                       objective=objective, mask_rate=mask_rate, session=page.session)
    # TAB.presets: a class experiment may pre-set these
    page.controls[TAB.id] = {"size": size, "steps": steps, "seed": seed, "objective": objective, "mask_rate": mask_rate}
    records.wire_training(ctx, TAB.id, ui.endpoint(pretrain, ctx), ui.endpoint(resume, ctx), inputs, outputs,
                          train_btn, anew_btn, stop_btn, fresh_box, page, api_name="pretrain")


TAB = Tab(id="pretrain", title="tab_pretrain", build=build, score_row=score_row, best=_best, headline=_headline,
          shown=("corpus", "size", "steps", "seed", "objective"), rerun=rerun,
          # The class board ranks next-token runs only: a masked run's bits/char are on another task.
          metric=("val bits/char", lambda s: s["val_bpc"] if s.get("objective", "next-token") == "next-token" else None),
          config=PretrainConfig,
          presets=("size", "steps", "seed", "objective", "mask_rate"))
