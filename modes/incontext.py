"""The in-context tab: a few-shot translation playground and a "how many examples?" sweep.

Compute lives in modes/incontext_core.py (imported lazily); this module lays out the tab and wires
its events. The weights never change here, and the panel proves it with a hash before and after.
"""

from __future__ import annotations

import math
import threading
import time

import gradio as gr
import pandas as pd

from modes import data as task
from modes import scoreboard, ui
from modes.data import Pair
from modes.jobs import Throttle
from modes.loader import gpu

DEFAULT_KS = "0,1,2,4,8"
SWEEP_ICL, SWEEP_LORA = "in-context (base model)", "LoRA fine-tuned (k=0)"
EXAMPLE_TEXT = {"en-ko": "Where can I buy a ticket for the museum?", "ko-en": "박물관 표는 어디에서 살 수 있어요?"}


def _cell(v) -> str:
    return ("" if v is None or (isinstance(v, float) and math.isnan(v)) else str(v)).strip()


def pool_from_table(table, lang: str) -> tuple[list[tuple[str, str]] | None, list[int]]:
    """The editable pool -> ((English, Korean) rows, numbers of rows that look misplaced).

    None or an empty table (the API's default) means the built-in train split: a Gradio table
    cannot be None, so "no rows" is how a caller says "the built-in pool". The columns are English and Korean
    whatever the direction; a missing column, an empty side or a pool whose columns look swapped
    is refused in the learner's language. A few rows in the wrong language are only flagged.
    """
    if table is None:
        return None, []
    if isinstance(table, dict):
        table = pd.DataFrame(table.get("data") or [], columns=table.get("headers") or None)
    df = table if isinstance(table, pd.DataFrame) else pd.DataFrame(table)
    cols = {str(c).strip().lower(): c for c in df.columns}
    missing = [name for name in task.POOL_COLUMNS if name.lower() not in cols]
    if missing and len(df):
        raise ui.error("err_pool_columns", lang, missing=", ".join(missing), found=", ".join(map(str, df.columns)) or "—")
    rows = []
    for i, (en, ko) in enumerate(zip(*(df[cols[n.lower()]] for n in task.POOL_COLUMNS)) if not missing else [], start=1):
        en, ko = _cell(en), _cell(ko)
        if not en and not ko:
            continue  # a fully blank row is just an unused line of the table
        if not en or not ko:
            raise ui.error("err_pool_empty_side", lang, row=i)
        rows.append((en, ko))
    if not rows:
        return None, []
    flagged = task.misplaced_rows(rows)
    if len(flagged) > len(rows) / 2:
        raise ui.error("err_pool_swapped", lang, n=len(flagged), total=len(rows))
    return rows, flagged


def pool_warning(flagged: list[int], lang: str) -> str:
    """A visible note on pool rows that look like they are in the wrong language ('' when none)."""
    if not flagged:
        return ""
    rows = ", ".join(map(str, flagged[:8])) + (" …" if len(flagged) > 8 else "")
    return "\n\n⚠️ " + ui.msg("warn_pool_rows", lang, rows=rows, n=len(flagged))


def default_pool() -> pd.DataFrame:
    """The built-in train split as the editable (English, Korean) table."""
    return pd.DataFrame(task.builtin_pool("train"), columns=list(task.POOL_COLUMNS))


def check_inputs(text, direction, k, template, max_new_tokens, pool, lang):
    """Validate a translate request (pool: (English, Korean) rows, or None for the built-in split)."""
    from modes.incontext_config import MAX_K, MAX_NEW_TOKENS, MAX_TEXT_CHARS

    if direction not in task.DIRECTIONS:
        raise ui.error("err_direction", lang, name=direction, choices=", ".join(task.DIRECTIONS))
    if text is None or not str(text).strip():
        raise ui.error("err_text_empty", lang)
    if len(text) > MAX_TEXT_CHARS:
        raise ui.error("err_text_too_long", lang, n=len(text), cap=MAX_TEXT_CHARS)
    try:
        task.check_template(template)
    except task.DataError as exc:
        raise ui.error(exc.key, lang, **exc.fmt) from None
    if not isinstance(k, (int, float)) or isinstance(k, bool) or not math.isfinite(k) or k != int(k) or not 0 <= k <= MAX_K:
        raise ui.error("err_k_range", lang, k=k, max=MAX_K)
    n_pool = len(task.builtin_pool("train")) if pool is None else len(pool)
    if k > n_pool:
        raise ui.error("err_k_pool", lang, k=int(k), n=n_pool)
    if not isinstance(max_new_tokens, (int, float)) or not math.isfinite(max_new_tokens) or not 1 <= max_new_tokens <= MAX_NEW_TOKENS:
        raise ui.error("err_max_new", lang, max=MAX_NEW_TOKENS)
    return str(text).strip().replace("\n", " "), int(k), int(max_new_tokens)


