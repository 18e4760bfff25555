"""Which precision a LoRA fine-tune trains its private copy in, on this CPU: float32, or a bf16 base.

The adapter's own weights stay float32 either way (PEFT keeps them so), and the base weights are frozen,
so a bf16 base only changes the precision of the frozen matmuls. Whether that is faster depends on the
CPU family: on an Intel Xeon with AMX a default LoRA step took 0.66 s on a bf16 base against 1.35 s in
float32 (2 cores), while on an AMD EPYC a bf16 base was 4.5x slower. So it is measured, never assumed:
a forward and backward pass shaped like a LoRA step (frozen weights, gradients through the activations)
in each precision (two interleaved rounds, about 5 s on 2 cores), once per CPU, kept next to the served precision's decision
(modes/serving/precision.py). HML_TRAIN_DTYPE=float32|bfloat16 overrides it.
"""

from __future__ import annotations

import copy
import os
import statistics
import time

from modes.serving.precision import cached_choice, choice_key, cpu_bf16_flags, remember_choice

BF16_WIN = 0.8  # a bf16 base is taken only when clearly faster: its step at most 0.8x the float32 one
PROBE_SHAPE = (4, 24)  # [rows, tokens]: a small batch of the built-in pairs' size (~26 tokens a pair)
PROBE_TARGETS = 8  # positions per row that go through the LM head, as target tokens do


def requested(value: str | None = None) -> str:
    """`value`, else HML_TRAIN_DTYPE, else auto (float32, bfloat16 or auto). Raises ValueError naming the knob."""
    v = (value or os.environ.get("HML_TRAIN_DTYPE") or "auto").strip().lower()
    v = {"fp32": "float32", "bf16": "bfloat16"}.get(v, v)
    if v not in ("auto", "float32", "bfloat16"):
        raise ValueError(f"HML_TRAIN_DTYPE: must be auto, float32 or bfloat16, got {v!r}")
    return v


def probe_step_seconds(model, reps: int = 2) -> float:
    """Median seconds of a forward and backward pass shaped like a LoRA step, on `model` as it is.

    The base weights are frozen for the probe (as under LoRA), so the backward pass computes gradients
    through the activations only; the loss is read at PROBE_TARGETS positions per row through the LM head.
    """
    import torch

    from modes.model.head_loss import head_cross_entropy

    rows, width = PROBE_SHAPE
    ids = torch.randint(0, min(model.config.vocab_size, 32_000), (rows, width), generator=torch.Generator().manual_seed(0))
    ids = ids.to(model.device)
    flags = [(p, p.requires_grad) for p in model.parameters()]
    for p, _ in flags:
        p.requires_grad_(False)
    times = []
    try:
        with torch.enable_grad():
            for _ in range(reps + 1):  # the first pass warms the kernels up and is not counted
                t = time.perf_counter()
                emb = model.get_input_embeddings()(ids).detach().requires_grad_()
                hidden = model.model(inputs_embeds=emb).last_hidden_state  # [rows, width, H]
                # [rows * targets, H] against the head, 2-D as the loss computes it (modes/model/head_loss.py):
                # a 3-D bf16 slice would go through bmm with the 262k-row head copied per row
                h = hidden[:, -PROBE_TARGETS:].reshape(-1, hidden.shape[-1])
                head_cross_entropy(h, model.lm_head.weight, ids[:, -PROBE_TARGETS:].reshape(-1)).backward()
                times.append(time.perf_counter() - t)
    finally:
        for p, flag in flags:
            p.requires_grad_(flag)
    return statistics.median(times[1:])


def decide(model, cache_dir, model_id: str, asked: str = "auto", probe=probe_step_seconds, flags: list[str] | None = None,
           cpuinfo: str | None = None) -> tuple[str, str]:
    """(dtype name, reason) for the training copy of `model`, a float32 model on the CPU.

    `asked` comes from `requested`; `probe(model) -> seconds` times one training-shaped step, and `flags`
    are the CPU's bf16 flags (read from /proc/cpuinfo when None): tests pass fakes.
    """
    import torch

    if asked != "auto":
        return asked, f"{asked} (asked for with HML_TRAIN_DTYPE)"
    flags = cpu_bf16_flags(cpuinfo) if flags is None else flags
    if not flags:
        return "float32", "float32: this CPU has no native bf16"
    key = choice_key(model_id, cpuinfo) + " | training, one-pass head loss"  # measured with the step as it is now
    known = cached_choice(cache_dir, key)
    if known and known.get("dtype") in ("float32", "bfloat16"):
        return known["dtype"], f"{known['reason']} (measured at an earlier start on this CPU)"
    half = bf16_copy(model, torch)
    try:  # two rounds, interleaved, each precision's best kept: a busy machine slows one round, not one precision
        t32, t16 = probe(model), probe(half)
        t32, t16 = min(t32, probe(model)), min(t16, probe(half))
    finally:
        del half
    step = f"a LoRA-shaped step took {t32 * 1000:.0f} ms in float32, {t16 * 1000:.0f} ms on a bf16 base"
    if t16 <= BF16_WIN * t32:
        dtype, reason = "bfloat16", f"bf16 base, float32 adapter: faster on this CPU ({', '.join(flags)}; {step})"
    else:
        dtype, reason = "float32", f"float32: a bf16 base was not faster on this CPU ({step})"
    remember_choice(cache_dir, key, dtype, reason)
    return dtype, reason


def bf16_copy(model, torch):
    """A bf16 copy of `model` without a float32 copy in between (parameters cast one by one)."""
    state = {id(p): p for p in model.parameters()}
    memo = {pid: torch.nn.Parameter(p.detach().to(torch.bfloat16), requires_grad=p.requires_grad) for pid, p in state.items()}
    return copy.deepcopy(model, memo).eval()


def training_copy(loader):
    """A private copy of the served model to train on, on a CPU in `train_dtype` whatever the served dtype.

    A bf16 base trains 2x faster on some CPUs and 4.5x slower on others (above);
    upcasting a bf16 copy would train on rounded weights, so a float32 copy of a bf16-served model is
    loaded from the float32 source on disk. It exists only while a training runs (the caller drops it).
    """
    import torch

    model, _ = loader.get()
    served = next(model.parameters()).dtype
    want = getattr(torch, loader.train_dtype)
    if not loader.device.startswith("cpu") or served == want:
        return copy.deepcopy(model)
    if want == torch.bfloat16:
        return bf16_copy(model, torch)
    if loader._source is None:  # nothing to load float32 weights from: the served ones, as they are
        return copy.deepcopy(model)
    return loader._load_float32().to(loader.device).eval()
