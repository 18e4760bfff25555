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


def choice(default: str, choices, why: str = ""):
    """A dataclass field whose value must be one of `choices` (strings)."""
    return dataclasses.field(default=default, metadata={"choices": tuple(choices), "why": why})


SEED_MAX = 2**63 - 1  # torch.Generator.manual_seed takes a 64-bit seed


def seed_field(default: int = 0, why: str = "fixes the random choices, so a run can be repeated"):
    """A whole-number seed in [0, 2**63 - 1]."""
    return bounded(default, 0, SEED_MAX, 1, why)


def whole(v, name: str, lo: float = -math.inf, hi: float = math.inf) -> int:
    """`v` as an int when it is a whole number in [lo, hi] (3.0 from a JSON client counts as 3)."""
    ok = isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v) and v == int(v) and lo <= v <= hi
    if not ok:
        span = "" if (lo, hi) == (-math.inf, math.inf) else f" from {_show(lo)} to {_show(hi)}"
        raise ValueError(f"{name}: must be a whole number{span}, got {v!r}")
    return int(v)


def _show(x) -> str:
    return str(int(x)) if math.isfinite(x) and x == int(x) else f"{x:g}"


def number(v, name: str, lo: float, hi: float) -> float:
    """`v` when it is a finite number in [lo, hi]."""
    if isinstance(v, bool) or not isinstance(v, (int, float)) or not math.isfinite(v) or not lo <= v <= hi:
        raise ValueError(f"{name}: must be a number from {_show(lo)} to {_show(hi)}, got {v!r}")
    return v


def one_of(v, name: str, choices) -> str:
    """`v` when it is one of the strings `choices`."""
    if not isinstance(v, str) or v not in choices:
        raise ValueError(f"{name}: must be one of {', '.join(map(str, choices))}, got {v!r}")
    return v


def check(obj) -> None:
    """Validate every bounded or choice field of a config in place (whole numbers become ints).

    The one validation path: every endpoint builds its config from what the call sent (the UI's widgets
    or a raw HTTP body alike) and this refuses NaN, +-inf, out-of-range values and wrong types, with a
    message that starts with the field's name."""
    for f in dataclasses.fields(obj):
        meta, v = f.metadata, getattr(obj, f.name)
        if "choices" in meta:
            one_of(v, f.name, meta["choices"])
        elif "lo" in meta:
            if isinstance(f.default, int) and not isinstance(f.default, bool):
                setattr(obj, f.name, whole(v, f.name, meta["lo"], meta["hi"]))
            else:
                setattr(obj, f.name, float(number(v, f.name, meta["lo"], meta["hi"])))


def describe(cls) -> dict:
    """Each bounded or choice field's bounds and reason, for the README and the API's docs."""
    return {f.name: dict(f.metadata) for f in dataclasses.fields(cls) if f.metadata}


def bounds(cls, name: str) -> dict:
    """minimum, maximum and step of a bounded field, as a gr.Slider takes them."""
    meta = next(f.metadata for f in dataclasses.fields(cls) if f.name == name)
    step = meta["step"] or (1 if isinstance(getattr(cls, name, 0), int) else None)
    return {"minimum": meta["lo"], "maximum": meta["hi"], "step": step}
