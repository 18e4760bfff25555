"""The fine-tune tab's data panel: which task, which pairs (built-in, an upload, a Hub dataset), the upload's
column pickers with their guesses, and a paged preview of exactly what a run would train on.

`resolve_data` is the one place a run's (train, held-out) pairs come from, for the button, the API
and Run again alike; the held-out side is always the task's built-in test split, so scores compare.
"""

from __future__ import annotations

import gradio as gr
import pandas as pd

from modes import ui
from modes.data import dialogues, pair_files, tasks
from modes.data import translation as tr
from modes.data.uploads import InputError
from modes.finetune.config import FinetuneConfig

D = FinetuneConfig()
PAGE = 10  # preview rows per page

def preview_page(pairs: list, page: int) -> tuple[pd.DataFrame, str]:
    pages = max(1, -(-len(pairs) // PAGE))
    page = min(max(1, int(page)), pages)
    rows = pairs[(page - 1) * PAGE : page * PAGE]
    df = pd.DataFrame([{"source": p.source, "target": p.target} for p in rows], columns=["source", "target"])
    return df, f"{page} / {pages} · {len(pairs)}"


ROLES = {"translation": ("source", "target"), "dialogue-summary": ("dialogue", "summary")}  # an upload's two columns


def resolve_data(source: str, upload, hub_id: str, hub_src: str, hub_tgt: str, direction: str, lang: str,
                 ft_task: str = "translation", summary_lang: str = "en", upload_src: str = "", upload_tgt: str = ""):
    """(train pairs, held-out pairs). Held-out is always the task's built-in test split, so scores compare.
    An upload's columns are the ones picked (`upload_src`, `upload_tgt`), else guessed from their names."""
    try:
        if ft_task not in tasks.TASKS:
            raise ValueError(f"task: must be one of {', '.join(tasks.TASKS)}, got {ft_task!r}")
        test = tasks.builtin_pairs(ft_task, direction, summary_lang, "test")
        if source == "built-in":
            return tasks.builtin_pairs(ft_task, direction, summary_lang, "train"), test
        long = tr.MAX_SIDE_CHARS if ft_task == "translation" else dialogues.MAX_DIALOGUE_CHARS
        if source == "upload":
            if upload is None:
                raise InputError("err_upload_missing")
            return pair_files.from_upload(upload, upload_src, upload_tgt, direction if ft_task == "translation" else None,
                                    ROLES[ft_task], max_chars=long), test
        if source == "hub":
            return pair_files.from_hub((hub_id or "").strip(), hub_src or "source", hub_tgt or "target", max_chars=long), test
        raise InputError("err_data_source", name=source)
    except InputError as exc:
        raise ui.error(exc.key, lang, **exc.fmt) from None
    except ValueError as exc:
        raise ui.error("err_setting", lang, why=str(exc)) from None


def upload_columns(upload, direction: str = "en-ko", ft_task: str = "translation", request: gr.Request = None):
    """An uploaded file's columns for the two pickers, with the likely pair preselected (or why there are none)."""
    lang = ui.lang_of(request)
    if not upload:
        return gr.update(choices=[], value=""), gr.update(choices=[], value=""), ""
    try:
        cols, src, tgt = pair_files.upload_columns(upload, direction if ft_task == "translation" else None, ROLES.get(ft_task, ROLES["translation"]))
    except InputError as exc:
        return gr.update(choices=[], value=""), gr.update(choices=[], value=""), "⚠️ " + ui.msg(exc.key, lang, **exc.fmt)
    note = ui.msg("ft_upload_columns_found", lang, n=len(cols), cols=", ".join(cols))
    return gr.update(choices=cols, value=src), gr.update(choices=cols, value=tgt), note


def show_page(source, upload, hub_id, hub_src, hub_tgt, direction, ft_task, summary_lang, upload_src, upload_tgt, page,
              request: gr.Request = None):
    """One page of the training pairs the run would use (or why there are none)."""
    lang = ui.lang_of(request)
    try:
        pairs, _ = resolve_data(source, upload, hub_id, hub_src, hub_tgt, direction, lang, ft_task, summary_lang,
                                upload_src, upload_tgt)
    except gr.Error as exc:
        return pd.DataFrame(columns=["source", "target"]), f"⚠️ {exc.message}"
    return preview_page(pairs, page)


def wire_preview(data_inputs: list, page_no, preview, page_info, prev_btn, next_btn) -> None:
    """The training pairs' preview: redrawn when the data, task, direction, columns or page change, and on page load."""
    data_source, upload, hub_id, direction = data_inputs[0], data_inputs[1], data_inputs[2], data_inputs[5]
    for comp in (data_source, upload, direction, *data_inputs[6:], page_no):
        comp.change(show_page, data_inputs + [page_no], [preview, page_info], api_name=False, queue=False)
    hub_id.submit(show_page, data_inputs + [page_no], [preview, page_info], api_name=False)
    # The first page of the built-in pairs as soon as the page opens, not after the first change.
    ui.on_page_load(lambda: preview_page(tr.pairs_for(D.direction, "train"), 1), [preview, page_info])
    prev_btn.click(lambda p: max(1, int(p or 1) - 1), page_no, page_no, api_name=False, queue=False)
    next_btn.click(lambda p: int(p or 1) + 1, page_no, page_no, api_name=False, queue=False)


def task_and_upload() -> tuple:
    """The task and data-source choices, and the upload with its two column pickers (filled from the file)."""
    with gr.Row():
        ft_task = ui.checked_by_config(gr.Radio([(ui.t("ft_task_translation"), "translation"), (ui.t("ft_task_summary"), "dialogue-summary")],
                           value=D.task, label=ui.t("ft_task_label"), info=ui.t("ft_task_info"), elem_id="ft-task"))
        summary_lang = ui.checked_by_config(gr.Radio([("English", "en"), ("한국어", "ko")], value=D.summary_lang, label=ui.t("ft_summary_lang"),
                                visible=D.task == "dialogue-summary", elem_id="ft-summary-lang"))
    with gr.Row():
        data_source = gr.Radio([(ui.t("ft_src_builtin"), "built-in"), (ui.t("ft_src_upload"), "upload"), (ui.t("ft_src_hub"), "hub")],
                               value="built-in", label=ui.t("ft_data_source"))
        with gr.Column():
            upload = gr.File(label=ui.t("ft_upload_label"), file_types=[".csv", ".jsonl", ".json", ".tsv"], type="filepath",
                             elem_id="ft-upload")
            with gr.Row():
                # Choices come from the uploaded file; the server checks the names against the file itself.
                upload_src, upload_tgt = (ui.checked_by_config(gr.Dropdown([], value="", allow_custom_value=True, label=ui.t(key),
                                                                           elem_id=eid))
                                          for key, eid in (("ft_upload_src", "ft-upload-src"), ("ft_upload_tgt", "ft-upload-tgt")))
            columns_md = gr.Markdown(elem_id="ft-upload-columns")
    return ft_task, summary_lang, data_source, upload, upload_src, upload_tgt, columns_md
