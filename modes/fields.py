"""Config fields that carry their own bounds: a config validates with them and a widget is drawn
from them, so a slider can never offer what the config refuses (PEFT keeps help in field metadata too).

No torch and no Gradio here: the configs import this before anything heavy has loaded.
"""

from __future__ import annotations

import dataclasses
import math


def bounded(default, lo, hi, step=None, why: str = ""):
    """A dataclass field whose value must lie in [lo, hi]; whole numbers when the default is an int."""
    return dataclasses.field(default=default, metadata={"lo": lo, "hi": hi, "step": step, "why": why})


def whole(v, name: str, lo: float = -math.inf, hi: float = math.inf) -> int:
    """`v` as an int when it is a whole number in [lo, hi] (3.0 from a JSON client counts as 3)."""
    ok = isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v) and v == int(v) and lo <= v <= hi
    if not ok:
        span = "" if (lo, hi) == (-math.inf, math.inf) else f" from {lo:g} to {hi:g}"
        raise ValueError(f"{name}: must be a whole number{span}, got {v!r}")
    return int(v)


def number(v, name: str, lo: float, hi: float) -> float:
    """`v` when it is a finite number in [lo, hi]."""
    if isinstance(v, bool) or not isinstance(v, (int, float)) or not math.isfinite(v) or not lo <= v <= hi:
        raise ValueError(f"{name}: must be a number from {lo:g} to {hi:g}, got {v!r}")
    return v


def check(obj) -> None:
    """Validate every bounded field of a config in place (whole numbers become ints)."""
    for f in dataclasses.fields(obj):
        if "lo" not in f.metadata:
            continue
        v, lo, hi = getattr(obj, f.name), f.metadata["lo"], f.metadata["hi"]
        if isinstance(f.default, int):
            setattr(obj, f.name, whole(v, f.name, lo, hi))
        else:
            number(v, f.name, lo, hi)


def bounds(cls, name: str) -> dict:
    """minimum, maximum and step of a bounded field, as a gr.Slider takes them."""
    meta = next(f.metadata for f in dataclasses.fields(cls) if f.name == name)
    step = meta["step"] or (1 if isinstance(getattr(cls, name, 0), int) else None)
    return {"minimum": meta["lo"], "maximum": meta["hi"], "step": step}
