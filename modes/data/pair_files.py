"""Labelled pairs a learner brings: an uploaded CSV, TSV or JSONL file (read line by line, its columns guessed from
their names: source/target, english/korean oriented by the direction, dialogue/summary) or a Hub dataset's two
columns; every row checked (no empty side, no overlong sentence), with errors that name the row."""

from __future__ import annotations

import csv
import io
import json
from pathlib import Path

from modes.data.translation import DIRECTIONS, MAX_ROWS, MAX_SIDE_CHARS, MAX_UPLOAD_BYTES, DataError, Pair
from modes.data.uploads import from_hub_dataset, read_utf8


def _clean_rows(rows: list[dict], source_col: str = "source", target_col: str = "target", max_chars: int = MAX_SIDE_CHARS) -> list[Pair]:
    if not rows:
        raise DataError("err_data_no_rows")
    cols = set(rows[0])
    missing = [c for c in (source_col, target_col) if c not in cols]
    if missing:
        raise DataError("err_data_no_such_column", missing=", ".join(missing), found=", ".join(sorted(map(str, cols))) or "—")
    out = []
    for i, r in enumerate(rows[:MAX_ROWS], start=1):
        s, t = str(r.get(source_col) or "").strip(), str(r.get(target_col) or "").strip()
        if not s or not t:
            raise DataError("err_data_empty_side", row=i)
        if len(s) > max_chars or len(t) > max_chars:
            raise DataError("err_data_long_row", row=i, cap=max_chars)
        out.append(Pair(s, t))
    return out


def read_table(path: str | Path) -> tuple[list[dict], list[str]]:
    """(rows, column names) of an uploaded CSV, TSV or JSONL file, checked line by line."""
    p = Path(path)
    text = read_utf8(p, MAX_UPLOAD_BYTES)
    suffix = p.suffix.lower()
    if suffix in (".jsonl", ".json"):
        rows = []
        for n, line in enumerate(text.splitlines(), start=1):
            if not line.strip():
                continue
            try:
                row = json.loads(line)
            except json.JSONDecodeError:
                raise DataError("err_data_bad_line", line=n) from None
            if not isinstance(row, dict):
                raise DataError("err_data_bad_line", line=n)
            rows.append(row)
        columns = list(dict.fromkeys(str(k) for r in rows for k in r))
        return rows, columns
    if suffix in (".csv", ".tsv"):
        reader = csv.DictReader(io.StringIO(text), delimiter="\t" if suffix == ".tsv" else ",")
        try:
            rows = [dict(r) for r in reader]
        except csv.Error as exc:
            raise DataError("err_data_bad_csv", why=str(exc)) from None
        if reader.fieldnames is None:
            raise DataError("err_data_no_rows")
        if any(None in r for r in rows):
            bad = next(i for i, r in enumerate(rows, start=2) if None in r)
            raise DataError("err_data_bad_line", line=bad)
        return rows, [str(c) for c in reader.fieldnames]
    raise DataError("err_data_format", name=p.name)


# Column names a learner's file commonly has, per side. A translation file's columns name languages
# (the direction decides which is the source); a summary file's name roles.
LANG_NAMES = {"en": ("english", "en", "eng", "en_text", "english_text", "영어"),
              "ko": ("korean", "ko", "kor", "kr", "ko_text", "korean_text", "한국어", "한국어문장")}
ROLE_NAMES = {"source": ("source", "src", "input", "question", "prompt", "text", "원문", "입력"),
              "target": ("target", "tgt", "output", "answer", "response", "translation", "label", "번역", "출력"),
              "dialogue": ("dialogue", "dialog", "conversation", "chat", "대화"),
              "summary": ("summary", "summ", "abstract", "요약")}


def _norm(name: str) -> str:
    return str(name).strip().lower().replace("-", "_").replace(" ", "_")


def guess_columns(columns: list[str], direction: str | None = None, roles: tuple[str, str] = ("source", "target")) -> tuple[str | None, str | None]:
    """The (source, target) columns a file most likely means: role names first (source/target,
    input/output, dialogue/summary), then language names oriented by `direction` (english/korean,
    en/ko). None for a side with no sensible guess."""
    by_norm = {_norm(c): c for c in columns}

    def find(names) -> str | None:
        return next((by_norm[n] for n in names if n in by_norm), None)

    src, tgt = find(ROLE_NAMES[roles[0]]), find(ROLE_NAMES[roles[1]])
    if (src is None or tgt is None) and direction in DIRECTIONS:
        s_lang, t_lang = DIRECTIONS[direction][2:]
        src, tgt = src or find(LANG_NAMES[s_lang]), tgt or find(LANG_NAMES[t_lang])
    if src is not None and src == tgt:
        tgt = None
    return src, tgt


def upload_columns(path: str | Path, direction: str | None = None, roles: tuple[str, str] = ("source", "target")) -> tuple[list[str], str | None, str | None]:
    """(the file's columns, guessed source, guessed target): what the column picker offers."""
    _, columns = read_table(path)
    return (columns, *guess_columns(columns, direction, roles))


def from_upload(path: str | Path, source_col: str | None = None, target_col: str | None = None,
                direction: str | None = None, roles: tuple[str, str] = ("source", "target"),
                max_chars: int = MAX_SIDE_CHARS) -> list[Pair]:
    """A CSV, TSV or JSONL file's pairs, validated row by row. The columns are the ones named, or
    else guessed from the names (source/target, english/korean oriented by `direction`, ...)."""
    rows, columns = read_table(path)
    g_src, g_tgt = guess_columns(columns, direction, roles)
    src, tgt = (source_col or "").strip() or g_src, (target_col or "").strip() or g_tgt
    if src is None or tgt is None:
        raise DataError("err_data_columns", missing=", ".join(r for r, c in zip(roles, (src, tgt)) if c is None),
                        found=", ".join(columns) or "—")
    if src == tgt:
        raise DataError("err_data_same_column", name=src)
    return _clean_rows(rows, src, tgt, max_chars)


def from_hub(dataset_id: str, source_col: str, target_col: str, max_chars: int = MAX_SIDE_CHARS) -> list[Pair]:
    """A Hub dataset's two columns (needs the Hub; refused at once when offline)."""
    rows = from_hub_dataset(dataset_id, lambda ds: [r for _, r in zip(range(MAX_ROWS), ds)], DataError,
                            offline_key="err_hub_offline_pairs")
    return _clean_rows(rows, source_col, target_col, max_chars)
