"""What runs in a ZeroGPU worker, a process forked for one `spaces.GPU` call: the two decorated tasks (a stream
and a call), the app context each finds again by key, exceptions carried back as values, and the locks a fork
must make anew. The seam that sends work here is modes/serving/heavy.py.
"""

from __future__ import annotations

import os
import pickle
import weakref
from dataclasses import dataclass
from typing import Callable


@dataclass
class GpuName:
    """The first item a GPU call streams: which GPU ran it (the budget is kept per GPU)."""

    name: str


def gpu_name() -> str:
    try:
        import torch

        return torch.cuda.get_device_name(0) if torch.cuda.is_available() else "cpu"
    except Exception:
        return "unknown"


# ---- after a fork: locks made anew -------------------------------------------------------------
# A forked worker has only the thread that forked; a lock another thread held at that moment stays held
# in the child for ever. Objects that hold locks the worker uses register here and remake them.
_FORK_SAFE: "weakref.WeakSet" = weakref.WeakSet()
_hooked = False


def fork_safe(obj) -> None:
    """Call `obj._after_fork()` in every forked child (held weakly: a dropped object is forgotten)."""
    global _hooked
    _FORK_SAFE.add(obj)
    if not _hooked and hasattr(os, "register_at_fork"):
        os.register_at_fork(after_in_child=_after_fork)
        _hooked = True


def _after_fork() -> None:
    for obj in list(_FORK_SAFE):
        obj._after_fork()


# ---- the tasks ZeroGPU runs ---------------------------------------------------------------------
_CONTEXTS: dict[str, object] = {}  # key -> app context, so the worker finds its (forked) copy by key
_PARENT_PID: int | None = None
_TASKS: dict[str, Callable] = {}  # "stream" | "call" -> the spaces.GPU-decorated task (decorated once per process)


def register(key: str, ctx) -> None:
    """Keep the app context under `key` for the worker (its forked copy), note the parent, decorate the tasks."""
    global _PARENT_PID
    _CONTEXTS[key] = ctx
    _PARENT_PID = _PARENT_PID or os.getpid()
    tasks()


def inside() -> bool:
    """True in a GPU worker: a process forked from the one that bound a context."""
    return _PARENT_PID is not None and os.getpid() != _PARENT_PID


def _duration(key, fn, seconds, args, kwargs) -> int:
    """spaces.GPU's duration callable: it gets the task's own arguments; `seconds` is what to ask for (its
    margin already in: Heavy.asked)."""
    return int(seconds) + 1


class Raised:
    """An exception from the worker, carried back as a value: ZeroGPU would turn it into a bare
    "ZeroGPU worker error" naming only its class; this keeps its type and message for the guard."""

    def __init__(self, exc: BaseException):
        try:
            pickle.loads(pickle.dumps(exc))
            self.exc = exc
        except Exception:  # an exception that does not pickle: its class and message
            self.exc = RuntimeError(f"{type(exc).__name__}: {exc}")

    def throw(self):
        raise self.exc


def _worker_threads() -> None:
    """First thing in a forked worker: one CPU thread for torch. A parent that used torch's CPU thread pool
    leaves a forked child that hangs in its first parallel region (measured here, torch 2.13: 5 of 5 children
    hung with 2 threads, after set_num_threads(2) too; none with 1). On ZeroGPU the work is on the GPU."""
    import torch

    if torch.get_num_threads() != 1:
        torch.set_num_threads(1)


def _stream_task(key, fn, seconds, args, kwargs):
    _worker_threads()
    try:
        yield GpuName(gpu_name())
        yield from fn(_CONTEXTS[key], *args, **kwargs)
    except Exception as exc:
        yield Raised(exc)


def _call_task(key, fn, seconds, args, kwargs):
    _worker_threads()
    try:
        return fn(_CONTEXTS[key], *args, **kwargs)
    except Exception as exc:
        return Raised(exc)


def tasks() -> dict[str, Callable]:
    """The two tasks wrapped with spaces.GPU, once (ZeroGPU counts decorated functions at launch)."""
    import spaces

    if _TASKS.get("by") is not spaces.GPU:  # once per `spaces` (the tests' emulator installs its own)
        _TASKS["by"] = spaces.GPU
        _TASKS["stream"] = spaces.GPU(duration=_duration)(_stream_task)
        _TASKS["call"] = spaces.GPU(duration=_duration)(_call_task)
    return _TASKS
