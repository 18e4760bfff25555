"""The status line at the top of the page: one short line in the learner's language (the model, ready or loading,
where it runs), a storage warning above it when a Space would lose its runs, and the technical detail (the
precision decisions with their timings, the heavy-work mode) folded one click away. /model_status keeps every
field; this is what a learner on a phone reads before the first tab."""

from __future__ import annotations

import gradio as gr

from modes import ui


def where(loader, heavy) -> str:
    if heavy.in_call:
        return "ZeroGPU"
    return "GPU" if str(loader.status.device or "").startswith("cuda") else "CPU"


def head(loader, heavy, storage: dict, lang: str = "en") -> str:
    """The line a learner reads: a storage warning when a Space would lose its runs, then the model, whether it is
    ready, and where it runs, in their language."""
    s = loader.status
    key = {"ready": "status_ready", "error": "status_error"}.get(s.state, "status_loading")
    line = ui.msg(key, lang, name=s.name or "model", where=where(loader, heavy))
    return (storage["warning"][lang] + "\n\n" + line) if storage.get("warning") else line


def details(loader, heavy) -> str:
    """What the folded part says: the load's figures, the precision decisions and why, where heavy work runs."""
    return loader.status_markdown() + "\n\n" + heavy.describe()


def poll(loader, heavy, storage: dict, request: gr.Request = None):
    """The page's status, in the language of the browser asking: (line, details, the timer: on while loading)."""
    done = loader.status.state in ("ready", "error")
    return head(loader, heavy, storage, ui.lang_of(request)), details(loader, heavy), gr.Timer(active=not done)
