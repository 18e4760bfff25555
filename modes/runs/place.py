"""Where a learner's things are kept, and the secret that lets a browser's owner id outlive the process.

The data dir is HML_DATA_DIR; else /data/hml when a Space has persistent storage mounted at /data;
else `data` beside the model cache (the user's cache directory), so `python app.py` needs no set-up.
The browser keeps its owner id encrypted (gr.BrowserState) with a secret that Gradio otherwise draws
at random per process, so after a restart the id could not be read back. The secret is HML_SECRET,
else one drawn once and kept in the data dir with mode 0600.
"""

from __future__ import annotations

import os
import secrets
from pathlib import Path

SECRET_FILE = "browser-secret"


def data_dir(cache_dir: Path | str) -> Path:
    """The app's data dir (made if missing)."""
    env = os.environ.get("HML_DATA_DIR")
    if env:
        path = Path(env).expanduser()
    elif Path("/data").is_dir() and os.access("/data", os.W_OK):
        path = Path("/data/hml")
    else:
        path = Path(cache_dir) / "data"
    path.mkdir(parents=True, exist_ok=True)
    return path


def browser_secret(folder: Path) -> str:
    """HML_SECRET, else the secret kept in `folder` (drawn and written with mode 0600 on first use).
    A folder that cannot be written gives a secret for this process only: the app still runs."""
    env = os.environ.get("HML_SECRET")
    if env:
        return env
    path = Path(folder) / SECRET_FILE
    try:
        return path.read_text(encoding="utf-8").strip()
    except FileNotFoundError:
        pass
    except OSError:
        return secrets.token_hex(32)
    value = secrets.token_hex(32)  # 256 bits
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:  # another process wrote it first: use theirs
        return path.read_text(encoding="utf-8").strip()
    except OSError:
        return value
    with os.fdopen(fd, "w", encoding="utf-8") as f:
        f.write(value)
    return value
