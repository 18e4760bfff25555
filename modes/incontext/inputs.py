"""What a few-shot request brings, checked before any prompt is built: the editable pool table (its columns,
empty sides, swapped languages), the text, the template, k against the pool, the sweep's k list; and the
prompt built from them. Messages in the learner's language; no model here."""

from __future__ import annotations

import math

import pandas as pd

from modes import ui
from modes.data import translation as task
from modes.incontext.config import MAX_K, MAX_TEXT_CHARS, TranslateConfig


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


def check_inputs(text, cfg: TranslateConfig, pool, lang) -> str:
    """Validate what the config does not hold: the text, the template, k against the pool (None: built-in)."""
    if not isinstance(text, str) or not text.strip():
        raise ui.error("err_text_empty", lang)
    if len(text) > MAX_TEXT_CHARS:
        raise ui.error("err_text_too_long", lang, n=len(text), cap=MAX_TEXT_CHARS)
    try:
        task.check_template(cfg.template)
    except task.DataError as exc:
        raise ui.error(exc.key, lang, **exc.fmt) from None
    n_pool = len(task.builtin_pool("train")) if pool is None else len(pool)
    if cfg.k > n_pool:
        raise ui.error("err_k_pool", lang, k=cfg.k, n=n_pool)
    return text.strip().replace("\n", " ")


def translate_config(lang: str, **values) -> TranslateConfig:
    """The translation's settings, checked on the server for every call (an empty seed box means 0)."""
    if values.get("seed") is None:
        values["seed"] = 0
    return ui.settings(TranslateConfig, lang, **values)


def parse_ks(ks: str, lang: str) -> list[int]:
    try:
        out = sorted({int(x) for x in str(ks).replace(" ", "").split(",") if x != ""})
    except ValueError:
        raise ui.error("err_ks", lang, max=MAX_K) from None
    if not out or any(not 0 <= k <= MAX_K for k in out):
        raise ui.error("err_ks", lang, max=MAX_K)
    return out


def prepare(text, cfg: TranslateConfig, pool_df, lang):
    """(prefix, query, flagged rows): the request checked, the prompt built by task.fewshot_prompt."""
    rows, flagged = pool_from_table(pool_df, lang)
    text = check_inputs(text, cfg, rows, lang)
    prefix, query, _ = task.fewshot_prompt(cfg.direction, text, cfg.k, rows, cfg.selection, cfg.seed, cfg.template)
    return prefix, query, flagged
