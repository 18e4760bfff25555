"""What a reusable result depends on, as one key: the code's own hash (per package of modes/ its computation
imports), the runtime (torch version, thread count) and hashes of its data. The same key gives the same figures
(modes/runs/reuse.py keeps them); a code change makes old results unusable."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

MODES_DIR = Path(__file__).resolve().parents[1]
_code_hashes: dict = {}


def code_version(*parts: str) -> str:
    """A hash of the named parts of modes/: a package folder ("serving": every .py in it) or a module
    ("metrics"). Naming packages, not files, keeps a result's key right when a package gains a file.
    A code change makes old results unusable."""
    key = tuple(sorted(parts))
    if key not in _code_hashes:
        h = hashlib.sha256()
        for name in key:
            path = MODES_DIR / name
            files = sorted(path.rglob("*.py")) if path.is_dir() else [MODES_DIR / f"{name}.py"]
            if not files or not files[0].exists():
                raise FileNotFoundError(f"code_version: no modes/{name} (package or module)")
            for f in files:
                h.update(str(f.relative_to(MODES_DIR)).encode())
                h.update(f.read_bytes())
        _code_hashes[key] = h.hexdigest()[:16]
    return _code_hashes[key]


def runtime() -> dict:
    """What else can change a float: torch version, device and thread count."""
    import torch

    return {"torch": torch.__version__, "threads": torch.get_num_threads()}


def key_of(parts: dict) -> str:
    return hashlib.sha256(json.dumps(parts, sort_keys=True, default=str).encode()).hexdigest()[:32]


def text_hash(*texts) -> str:
    h = hashlib.sha256()
    for t in texts:
        h.update(json.dumps(t, ensure_ascii=False, default=str).encode())
    return h.hexdigest()[:16]
