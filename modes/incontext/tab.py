"""The in-context tab: a few-shot translation playground and a "how many examples?" sweep.

Generation goes through the app's one engine (modes/serving/engine.py). The pool table and the request's checks are
inputs.py. Here: the handlers (module level, the app context bound in by `ui.endpoint`), then `build(page)`, which lays out the
tab and wires its events, then the tab's registry entry. The weights never change here, and the
panel proves it with a hash before and after.
"""

from __future__ import annotations

import time

import gradio as gr
import pandas as pd

from modes import ui
from modes.data import translation as task
from modes.data.translation import SELECTIONS
from modes.fields import whole
from modes.incontext.config import SweepConfig, TranslateConfig
from modes.incontext.inputs import default_pool, parse_ks, pool_warning, prepare, translate_config
from modes.runs.jobs import Throttle
from modes.tabs import Page, Tab

T, S = TranslateConfig(), SweepConfig()
SWEEP_ICL, SWEEP_LORA = "in-context (base model)", "LoRA fine-tuned (k=0)"
EXAMPLE_TEXT = {"en-ko": "Where can I buy a ticket for the museum?", "ko-en": "박물관 표는 어디에서 살 수 있어요?"}


def preview(ctx, text, direction, k, selection, seed, template, max_new_tokens, pool_df, request: gr.Request = None):
    """Show the exact prompt and its token count; warm the prefix cache so the run starts fast."""
    lang = ui.lang_of(request)
    try:
        cfg = translate_config(lang, direction=direction, k=k, selection=selection, seed=seed, template=template,
                               max_new_tokens=max_new_tokens)
        prefix, query, flagged = prepare(text, cfg, pool_df, lang)
    except gr.Error as exc:
        return "", f"⚠️ {exc.message}"
    warn = pool_warning(flagged, lang)
    if not ctx.loader.ready:
        return prefix + query, ui.msg("ic_model_loading", lang) + warn
    model, tok = ctx.loader.get()
    n = len(tok(prefix + query)["input_ids"])
    ctx.engine.prefixes.get("base", model, tok, prefix)
    return prefix + query, ui.msg("ic_prompt_tokens", lang, n=n) + warn


OUT = ui.Outputs("output", "weights", "prompt", "prompt_info", "summary")


