"""Reading learner uploads safely: one size cap, and clear reasons for empty, binary or non-UTF-8 files."""

from __future__ import annotations

from pathlib import Path


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
