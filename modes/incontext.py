"""The incontext tab (coming next: see its issue)."""

import gradio as gr

from modes import ui


def build(loader, adapter_state) -> None:
    gr.Markdown(ui.t("coming_next"))