def translate(ctx, text: str, direction: str = T.direction, k: int = T.k, selection: str = T.selection, seed: int = T.seed,
              use_adapter: bool = False, template: str = T.template, temperature: float = T.temperature,
              top_p: float = T.top_p, max_new_tokens: int = T.max_new_tokens, pool=None, adapter=None,
              request: gr.Request = None):
    """Translate with k in-context examples (optionally through the session's LoRA adapter), streaming."""
    lang = ui.lang_of(request)
    cfg = translate_config(lang, direction=direction, k=k, selection=selection, seed=seed, template=template,
                           temperature=temperature, top_p=top_p, max_new_tokens=max_new_tokens)
    prefix, query, flagged = prepare(text, cfg, pool, lang)
    if not isinstance(use_adapter, bool):
        raise ui.error("err_setting", lang, why=f"use_adapter: must be true or false, got {use_adapter!r}")
    if use_adapter and adapter is None:
        raise ui.error("err_no_adapter", lang)
    if not ctx.loader.ready:
        yield OUT(weights=ui.msg("waiting_model", lang))
    model, tok = ctx.loader.get()  # the libraries and the model, loaded by their one owner
    t0 = time.perf_counter()
    before = ctx.proof_before()
    t_gen = time.perf_counter()  # time to first token counts from here: queue, prefill (unless cached), first step
    lane, run_model = ctx.adapter_model(adapter) if use_adapter else ("base", model)
    ev, ttft = None, None
    throttle = Throttle(0.15)
    session = getattr(request, "session_hash", None) or "api"
    for ev in ctx.engine.stream(model=run_model, tok=tok, lane=lane, prefix=prefix, query=query, max_new=cfg.max_new_tokens,
                                temperature=cfg.temperature, top_p=cfg.top_p, seed=cfg.seed, session=session):
        if ttft is None and ev.ttft is not None:
            ttft = time.perf_counter() - t_gen
        # Streamed at most every 0.15 s: every token for 16 learners was Gradio work that slowed the batch.
        if not ev.done and throttle():
            yield OUT(output=ev.text)
    proof = ctx.proof_after(before, time.perf_counter())
    after, same = proof["after"], proof["unchanged"]
    seconds = time.perf_counter() - t0
    n_tokens = len(tok(prefix + query)["input_ids"])
    md = ui.msg("ic_weights", lang, h1=before[:16], h2=after[:16], same="✅" if same else "❌",
                ttft=f"{ttft or 0:.2f}", secs=f"{seconds:.1f}",
                via=ui.msg("ic_via_adapter", lang) if use_adapter else "")
    empty = None if ev.text else ui.msg("empty_reason", "en")
    if empty:
        md = "⚠️ " + ui.msg("empty_reason_ui", lang) + "\n\n" + md
    res = {"translation": ev.text, "prompt": prefix + query, "prompt_tokens": n_tokens, "seconds": round(seconds, 3),
           "weights_unchanged": same, "ttft": round(ttft or 0.0, 3), "generate_seconds": round(time.perf_counter() - t_gen, 3),
           "parameters_updated": 0, "used_adapter": use_adapter, "k": cfg.k, "direction": cfg.direction,
           "pool": "built-in" if pool is None else "given", "pool_warnings": flagged, "dtype": ctx.loader.dtype_name,
           "proof": {"hash_before": before, "hash_after": after, "hash_shared_with": proof["shared_with"],
                     "hash_wait_s": proof["wait_s"]}}
    if empty:
        res["empty_reason"] = empty
    warn = pool_warning(flagged, lang)
    yield OUT(output=ev.text, weights=md + warn, prompt=prefix + query,
              prompt_info=ui.msg("ic_prompt_tokens", lang, n=n_tokens) + warn, summary=res)


def icl_sweep(ctx, direction: str = T.direction, ks: str = S.ks, n: int | None = None, seed: int = S.seed, adapter=None,
              session=None, request: gr.Request = None, progress=gr.Progress()):
    """chrF on the held-out split for each k (fixed seeded examples, shared prefix, batched).
    `n`: how many held-out pairs (None: all of them)."""
    lang = ui.lang_of(request)
    if not ctx.loader.ready:
        progress(0, desc=ui.msg("waiting_model", lang))
    ctx.loader.get()  # the libraries and the model, loaded by their one owner
    from modes.incontext.core import sweep_lora, sweep_points

    cfg = ui.settings(SweepConfig, lang, direction=direction, ks=ks, seed=0 if seed is None else seed)
    direction, seed = cfg.direction, cfg.seed
    k_list = parse_ks(cfg.ks, lang)
    test = task.pairs_for(direction, "test")
    try:
        test = test[: whole(len(test) if n is None else n, "n", 1, len(test))]
    except ValueError:
        raise ui.error("err_n_range", lang, max=len(test)) from None
    t0 = time.perf_counter()
    steps = len(k_list) + (1 if adapter is not None else 0)
    lane_session = "sweep:" + (getattr(request, "session_hash", None) or "api")  # the engine's per-session row cap
    on_point = lambda kk: progress(k_list.index(kk) / steps, desc=ui.msg("ic_sweep_progress", lang, k=kk))
    scores, reused = sweep_points(ctx, direction, k_list, test, seed, lane_session, on_point)
    rows = [{"k": kk, "chrF": scores[kk], "method": SWEEP_ICL} for kk in k_list]
    lora = None
    if adapter is not None:
        progress(len(k_list) / steps, desc=ui.msg("ic_sweep_progress_lora", lang))
        lora, lora_reused = sweep_lora(ctx, adapter, direction, test, lane_session)
        reused += [lora_reused] if lora_reused else []
        rows += [{"k": kk, "chrF": lora, "method": SWEEP_LORA} for kk in (min(k_list), max(k_list))]
    seconds = round(time.perf_counter() - t0, 2)
    best = max(scores, key=scores.get)
    md = ui.msg("ic_sweep_result", lang, best=best, score=scores[best], n=len(test), secs=f"{seconds:.0f}")
    if lora is not None:
        md += "\n\n" + ui.msg("ic_sweep_lora", lang, score=lora)
    if reused:
        md += "\n\n♻️ " + ui.msg("ic_sweep_reused", lang, ks=", ".join(str(r["k"]) for r in reused),
                                   when=reused[0]["computed_at"], secs=f"{sum(r['seconds'] for r in reused):.0f}")
    df = pd.DataFrame(rows)
    # k is a count: the plot's x axis shows the measured k values as categories, in order.
    plot = gr.LinePlot(value=df.assign(k=df["k"].astype(str)), sort=[str(kk) for kk in k_list])
    out = {"chrf": {str(kk): v for kk, v in scores.items()}, "seconds": seconds, "n": len(test), "direction": direction,
           "best_k": best, "lora_chrf": lora, "dtype": ctx.loader.dtype_name,
           # Base-model points served from the shared results (computed earlier for identical settings).
           "reused": reused}
    from modes.model.adapters import adapter_key

    settings = {"direction": direction, "ks": ",".join(map(str, k_list)), "n": len(test), "seed": seed,
                "adapter": adapter_key(adapter) if adapter is not None else None}
    run = ctx.history.new_run(ctx.history.owner_of(session), TAB.id, settings, axes=("k", "chrF"))
    run.curve = [{"x": r["k"], "y": r["chrF"], "series": r["method"]} for r in rows]
    ctx.history.update(run, status="done", summary=out)
    return plot, df, md, out