def parse_ks(ks: str, lang: str) -> list[int]:
    from modes.incontext_config import MAX_K

    try:
        out = sorted({int(x) for x in str(ks).replace(" ", "").split(",") if x != ""})
    except ValueError:
        raise ui.error("err_ks", lang, max=MAX_K) from None
    if not out or any(not 0 <= k <= MAX_K for k in out):
        raise ui.error("err_ks", lang, max=MAX_K)
    return out


def sweep_point_key(ctx, direction: str, k: int, n: int, seed: int) -> dict:
    """Everything one base-model sweep point depends on: the same key gives the same chrF."""
    from modes.reuse import code_version, runtime

    return {"kind": "sweep_point", "model": ctx.proof().reference, "dtype": ctx.loader.dtype_name, "direction": direction,
            "k": k, "n": n, "seed": seed, "template": task.DEFAULT_TEMPLATE, "code": code_version("engine", "data", "metrics"),
            **runtime()}


def build(ctx, adapter_state, runs, tab=None) -> None:
    from modes.incontext_config import MAX_K, MAX_NEW_TOKENS, SELECTIONS

    loader = ctx.loader
    gr.Markdown(ui.t("ic_card"), elem_classes=["card"])
    with gr.Row():
        with gr.Column(scale=3):
            text = gr.Textbox(value=EXAMPLE_TEXT["en-ko"], label=ui.t("ic_text"), lines=2)
            easier_btn = gr.Button(ui.t("ic_try_ko_en"), size="sm")
            with gr.Row():
                direction = gr.Radio(list(task.DIRECTIONS), value="en-ko", label=ui.t("direction_label"))
                k = gr.Slider(0, MAX_K, value=4, step=1, label=ui.t("ic_k"))
                selection = gr.Radio([(ui.t(f"ic_sel_{x}"), x) for x in SELECTIONS], value="random", label=ui.t("ic_selection"))
                seed = gr.Number(value=0, precision=0, label=ui.t("seed_label"))
            with gr.Accordion(ui.t("ic_decoding"), open=False):
                template = gr.Textbox(value=task.DEFAULT_TEMPLATE, lines=2, label=ui.t("ic_template"), info=ui.t("ic_template_info"))
                with gr.Row():
                    temperature = gr.Slider(0, 2, value=0, step=0.05, label=ui.t("ic_temperature"))
                    top_p = gr.Slider(0.05, 1, value=1, step=0.05, label="top-p")
                    max_new_tokens = gr.Slider(1, MAX_NEW_TOKENS, value=64, step=1, label=ui.t("ic_max_new"))
            use_adapter = gr.Checkbox(value=False, label=ui.t("ic_use_adapter"))
            translate_btn = gr.Button(ui.t("ic_translate_btn"), variant="primary")
            output = gr.Textbox(label=ui.t("ic_output"), lines=2, interactive=False)
            weights_md = gr.Markdown()
        with gr.Column(scale=2):
            prompt_box = gr.Textbox(label=ui.t("ic_prompt"), lines=14, interactive=False, max_lines=30)
            prompt_info = gr.Markdown()
    with gr.Accordion(ui.t("ic_pool"), open=False):
        # Filled when the page loads, not in the config: the API's `pool` then defaults to None (the
        # built-in split) instead of carrying 416 rows in its schema.
        pool = gr.Dataframe(headers=list(task.POOL_COLUMNS), interactive=True, wrap=True,
                            label=ui.t("ic_pool_label"), max_height=320, elem_id="ic-pool")
        pool_md = gr.Markdown()
    ui.on_page_load(default_pool, pool)
    summary = gr.JSON(label=ui.t("summary_json"))

    def prepare(text, direction, k, selection, seed, template, max_new_tokens, pool_df, lang):
        """(prefix, query, max_new, flagged rows): the request checked, the prompt built by task.fewshot_prompt."""
        rows, flagged = pool_from_table(pool_df, lang)
        text, k, max_new = check_inputs(text, direction, k, template, max_new_tokens, rows, lang)
        if selection not in SELECTIONS:
            raise ui.error("err_selection", lang, name=selection, choices=", ".join(SELECTIONS))
        prefix, query, _ = task.fewshot_prompt(direction, text, k, rows, selection, int(seed or 0), template)
        return prefix, query, max_new, flagged

    def preview(text, direction, k, selection, seed, template, max_new_tokens, pool_df, request: gr.Request = None):
        """Show the exact prompt and its token count; warm the prefix cache so the run starts fast."""
        lang = ui.lang_of(request)
        try:
            prefix, query, _, flagged = prepare(text, direction, k, selection, seed, template, max_new_tokens, pool_df, lang)
        except gr.Error as exc:
            return "", f"⚠️ {exc.message}"
        warn = pool_warning(flagged, lang)
        if not loader.ready:
            return prefix + query, ui.msg("ic_model_loading", lang) + warn
        model, tok = loader.get()
        n = len(tok(prefix + query)["input_ids"])
        ctx.engine.prefixes.get("base", model, tok, prefix)
        return prefix + query, ui.msg("ic_prompt_tokens", lang, n=n) + warn

    inputs = [text, direction, k, selection, seed, template, max_new_tokens, pool]
    for comp in (text, direction, k, selection, seed, template, pool):
        comp.change(preview, inputs, [prompt_box, prompt_info], api_name=False, trigger_mode="always_last",
                    concurrency_id="preview", concurrency_limit=1, show_progress="hidden")
    if tab is not None:  # opening the tab shows the prompt and warms its prefix cache before the first run
        tab.select(preview, inputs, [prompt_box, prompt_info], api_name=False, concurrency_id="preview",
                   concurrency_limit=1, show_progress="hidden")
    # The pool keeps its (English, Korean) columns and the learner's edits when the direction flips.
    easier_btn.click(lambda: ("ko-en", EXAMPLE_TEXT["ko-en"]), None, [direction, text], api_name=False, queue=False)

    @ui.guard
    @gpu
    def translate(text: str, direction: str = "en-ko", k: int = 4, selection: str = "random", seed: int = 0,
                  use_adapter: bool = False, template: str = task.DEFAULT_TEMPLATE, temperature: float = 0.0,
                  top_p: float = 1.0, max_new_tokens: int = 64, pool=None, adapter=None, request: gr.Request = None):
        """Translate with k in-context examples (optionally through the session's LoRA adapter), streaming."""
        lang = ui.lang_of(request)
        prefix, query, max_new, flagged = prepare(text, direction, k, selection, seed, template, max_new_tokens, pool, lang)
        if use_adapter and adapter is None:
            raise ui.error("err_no_adapter", lang)
        if not loader.ready:
            yield gr.skip(), ui.msg("waiting_model", lang), gr.skip(), gr.skip(), gr.skip()
        model, tok = loader.get()  # the libraries and the model, loaded by their one owner
        t0 = time.perf_counter()
        before = ctx.proof_before()
        t_gen = time.perf_counter()  # time to first token counts from here: queue, prefill (unless cached), first step
        lane, run_model = ctx.adapter_model(adapter) if use_adapter else ("base", model)
        ev, ttft = None, None
        throttle = Throttle(0.15)
        session = getattr(request, "session_hash", None) or "api"
        for ev in ctx.engine.stream(model=run_model, tok=tok, lane=lane, prefix=prefix, query=query, max_new=max_new,
                                    temperature=float(temperature), top_p=float(top_p), seed=int(seed or 0), session=session):
            if ttft is None and ev.ttft is not None:
                ttft = time.perf_counter() - t_gen
            # Streamed at most every 0.15 s: 16 learners x every token was Gradio work that slowed the batch.
            if not ev.done and throttle():
                yield ev.text, gr.skip(), gr.skip(), gr.skip(), gr.skip()
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
               "parameters_updated": 0, "used_adapter": bool(use_adapter), "k": int(k), "direction": direction,
               "pool": "built-in" if pool is None else "given", "pool_warnings": flagged, "dtype": loader.dtype_name,
               "proof": {"hash_before": before, "hash_after": after, "hash_shared_with": proof["shared_with"],
                         "hash_wait_s": proof["wait_s"]}}
        if empty:
            res["empty_reason"] = empty
        warn = pool_warning(flagged, lang)
        yield ev.text, md + warn, prefix + query, ui.msg("ic_prompt_tokens", lang, n=n_tokens) + warn, res

    translate_btn.click(
        translate, [text, direction, k, selection, seed, use_adapter, template, temperature, top_p, max_new_tokens, pool, adapter_state],
        [output, weights_md, prompt_box, prompt_info, summary], api_name="translate",
        concurrency_limit=None,  # every request reaches the engine, which batches them and caps rows per session
    )
    text.submit(
        translate, [text, direction, k, selection, seed, use_adapter, template, temperature, top_p, max_new_tokens, pool, adapter_state],
        [output, weights_md, prompt_box, prompt_info, summary], api_name=False, concurrency_limit=None,
    )

    # ---- sweep ----
    gr.Markdown(ui.t("ic_sweep_title"))
    with gr.Row():
        ks = gr.Textbox(value=DEFAULT_KS, label=ui.t("ic_ks"))
        n_test = len(task.load_pairs("test"))
        n = gr.Slider(1, n_test, value=n_test, step=1, label=ui.t("ic_n"))
        sweep_btn = gr.Button(ui.t("ic_sweep_btn"), variant="primary")
    sweep_plot = gr.LinePlot(x="k", y="chrF", color="method", label=ui.t("ic_sweep_plot"), height=280,  # no initial value: see pretrain.py
                             color_map={SWEEP_ICL: "#6366f1", SWEEP_LORA: "#f97316"}, color_title="",
                             elem_id="ic-sweep-plot")
    sweep_table = gr.Dataframe(headers=["k", "chrF", "method"], label=ui.t("ic_sweep_table"))
    sweep_md = gr.Markdown()
    sweep_json = gr.JSON(label=ui.t("summary_json"))

    @ui.guard
    @gpu(duration=600)
    def icl_sweep(direction: str = "en-ko", ks: str = DEFAULT_KS, n: int = 69, seed: int = 0, adapter=None,
                  runs: dict | None = None, request: gr.Request = None, progress=gr.Progress()):
        """chrF on the held-out split for each k (fixed seeded examples, shared prefix, batched)."""
        lang = ui.lang_of(request)
        if not loader.ready:
            progress(0, desc=ui.msg("waiting_model", lang))
        loader.get()  # the libraries and the model, loaded by their one owner
        from modes.metrics import chrf

        if direction not in task.DIRECTIONS:
            raise ui.error("err_direction", lang, name=direction, choices=", ".join(task.DIRECTIONS))
        k_list = parse_ks(ks, lang)
        test = task.pairs_for(direction, "test")
        if not isinstance(n, (int, float)) or not math.isfinite(n) or not 1 <= n <= len(test):
            raise ui.error("err_n_range", lang, max=len(test))
        test = test[: int(n)]
        model, tok = loader.get()
        refs = [p.target for p in test]
        t0 = time.perf_counter()
        rows, scores, reused = [], {}, []
        steps = len(k_list) + (1 if adapter is not None else 0)
        session = "sweep:" + (getattr(request, "session_hash", None) or "api")
        for i, kk in enumerate(k_list):
            progress(i / steps, desc=ui.msg("ic_sweep_progress", lang, k=kk))

            def compute(kk=kk):
                # Random examples do not depend on the query: one prefix, one KV cache, for every query.
                prompts = [task.fewshot_prompt(direction, p.source, kk, seed=int(seed or 0)) for p in test]
                hyps = ctx.engine.generate(model, tok, prompts[0][0], [q for _, q, _ in prompts], lane="base", session=session)
                return {"chrf": chrf(hyps, refs)}

            # The base model's points are the same for every learner: computed once, then served to all.
            if ctx.reuse:
                point, was_reused = ctx.results.once(sweep_point_key(ctx, direction, kk, len(test), int(seed or 0)), compute)
            else:
                point, was_reused = compute(), False
            if was_reused:
                reused.append({"k": kk, "computed_at": point["computed_at"], "seconds": point["seconds"]})
            scores[kk] = point["chrf"]
            rows.append({"k": kk, "chrF": scores[kk], "method": SWEEP_ICL})
        lora = None
        if adapter is not None:
            progress(len(k_list) / steps, desc=ui.msg("ic_sweep_progress_lora", lang))
            def compute_lora():
                lane, tuned = ctx.adapter_model(adapter)
                queries = [task.fewshot_prompt(direction, p.source, 0, template=adapter.template)[1] for p in test]
                return {"chrf": chrf(ctx.engine.generate(tuned, tok, "", queries, lane=lane, session=session), refs)}

            from modes.adapters import adapter_key

            # Learners holding the same adapter (a replayed fine-tune gives the same bytes) share this point too.
            lora_key = {**sweep_point_key(ctx, direction, -1, len(test), 0), "kind": "sweep_lora",
                        "adapter": adapter_key(adapter), "template": adapter.template}
            point, was_reused = ctx.results.once(lora_key, compute_lora) if ctx.reuse else (compute_lora(), False)
            if was_reused:
                reused.append({"k": "LoRA", "computed_at": point["computed_at"], "seconds": point["seconds"]})
            lora = point["chrf"]
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
               "best_k": best, "lora_chrf": lora, "dtype": loader.dtype_name,
               # Base-model points served from the shared results (computed earlier for identical settings).
               "reused": reused}
        scoreboard.record_sweep(runs, out)
        return plot, df, md, out

    sweep_btn.click(icl_sweep, [direction, ks, n, seed, adapter_state, runs], [sweep_plot, sweep_table, sweep_md, sweep_json],
                    api_name="icl_sweep", concurrency_limit=None)  # the engine batches and caps its rows
