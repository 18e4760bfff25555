"""Which precision the served model runs in: the device's default, the user's ask, the CPU's bf16 flags,
and a decode-step probe. The loader (modes/model/loader.py) makes the decision with these."""

from __future__ import annotations

import os
import statistics
import time
from pathlib import Path


def pick_device() -> tuple[str, str]:
    """CUDA with bf16 when there is a GPU, else the CPU with float32 (dtype given by name).

    On the CPU the loader may still serve in bf16: see `ModelLoader._decide_cpu_dtype`.
    """
    import torch

    if torch.cuda.is_available():
        return "cuda", "bfloat16"
    return "cpu", "float32"


DTYPES = ("auto", "float32", "bfloat16")


def requested_dtype(value: str | None = None) -> str:
    """The precision asked for: `--dtype`, else HML_DTYPE, else auto. Raises ValueError naming the knob."""
    v = (value or os.environ.get("HML_DTYPE") or "auto").strip().lower()
    v = {"fp32": "float32", "bf16": "bfloat16"}.get(v, v)
    if v not in DTYPES:
        raise ValueError(f"dtype: must be one of {', '.join(DTYPES)} (from --dtype or HML_DTYPE), got {value or os.environ.get('HML_DTYPE')!r}")
    return v


def cpu_bf16_flags(cpuinfo: str | None = None) -> list[str]:
    """The CPU's native bf16 features: x86 `avx512_bf16`/`amx_bf16`, Arm `bf16` (from /proc/cpuinfo)."""
    if cpuinfo is None:
        try:
            cpuinfo = Path("/proc/cpuinfo").read_text(errors="replace")
        except OSError:
            return []
    words = set()
    for line in cpuinfo.splitlines():
        key, _, rest = line.partition(":")
        if key.strip() in ("flags", "Features"):
            words.update(rest.split())
    return sorted(words & {"avx512_bf16", "amx_bf16", "bf16"})


def probe_decode_seconds(model, steps: int = 4, context: int = 32) -> float:
    """Median seconds of one batch-1 decode step with a KV cache (the step every generation repeats)."""
    import torch
    from transformers import DynamicCache

    ids = torch.ones((1, context), dtype=torch.long, device=model.device)
    times = []
    with torch.no_grad():
        cache = model(input_ids=ids, cache=DynamicCache(config=model.config), use_cache=True).cache
        nxt = ids[:, -1:]
        for _ in range(steps + 1):  # the first step warms up kernels and is not counted
            t = time.perf_counter()
            cache = model(input_ids=nxt, cache=cache, use_cache=True).cache
            times.append(time.perf_counter() - t)
    return statistics.median(times[1:])


# ---- the decision, kept per CPU ----------------------------------------------------------------
CHOICES_FILE = "cpu-precision.json"  # in the loader's cache dir: one decision per CPU, torch and model


def choice_key(model_id: str, cpuinfo: str | None = None) -> str:
    """What the decision depends on: the CPU model and its bf16 flags, the torch build, the model."""
    import torch

    if cpuinfo is None:
        try:
            cpuinfo = Path("/proc/cpuinfo").read_text(errors="replace")
        except OSError:
            cpuinfo = ""
    name = next((line.split(":", 1)[1].strip() for line in cpuinfo.splitlines() if line.startswith("model name")), "?")
    # Timings on fewer threads than cores (a test worker runs on one) are a different decision: named apart.
    threads = "" if torch.get_num_threads() == os.cpu_count() else f" ({torch.get_num_threads()} threads)"
    return f"{name} | {','.join(cpu_bf16_flags(cpuinfo)) or 'no bf16'} | torch {torch.__version__} | {os.cpu_count()} cpus{threads} | {model_id}"


def cpu_line(cpuinfo: str | None = None) -> str:
    """'CPU: <model> | <bf16 flags> | torch <version> | <n> cpus': what benchmarks print beside their figures."""
    return "CPU: " + choice_key("", cpuinfo).removesuffix(" | ")


def cached_choice(folder: Path, key: str) -> dict | None:
    """An earlier start's decision on this CPU ({"dtype", "reason"}), or None."""
    import json

    try:
        return json.loads((Path(folder) / CHOICES_FILE).read_text(encoding="utf-8")).get(key)
    except (OSError, ValueError, AttributeError):
        return None


def remember_choice(folder: Path, key: str, dtype: str, reason: str) -> None:
    """Keep this start's decision for the next start on the same CPU (a failed write only costs a re-measure)."""
    import json

    path = Path(folder) / CHOICES_FILE
    try:
        known = json.loads(path.read_text(encoding="utf-8")) if path.exists() else {}
        known[key] = {"dtype": dtype, "reason": reason}
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_suffix(f".tmp-{os.getpid()}")
        tmp.write_text(json.dumps(known, indent=1), encoding="utf-8")
        tmp.replace(path)
    except (OSError, ValueError):
        pass
