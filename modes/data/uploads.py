"""Reading learner data safely: uploads (one size cap, clear reasons for empty, binary or non-UTF-8
files) and Hub datasets (refused at once when offline, any failure explained)."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Callable, Iterable, TypeVar

T = TypeVar("T")


class InputError(ValueError):
    """Bad learner input; `key` names the UI string that explains it, `fmt` fills it in."""

    def __init__(self, key: str, **fmt):
        super().__init__(f"{key} {fmt}")
        self.key, self.fmt = key, fmt


def read_utf8(path: str | Path, max_bytes: int) -> str:
    """The file's text, or an InputError: empty, over `max_bytes`, binary (NUL bytes), or not UTF-8."""
    p = Path(path)
    size = p.stat().st_size
    if size == 0:
        raise InputError("err_upload_empty")
    if size > max_bytes:
        raise InputError("err_upload_too_big", mb=round(size / 2**20, 1), cap=round(max_bytes / 2**20, 1))
    data = p.read_bytes()
    if b"\x00" in data:
        raise InputError("err_upload_binary")
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError:
        raise InputError("err_upload_not_utf8") from None


def hub_offline() -> bool:
    """HF_HUB_OFFLINE is set: a Hub id fails at once instead of retrying the network. Read at call time."""
    return os.environ.get("HF_HUB_OFFLINE", "").lower() in ("1", "true", "yes")


def from_hub_dataset(dataset_id: str, take: Callable[[Iterable[dict]], T], error: type[InputError] = InputError,
                     offline_key: str = "err_hub_offline") -> T:
    """`take(rows)` over a Hub dataset's streamed train split; offline or any failure is an `error`.
    `offline_key` names the offline message, which says what the calling tab offers instead."""
    if hub_offline():
        raise error(offline_key, name=dataset_id)
    try:
        from datasets import load_dataset

        return take(load_dataset(dataset_id, split="train", streaming=True))
    except Exception as exc:  # any failure means "cannot use this dataset"
        raise error("err_hub_dataset", name=dataset_id, why=str(exc).splitlines()[0][:160]) from exc
