"""The pre-training tab: next-token loss on any text, and a tiny Gemma 3 pre-trained live from scratch.

Compute lives in modes/pretrain_core.py (imported lazily, so the page appears before torch loads);
this module lays out the tab and wires its events.
"""

from __future__ import annotations

import gradio as gr
import pandas as pd

from modes import corpus as corpus_mod
from modes import scoreboard, ui
from modes.jobs import StopFlag, Throttle, fmt_eta, run_job
from modes.loader import gpu
from modes.uploads import InputError

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
    from modes.pretrain_config import MAX_TEXT_CHARS

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


def parse_config(size, steps, seed, lang: str):
    from modes.pretrain_config import MAX_STEPS, PretrainConfig

    if size not in SIZES:
        raise ui.error("err_unknown_preset", lang, name=size, choices=", ".join(SIZES))
    try:
        steps_i, seed_i = int(steps), int(seed)
        if steps_i != steps:
            raise ValueError
    except (TypeError, ValueError, OverflowError):
        raise ui.error("err_steps", lang, cap=MAX_STEPS) from None
    if not 1 <= steps_i <= MAX_STEPS:
        raise ui.error("err_steps", lang, cap=MAX_STEPS)
    cfg = PretrainConfig(size=size, steps=steps_i, seed=seed_i)
    # About 20 val points and 6 samples whatever the run length, but never so often that they dominate.
    cfg.eval_every = max(10, steps_i // 20)
    cfg.sample_every = max(25, steps_i // 6)
    return cfg


def run_key(ctx, cfg, data) -> dict:
    """Everything a pre-training run's figures depend on: an identical key replays the recorded run."""
    from dataclasses import asdict

    from modes.reuse import code_version, runtime, text_hash

    return {"kind": "pretrain", "cfg": asdict(cfg), "corpus": [data.name, text_hash(data.train, data.val)],
            "code": code_version("pretrain_core", "pretrain_config", "optim", "loader", "metrics"),
            "reference_model": [ctx.loader.model_id, ctx.loader.dtype_request], **runtime()}


def queue_message(ev, lang: str) -> str:
    """The waiting learner's line: place in the queue and the estimated wait."""
    return ui.msg("queue_wait", lang, pos=ev.position, wait=fmt_eta(ev.wait))


def build(ctx, runs: gr.State) -> None:
    from modes.pretrain_config import MAX_STEPS, PretrainConfig

    loader = ctx.loader

    defaults = PretrainConfig()
    gr.Markdown(ui.t("pt_card"), elem_classes=["card"])

    # ---- Part 1 ----
    gr.Markdown(ui.t("pt_part1_title"))
    with gr.Row():
        with gr.Column(scale=3):
            text = gr.Textbox(label=ui.t("pt_text_label"), lines=3, value=EXAMPLES[0][0], max_length=2000)
            gr.Examples(EXAMPLES, inputs=[text], label=ui.t("pt_examples_label"), example_labels=[
                "Shakespeare", "한국어 (Korean)", "random letters", "repeated phrase"])
            gr.Markdown(ui.t("pt_examples_hint"))
            score_btn = gr.Button(ui.t("pt_score_btn"), variant="primary")
        with gr.Column(scale=2):
            totals = gr.Markdown()
            top5 = gr.Label(label=ui.t("pt_top5_label"), num_top_classes=5)
    tokens = gr.HighlightedText(label=ui.t("pt_tokens_label"), color_map=COLORS, show_legend=True, combine_adjacent=False, interactive=False)
    loss_json = gr.JSON(label=ui.t("summary_json"), visible=False)

    @ui.guard
    @gpu
    def token_loss(text: str, request: gr.Request = None):
        """Next-token loss of every token of `text` under the pretrained model, with top-5 guesses."""
        lang = ui.lang_of(request)
        text = validate_text(text, lang)
        model, tok = loader.get()  # waits for the libraries and the model: never import them before
        from modes.pretrain_core import token_losses
        res = token_losses(model, tok, text)
        spans = [(r["token"], bucket(r["loss"])) for r in res.tokens]
        md = ui.msg("pt_totals", lang, mean=res.mean_loss, ppl=res.perplexity, bpc=res.bits_per_char, n=len(res.tokens))
        return spans, md, None, {**res.as_dict(), "dtype": loader.dtype_name}

    def show_top(summary: dict, evt: gr.SelectData):
        if not summary or evt.index is None:
            return None
        i = evt.index if isinstance(evt.index, int) else evt.index[0]
        row = summary["tokens"][i]
        return {repr(t)[1:-1] or "∅": p for t, p in row["top"]}

    score_btn.click(token_loss, [text], [tokens, totals, top5, loss_json], api_name="token_loss")
    tokens.select(show_top, [loss_json], [top5], api_name=False, queue=False)

    # ---- Part 2 ----
    gr.Markdown(ui.t("pt_part2_title"))
    stop_flag = gr.State(StopFlag())
    with gr.Row():
        corpus_dd = gr.Dropdown(["shakespeare", "upload"], value="shakespeare", allow_custom_value=True,
                                label=ui.t("pt_corpus_label"), info=ui.t("pt_corpus_info"))
        upload = gr.File(label=ui.t("pt_upload_label"), file_types=[".txt"], type="filepath")
    with gr.Row():
        size = gr.Radio(list(SIZES), value=defaults.size, label=ui.t("pt_size_label"), info=ui.t("pt_size_info"))
        steps = gr.Slider(1, MAX_STEPS, value=defaults.steps, step=1, label=ui.t("pt_steps_label"))
        seed = gr.Number(value=defaults.seed, precision=0, label=ui.t("seed_label"))
    with gr.Row():
        train_btn = gr.Button(ui.t("pt_train_btn"), variant="primary")
        stop_btn = gr.Button(ui.t("stop_btn"), variant="stop")
        anew_btn = gr.Button(ui.t("train_anew_btn"), visible=False)
    fresh_box = gr.Checkbox(value=False, label=ui.t("fresh_label"), info=ui.t("fresh_info"))
    progress_md = gr.Markdown()
    # No initial value: an empty DataFrame fixes the column types as numbers, and the lines then
    # never draw (tests/test_browser.py checks the drawn paths).
    # A fixed colour map gives the legend its entries before the first point arrives.
    plot = gr.LinePlot(x="step", y="loss", color="split", label=ui.t("pt_plot_label"), height=280, elem_id="pt-plot",
                       color_map={"train": "#6366f1", "val": "#f97316"}, color_title="")
    samples_box = gr.Textbox(label=ui.t("pt_samples_label"), lines=8, interactive=False)
    result_md = gr.Markdown()
    summary = gr.JSON(label=ui.t("summary_json"))

    @ui.guard
    @gpu(duration=300)
    def pretrain(corpus: str = "shakespeare", size: str = "baby", steps: int = defaults.steps, seed: int = 1337,
                 upload=None, fresh: bool = False, stop: StopFlag | None = None, runs: dict | None = None,
                 request: gr.Request = None):
        """Pre-train a tiny Gemma 3 on characters from scratch, streaming curves and samples.
        An identical earlier run (same settings, seed, data and code) is replayed unless `fresh`."""
        lang = ui.lang_of(request)
        cfg = parse_config(size, steps, seed, lang)
        data = resolve_corpus(corpus, upload, lang)
        if not loader.libraries_ready:
            yield ui.msg("waiting_libraries", lang), gr.skip(), gr.skip(), gr.skip(), gr.skip(), gr.skip()
        loader.libraries()  # the one owner of torch/transformers imports: never race it
        from modes.pretrain_core import PretrainResult, pretrained_bpc, train_scratch
        stop = stop if stop is not None else StopFlag()
        stop.clear()
        rows: list[dict] = []
        samples: list[str] = []
        throttle = Throttle(0.5)
        replayed = None

        def reference(text: str) -> float:
            return pretrained_bpc(*loader.get(), text)

        def compute():
            return train_scratch(loader, data, cfg, should_stop=stop.is_set, reference_bpc=reference)

        est = cfg.steps * 0.05 + 10  # seconds: about 50 ms a step at `baby` on 2 cores, plus evals and samples
        try:
            for job in run_job(ctx, run_key(ctx, cfg, data), compute, stop, est, keep=lambda r: not r.stopped, fresh=bool(fresh)):
                if job.kind == "queued":
                    yield queue_message(job, lang), gr.skip(), gr.skip(), gr.skip(), gr.skip(), gr.skip()
                    continue
                if job.kind == "left":
                    yield ui.msg("queue_left", lang), gr.skip(), gr.skip(), gr.skip(), gr.skip(), gr.skip()
                    return
                if job.kind == "replay":
                    replayed = job.value
                    yield gr.skip(), gr.skip(), gr.skip(), gr.skip(), gr.skip(), gr.update(visible=True)
                    continue
                ev = job.value
                if isinstance(ev, PretrainResult):
                    break
                rows.append({"step": ev.step, "loss": ev.train_loss, "split": "train"})
                if ev.val_loss is not None:
                    rows.append({"step": ev.step, "loss": ev.val_loss, "split": "val"})
                if ev.sample is not None:
                    samples.insert(0, f"— step {ev.step} —\n{ev.sample}")
                if throttle(force=ev.sample is not None):
                    md = ui.msg("pt_progress", lang, step=ev.step, steps=ev.steps, tps=f"{ev.tokens_per_s:,.0f}",
                                eta=fmt_eta(ev.eta), loss=f"{ev.train_loss:.3f}")
                    if replayed:
                        md = "♻️ " + ui.msg("replay_progress", lang) + " " + md
                    yield md, pd.DataFrame(rows), "\n\n".join(samples), gr.skip(), gr.skip(), gr.skip()
            else:
                return  # a replay the learner stopped: no result (they can train anew)
        finally:
            stop.clear()
        res = ev
        key = "pt_result_stopped" if res.stopped else "pt_result"
        ref = "—" if res.pretrained_val_bpc is None else f"{res.pretrained_val_bpc:.2f}"
        md = ui.msg(key, lang, steps=res.steps, params=f"{res.params:,}", bpc=f"{res.val_bpc:.2f}", ref=ref,
                    secs=f"{res.seconds:.0f}", tps=f"{res.tokens_per_s:,.0f}", pct=f"{100 * res.params_updated_fraction:.0f}")
        done = ui.msg("pt_progress_done", lang, step=res.steps, secs=f"{res.seconds:.0f}")
        summary = res.summary()
        summary["replay"] = None
        if replayed:
            # Said plainly: these figures are an identical earlier run's, streamed again.
            summary["replay"] = {"recorded_at": replayed.recorded_at, "original_seconds": round(replayed.seconds, 1)}
            md = "♻️ " + ui.msg("replay_note", lang, when=replayed.recorded_at, secs=f"{replayed.seconds:.0f}") + "\n\n" + md
        scoreboard.record_pretrain(runs, summary, data.name, len(data.train) + len(data.val))
        yield done, pd.DataFrame(rows), "\n\n".join(samples), md, summary, gr.update(visible=bool(replayed))

    outputs = [progress_md, plot, samples_box, result_md, summary, anew_btn]
    inputs = [corpus_dd, size, steps, seed, upload, fresh_box, stop_flag, runs]
    # Trainings queue in ctx.slot (visible position, leavable), not in Gradio's queue: replays never wait.
    train_btn.click(pretrain, inputs, outputs, api_name="pretrain", concurrency_limit=None)
    anew_btn.click(lambda: True, None, fresh_box, api_name=False, queue=False).then(
        pretrain, inputs, outputs, api_name=False, concurrency_limit=None).then(lambda: False, None, fresh_box, api_name=False, queue=False)
    stop_btn.click(lambda flag: flag.set(), [stop_flag], None, queue=False, api_name=False)