def score_row(i: dict | None, lang: str) -> str:
    """This tab's row of the three-ways scoreboard, from the learner's latest sweep."""
    if not i:
        return ui.msg("sb_empty_incontext", lang)
    best = str(i["best_k"])
    return ui.msg("sb_row_incontext", lang, k=best, secs=f"{i['seconds']:.0f}", score=i["chrf"][best], n=i["n"],
                  other=ui.msg("sb_other_incontext", lang))


def slider(name: str, label) -> gr.Slider:
    """A setting's slider, its bounds and default from TranslateConfig."""
    return ui.setting(TranslateConfig, name, label)


def build(page: Page) -> None:
    ctx = page.ctx
    gr.Markdown(ui.t("ic_card"), elem_classes=["card"])
    with gr.Row():
        with gr.Column(scale=3):
            text = gr.Textbox(value=EXAMPLE_TEXT[T.direction], label=ui.t("ic_text"), lines=2)
            easier_btn = gr.Button(ui.t("ic_try_ko_en"), size="sm")
            with gr.Row():
                direction = gr.Radio(list(task.DIRECTIONS), value=T.direction, label=ui.t("direction_label"))
                k = slider("k", ui.t("ic_k"))
                selection = gr.Radio([(ui.t(f"ic_sel_{x}"), x) for x in SELECTIONS], value=T.selection, label=ui.t("ic_selection"))
                seed = ui.checked_by_config(gr.Number(value=T.seed, precision=0, label=ui.t("seed_label")))
            with gr.Accordion(ui.t("ic_decoding"), open=False):
                template = gr.Textbox(value=T.template, lines=2, label=ui.t("ic_template"), info=ui.t("ic_template_info"))
                with gr.Row():
                    temperature = slider("temperature", ui.t("ic_temperature"))
                    top_p = slider("top_p", "top-p")
                    max_new_tokens = slider("max_new_tokens", ui.t("ic_max_new"))
            use_adapter = gr.Checkbox(value=False, label=ui.t("ic_use_adapter"))
            translate_btn = gr.Button(ui.t("ic_translate_btn"), variant="primary")
            output = gr.Textbox(label=ui.t("ic_output"), lines=2, interactive=False)
            weights_md = gr.Markdown()
        with gr.Column(scale=2):
            prompt_box = gr.Textbox(label=ui.t("ic_prompt"), lines=14, interactive=False, max_lines=30)
            prompt_info = gr.Markdown()
    with gr.Accordion(ui.t("ic_pool"), open=False):
        # Filled when the page loads, not in the config: the API's `pool` then defaults to None (the
        # built-in split) instead of carrying ~3,000 rows in its schema.
        pool = gr.Dataframe(headers=list(task.POOL_COLUMNS), interactive=True, wrap=True,
                            label=ui.t("ic_pool_label"), max_height=320, elem_id="ic-pool")
    ui.on_page_load(default_pool, pool)
    summary = gr.JSON(label=ui.t("summary_json"))

    # ---- sweep ----
    gr.Markdown(ui.t("ic_sweep_title"))
    with gr.Row():
        ks = gr.Textbox(value=S.ks, label=ui.t("ic_ks"))
        n_test = len(task.load_pairs("test"))
        n = gr.Slider(1, n_test, value=n_test, step=1, label=ui.t("ic_n"))
        sweep_btn = gr.Button(ui.t("ic_sweep_btn"), variant="primary")
    sweep_plot = gr.LinePlot(x="k", y="chrF", color="method", label=ui.t("ic_sweep_plot"), height=280,  # no initial value: see pretrain.py
                             color_map={SWEEP_ICL: "#6366f1", SWEEP_LORA: "#f97316"}, color_title="",
                             elem_id="ic-sweep-plot")
    sweep_table = gr.Dataframe(headers=["k", "chrF", "method"], label=ui.t("ic_sweep_table"))
    sweep_md = gr.Markdown()
    sweep_json = gr.JSON(label=ui.t("summary_json"))

    # ---- events ----
    inputs = [text, direction, k, selection, seed, template, max_new_tokens, pool]
    show_prompt = ui.endpoint(preview, ctx)
    for comp in (text, direction, k, selection, seed, template, pool):
        comp.change(show_prompt, inputs, [prompt_box, prompt_info], api_name=False, trigger_mode="always_last",
                    concurrency_id="preview", concurrency_limit=1, show_progress="hidden")
    if page.tab is not None:  # opening the tab shows the prompt and warms its prefix cache before the first run
        page.tab.select(show_prompt, inputs, [prompt_box, prompt_info], api_name=False, concurrency_id="preview",
                        concurrency_limit=1, show_progress="hidden")
    # The pool keeps its (English, Korean) columns and the learner's edits when the direction flips.
    easier_btn.click(lambda: ("ko-en", EXAMPLE_TEXT["ko-en"]), None, [direction, text], api_name=False, queue=False)
    run = ui.endpoint(translate, ctx)
    tr_inputs = ui.inputs(translate, 1, text=text, direction=direction, k=k, selection=selection, seed=seed,
                          use_adapter=use_adapter, template=template, temperature=temperature, top_p=top_p,
                          max_new_tokens=max_new_tokens, pool=pool, adapter=page.adapter)
    tr_outputs = OUT.wire({"output": output, "weights": weights_md, "prompt": prompt_box, "prompt_info": prompt_info,
                           "summary": summary})
    # concurrency_limit=None: every request reaches the engine, which batches them and caps rows per session.
    translate_btn.click(run, tr_inputs, tr_outputs, api_name="translate", concurrency_limit=None)
    text.submit(run, tr_inputs, tr_outputs, api_name=False, concurrency_limit=None)
    sweep_inputs = ui.inputs(icl_sweep, 1, direction=direction, ks=ks, n=n, seed=seed, adapter=page.adapter,
                             session=page.session)
    sweep_btn.click(ui.endpoint(icl_sweep, ctx), sweep_inputs,
                    [sweep_plot, sweep_table, sweep_md, sweep_json], api_name="icl_sweep", concurrency_limit=None)


def warm(ctx):
    """Idle-time work: the default sweep's base-model points (modes/incontext/core.py, imported here: torch)."""
    from modes.incontext.core import warm_sweep

    yield from warm_sweep(ctx)


TAB = Tab(id="incontext", title="tab_incontext", build=build, score_row=score_row, best=lambda s: s["chrf"][str(s["best_k"])],
          headline=lambda s: f"best chrF {s['chrf'][str(s['best_k'])]} (k={s['best_k']})", shown=("direction", "ks", "n", "seed"),
          metric=("best chrF", lambda s: s["chrf"][str(s["best_k"])]), warm=warm)
