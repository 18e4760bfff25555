"""How Models Learn: one real model, three ways of learning, side by side.

This file only builds the Blocks and launches them; each tab lives in `modes/`.
"""

from __future__ import annotations

import argparse
import dataclasses
import functools
import gc
import os

from modes.model.loader import ModelLoader

# Gradio and the tab modules are imported inside the functions below, and the tab modules import
# torch only when they compute: `import app` stays cheap and the page is built before torch loads.


def build_app(loader: ModelLoader, ctx=None, tabs=None) -> "gr.Blocks":  # noqa: F821 - gradio is imported below
    """Lay out the page: model status, the registered tabs, licences. The model loads elsewhere.
    `ctx`: the AppContext the tabs share (a memory-only one when not given); the page keeps it as
    `demo.ctx`. `tabs`: the Tab entries to build (default: the registry, modes/tabs.py)."""

    import gradio as gr

    from modes import statusline, ui
    from modes import tabs as registry
    from modes.context import AppContext
    from modes.model import adapters
    from modes.runs import follow as runs

    ctx = ctx or AppContext(loader)
    tabs = list(tabs or registry.load())

    with gr.Blocks(title="How Models Learn") as demo:
        # Queue settings before any event: Gradio rebuilds its route table on each queue() call.
        demo.queue(default_concurrency_limit=4, max_size=64)
        gr.Markdown(ui.t("app_title"))
        # On a phone the first screen is the title, one status line and the tabs: the intro is folded there
        # (assets/style.css shows one of the two by screen width).
        gr.Markdown(ui.t("app_intro"), elem_id="app-intro")
        storage = ctx.storage()  # a Space on its container's own disk says, in the learner's language, what it will lose

        head = functools.partial(statusline.head, loader, ctx.heavy, storage)  # (lang) -> one short line
        status = gr.Markdown(head(), elem_id="model-status")
        with gr.Accordion(ui.t("status_details"), open=False, elem_id="model-status-details"):
            status_details = gr.Markdown(statusline.details(loader, ctx.heavy))
        with gr.Accordion(ui.t("app_intro_fold"), open=False, elem_id="app-intro-fold"):
            gr.Markdown(ui.t("app_intro"))
        timer = gr.Timer(1.0)

        # Polled while the model loads (the timer stops once it is ready or failed), and once when a page opens.
        poll = ui.endpoint(statusline.poll, loader, ctx.heavy, storage)  # (ui.endpoint: Gradio then sees `request`)
        timer.tick(poll, None, [status, status_details, timer], show_progress="hidden", queue=False)
        demo.load(poll, None, [status, status_details, timer], show_progress="hidden", queue=False, api_name=False)

        @ui.guard
        def model_status() -> dict:
            """The shared model's status: state, name, source, device, parameter count, load time, and where
            heavy work runs (heavy_mode: threads | in-call, and what that mode gives up)."""
            return {**loader.status.as_dict(), "heavy_mode": ctx.heavy.mode, "heavy": ctx.heavy.describe(),
                    "warmup": ctx.warmup.as_dict(), "storage": storage,
                    "gpu": {"concurrent_trainings": ctx.heavy.concurrent, "measured": ctx.heavy.budget.as_dict()}}

        gr.api(model_status, api_name="model_status", queue=False)
        # The learner's LoRA adapter: per session, shared by the fine-tune and in-context tabs.
        adapter = gr.State(None, time_to_live=3 * 3600, delete_callback=adapters.cleanup)
        session = gr.State(runs.new_session())  # whose runs this page shows, and how it draws curves
        # The learner's owner id stays in the browser, so a reload finds the same runs (and
        # reattaches to a training still running); the server checks it before it counts.
        # Encrypted with a fixed secret (modes/runs/place.py), so it can still be read after a restart.
        owner = gr.BrowserState(None, storage_key="hml-owner", secret=ctx.browser_secret())
        attached = demo.load(ui.endpoint(runs.attach, ctx), [owner, session], [owner, adapter], api_name=False,
                             show_progress="hidden")
        page = registry.Page(ctx=ctx, adapter=adapter, session=session, attached=attached, tabs=tabs)
        with gr.Tabs():
            for tab in tabs:
                with gr.Tab(ui.t(tab.title), id=tab.id) as gr_tab:
                    tab.build(dataclasses.replace(page, tab=gr_tab))
        with gr.Accordion(ui.t("licences_title"), open=False):
            gr.Markdown(ui.t("licences_body"))
    ui.name_missing_values(demo)  # a raw call with too few values is told what the endpoint takes
    demo.ctx, demo.tabs = ctx, tabs
    return demo


MAX_FILE_SIZE = "60mb"  # Gradio refuses larger uploads outright; each tab applies its own smaller cap


def launch(demo, **kwargs):
    """Launch with the app's i18n table and CSS (Gradio 6 takes them at launch)."""
    from modes import ui

    kwargs.setdefault("max_file_size", MAX_FILE_SIZE)
    return demo.launch(i18n=ui.I18N(), css=ui.css(), **kwargs)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description="How Models Learn")
    parser.add_argument("--model", default=os.environ.get("MODEL_ID"), help="Hub id or local HF directory (default: embedded Gemma 3 270M)")
    parser.add_argument("--dtype", default=os.environ.get("HML_DTYPE", "auto"), choices=["auto", "float32", "bfloat16"],
                        help="precision of the served model (auto: bf16 on CUDA, and on a CPU with native bf16 that measures faster)")
    parser.add_argument("--classroom", default=os.environ.get("HML_CLASSROOM", "on"), choices=["on", "off"],
                        help="off: no batching engine, no reuse, a weights hash per request (the benchmark's baseline)")
    parser.add_argument("--warmup", default=os.environ.get("HML_WARMUP", "on"), choices=["on", "off"],
                        help="on: once the model is ready, compute in idle time what every learner's first run would compute "
                             "alike (the base model's side of the fine-tune scores), so the first learner does not wait for it")
    args = parser.parse_args(argv)
    # Starting up creates about a million objects that live as long as the app; the cycle collector
    # would walk them again and again and free nothing. So collect nothing until the model has
    # loaded, then freeze what exists, so later collections skip it too (bench/startup.py).
    gc.disable()
    loader = ModelLoader(args.model, dtype=args.dtype)
    from modes.context import AppContext

    on = args.classroom == "on"
    # Results every learner shares are kept beside the model cache, so a restart serves them at once.
    store = os.environ.get("HML_SHARED_RESULTS") or loader.cache_dir / "shared-results"
    # Every learner's runs, curves and adapters in the durable store in the data dir (modes/runs/place.py).
    from modes.runs import place

    ctx = AppContext(loader, store_dir=store, reuse=on, engine=on, data_dir=place.data_dir(loader.cache_dir))
    demo = build_app(loader, ctx)
    # Load after the page is built and while it launches: started before the Gradio import, the
    # two fight over the GIL and both finish later (bench/startup.py).
    warm = (lambda: ctx.start_warmup(demo.tabs)) if args.warmup == "on" else (lambda: None)
    loader.start_background(on_done=lambda: (resume_gc(), warm()))
    launch(demo)


def resume_gc() -> None:
    """End of startup: freeze what exists (it lives as long as the app) and collect as usual again."""
    gc.freeze()
    gc.enable()


if __name__ == "__main__":
    main()
