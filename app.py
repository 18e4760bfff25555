"""How Models Learn: one real model, three ways of learning, side by side.

This file only builds the Blocks and launches them; each tab lives in `modes/`.
"""

from __future__ import annotations

import argparse
import gc
import os

from modes.loader import ModelLoader

# Gradio and the tab modules are imported inside the functions below, and the tab modules import
# torch only when they compute: `import app` stays cheap and the page is built before torch loads.


def build_app(loader: ModelLoader, ctx=None) -> "gr.Blocks":  # noqa: F821 - gradio is imported below
    """Lay out the page: model status, the three tabs, licences. The model loads elsewhere.
    `ctx`: the AppContext the tabs share (a memory-only one when not given); the page keeps it as `demo.ctx`."""
    import gradio as gr

    from modes import adapters, finetune, incontext, pretrain, scoreboard, ui
    from modes.context import AppContext

    ctx = ctx or AppContext(loader)

    with gr.Blocks(title="How Models Learn") as demo:
        # Queue settings first: Gradio rebuilds its route table on each queue() call, and here the
        # table is still empty (~0.3 s saved at start).
        demo.queue(default_concurrency_limit=4, max_size=64)
        gr.Markdown(ui.t("app_title"))
        gr.Markdown(ui.t("app_intro"))
        status = gr.Markdown(loader.status_markdown(), elem_id="model-status")
        timer = gr.Timer(1.0)

        def poll():
            # Keep polling while loading; stop the timer once the model is ready or failed.
            done = loader.status.state in ("ready", "error")
            return loader.status_markdown(), gr.Timer(active=not done)

        timer.tick(poll, None, [status, timer], show_progress="hidden", queue=False)

        @ui.guard
        def model_status() -> dict:
            """The shared model's status: state, name, source, device, parameter count, load time."""
            return loader.status.as_dict()

        gr.api(model_status, api_name="model_status", queue=False)
        # The learner's LoRA adapter: per session, shared by the fine-tune and in-context tabs.
        adapter_state = gr.State(None, time_to_live=3 * 3600, delete_callback=adapters.cleanup)
        runs = gr.State(scoreboard.new_runs())  # this session's results, for the scoreboard
        with gr.Tabs():
            with gr.Tab(ui.t("tab_pretrain"), id="pretrain"):
                pretrain.build(ctx, runs)
            with gr.Tab(ui.t("tab_finetune"), id="finetune"):
                finetune.build(ctx, adapter_state, runs)
            with gr.Tab(ui.t("tab_incontext"), id="incontext") as incontext_tab:
                incontext.build(ctx, adapter_state, runs, tab=incontext_tab)
            with gr.Tab(ui.t("tab_scoreboard"), id="scoreboard") as board_tab:
                board = scoreboard.build(runs)
        board_tab.select(scoreboard.show, runs, board, api_name=False, queue=False)
        with gr.Accordion(ui.t("licences_title"), open=False):
            gr.Markdown(ui.t("licences_body"))
    demo.ctx = ctx
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
    args = parser.parse_args(argv)
    # Starting up creates about a million objects that live as long as the app (modules, the page,
    # the model); the cycle collector would walk them again and again and find nothing to free
    # (bench/startup.py, alternating with the collector on: warm model-ready median 8.5 s vs 9.9 s,
    # page 3.5 s vs 4.2 s; a cold start 45 s vs 58 s). So collect nothing until the model has
    # loaded, then freeze what exists, so later collections skip it too.
    gc.disable()
    loader = ModelLoader(args.model, dtype=args.dtype)
    from modes.context import AppContext

    on = args.classroom == "on"
    # Results every learner shares are kept beside the model cache, so a restart serves them at once.
    store = os.environ.get("HML_SHARED_RESULTS") or loader.cache_dir / "shared-results"
    ctx = AppContext(loader, store_dir=store, reuse=on, engine=on)
    demo = build_app(loader, ctx)
    # Load after the page is built and while it launches: started before the Gradio import, the
    # two fight over the GIL and both finish later (measured: page 8.0 s, model 13.1 s vs 5.1 s, 12.1 s).
    loader.start_background(on_done=resume_gc)
    launch(demo)


def resume_gc() -> None:
    """End of startup: freeze what exists (it lives as long as the app) and collect as usual again."""
    gc.freeze()
    gc.enable()


if __name__ == "__main__":
    main()
