"""Where heavy work runs: one seam, chosen at start, that every model computation goes through.

Two modes:
- *threads* (a CPU, or a dedicated GPU): the engine's scheduler thread batches every learner's rows
  and each training runs in a thread of its own that pages follow (and reattach to after a reload).
- *in-call* (a ZeroGPU Space): the main process never touches a GPU. ZeroGPU runs a function decorated
  with `spaces.GPU` in a forked worker process that holds a GPU for that call only, with its arguments
  and results pickled across. So each request's heavy work is one such call: a training runs inside the
  request that started it and streams its events from the worker; a translation or a sweep batches only
  within its own call. What that gives up (reattaching after a reload, batching across learners) is said
  on the status line (`Heavy.describe`).

A heavy function is a module-level function `fn(ctx, *args)` whose arguments and results pickle (plain
values, dataclasses, bytes): in the worker, `ctx` is the forked copy of the app context (its locks made
anew, its engine its own), found again by key. A training's GPU duration is measured (modes/serving/
gpu_budget.py: seconds per step of its kind on this GPU, timed inside the call); until then it is a guess
from the settings, with a margin. A call that would ask for more than ZeroGPU's per-call limit is refused
before it starts; one ZeroGPU refuses for the visitor's quota is told as such (QuotaRefused). In-call mode
lets HML_GPU_CONCURRENT trainings of different learners run at once, each in its own call.
"""

from __future__ import annotations

import os
import tempfile
import threading
import time
import uuid
import weakref
from pathlib import Path
from typing import Iterator

from modes.serving.gpu_worker import GpuName, Raised, inside, register, tasks

THREADS, IN_CALL = "threads", "in-call"
# ZeroGPU refuses a call that asks for more; "5 minutes is the maximum time that can be requested at once"
# (the ZeroGPU team, zero-gpu-explorers discussion 7). HML_GPU_LIMIT_S overrides it where it differs.
DEFAULT_LIMIT_S = 300
MARGIN = 1.5  # the duration asked for is the estimate times this (estimates are not measured on ZeroGPU)
WORKER_START_S = 20.0  # a worker's start: fork, the model's move to the GPU, CUDA's first kernels
GPU_SPEEDUP = 5.0  # a conservative floor: the app's CPU estimates divided by this (a GPU is far faster)


class QuotaRefused(Exception):
    """ZeroGPU refused the call: the visitor's daily GPU quota has less left than the call asked for."""

    key = "err_gpu_quota"

    def __init__(self, seconds: float, said: str):
        super().__init__(f"ZeroGPU refused {seconds:.0f} s for the visitor's quota: {said}")
        self.fmt = {"secs": f"{seconds:.0f}"}


def _quota_refusal(exc: BaseException) -> bool:
    """ZeroGPU's own refusal for quota (spaces raises a gr.Error whose message speaks of the quota)."""
    text = str(exc).lower()
    return "quota" in text and not isinstance(exc, (TooLong, QuotaRefused))


class TooLong(Exception):
    """A call whose estimated GPU time exceeds the per-call limit: refused before it starts."""

    key = "err_gpu_too_long"

    def __init__(self, seconds: float, limit: float):
        super().__init__(f"estimated {seconds:.0f} s on the GPU, over ZeroGPU's limit of {limit:.0f} s per call")
        self.fmt = {"secs": f"{seconds:.0f}", "limit": f"{limit:.0f}"}


def detect() -> str:
    """The mode for this process: HML_HEAVY when set (threads | in-call), else in-call on a ZeroGPU Space
    (the `spaces` package present and its config saying ZeroGPU), else threads."""
    asked = os.environ.get("HML_HEAVY", "").strip().lower()
    if asked in (THREADS, IN_CALL):
        return asked
    try:
        import spaces  # only on Hugging Face Spaces (or the tests' emulator)
        from spaces.config import Config
    except Exception:  # any import problem means "not on a Space"
        return THREADS
    return IN_CALL if getattr(Config, "zero_gpu", False) and hasattr(spaces, "GPU") else THREADS


def gpu_seconds(cpu_seconds: float) -> float:
    """A GPU call's estimated seconds from the app's CPU estimate of the same work."""
    return WORKER_START_S + cpu_seconds / GPU_SPEEDUP


class FileStop:
    """A stop request a forked worker can see: a file that exists once the parent asks to stop."""

    def __init__(self, path: str):
        self.path = path

    def is_set(self) -> bool:
        return os.path.exists(self.path)

    def set(self) -> None:
        Path(self.path).touch()


class Heavy:
    """The seam: `stream(fn, ...)` and `call(fn, ...)` run a heavy function where this mode runs it."""

    def __init__(self, mode: str | None = None, limit_s: float | None = None):
        self.mode = mode or detect()
        if self.mode not in (THREADS, IN_CALL):
            raise ValueError(f"heavy mode must be {THREADS!r} or {IN_CALL!r}, not {self.mode!r}")
        env_limit = os.environ.get("HML_GPU_LIMIT_S")
        self.limit_s = float(limit_s or env_limit or DEFAULT_LIMIT_S)
        self.key = uuid.uuid4().hex
        self.calls = 0  # GPU calls made from this process (tests and the status read it)
        self._lock = threading.Lock()
        from modes.serving.gpu_budget import GpuBudget

        self.budget = GpuBudget()  # measured seconds per step, per kind and GPU (in-call mode)
        self.gpu = "unknown"  # the GPU the last call ran on (its first streamed item says)
        # Trainings of different learners running at once, each in its own GPU call (ZeroGPU gives each call
        # its own GPU slice); threads mode trains one at a time on the machine's own cores.
        self.concurrent = max(1, int(os.environ.get("HML_GPU_CONCURRENT", "3"))) if self.mode == IN_CALL else 1

    @property
    def in_call(self) -> bool:
        """Heavy work goes to a GPU call from here: in-call mode, and not already inside a worker."""
        return self.mode == IN_CALL and not inside()

    def bind(self, ctx) -> None:
        """Register the app context the worker will find (its forked copy), and decorate the tasks."""
        if self.mode == IN_CALL:
            register(self.key, ctx)

    def asked(self, seconds: float, kind: str | None = None, steps: int | None = None) -> float:
        """The GPU seconds a call asks for: for a training `kind` of `steps` steps, what it measured on this GPU
        (modes/serving/gpu_budget.py); else `seconds` (the CPU-derived guess) with its margin."""
        if kind is None:
            return seconds * MARGIN
        return self.budget.ask(kind, steps or 0, seconds, self.gpu)[0]

    def check(self, seconds: float, kind: str | None = None, steps: int | None = None) -> float:
        """Refuse, before it starts, a call that would ask for more than the per-call limit; returns what it asks."""
        ask = self.asked(seconds, kind, steps)
        if self.mode == IN_CALL and ask > self.limit_s:
            raise TooLong(ask, self.limit_s)
        return ask

    def stream(self, fn, *args, seconds: float, stop=None, kind: str | None = None, steps: int | None = None, **kwargs) -> Iterator:
        """Yield what `fn(ctx, *args, **kwargs)` yields. `stop` (a StopFlag, or None) is passed on as
        `stop=`; in a GPU call it becomes a FileStop the parent sets when the flag is set. `kind`, `steps`: a
        training's, whose call is timed and asks for what such calls measured (modes/serving/gpu_budget.py)."""
        if not self.in_call:
            yield from fn(self._ctx(), *args, **({"stop": stop} if stop is not None else {}), **kwargs)
            return
        from modes.serving.gpu_budget import StepClock

        ask = self.check(seconds, kind, steps)
        with self._lock:
            self.calls += 1
        flag = None
        if stop is not None:
            flag = FileStop(os.path.join(tempfile.gettempdir(), f"hml-stop-{uuid.uuid4().hex}"))
            kwargs["stop"] = flag
        clock, gpu = StepClock(time.monotonic()), self.gpu
        gen = tasks()["stream"](self.key, fn, ask, args, kwargs)
        try:
            for item in gen:
                if isinstance(item, GpuName):
                    self.gpu = gpu = item.name
                    continue
                if isinstance(item, Raised):
                    item.throw()
                if hasattr(item, "elapsed") and hasattr(item, "step"):  # a training step, timed in the worker
                    clock.step(time.monotonic(), item.elapsed, item.step)
                if stop is not None and stop.is_set() and not flag.is_set():
                    flag.set()  # the worker's training sees it at its next step
                yield item
        except Exception as exc:
            if _quota_refusal(exc):
                raise QuotaRefused(ask, str(exc)) from None
            raise
        finally:
            gen.close()  # a closed page: ZeroGPU tells the worker to stop
            if flag is not None and os.path.exists(flag.path):
                os.remove(flag.path)
        measured = clock.done(time.monotonic()) if kind and not (stop is not None and stop.is_set()) else None
        if measured is not None:
            self.budget.record(kind, gpu, *measured)

    def call(self, fn, *args, seconds: float, **kwargs):
        """`fn(ctx, *args, **kwargs)`, here or in one GPU call."""
        if not self.in_call:
            return fn(self._ctx(), *args, **kwargs)
        ask = self.check(seconds)
        with self._lock:
            self.calls += 1
        try:
            out = tasks()["call"](self.key, fn, ask, args, kwargs)
        except Exception as exc:
            if _quota_refusal(exc):
                raise QuotaRefused(ask, str(exc)) from None
            raise
        if isinstance(out, Raised):
            out.throw()
        return out

    def _ctx(self):
        ctx = self.__dict__.get("ctx")
        if ctx is None:
            raise RuntimeError("Heavy.attach(ctx) was not called")
        return ctx

    def attach(self, ctx) -> None:
        """The context heavy functions get (threads mode keeps it here; in-call mode registers it too)."""
        self.__dict__["ctx"] = weakref.proxy(ctx)
        self.bind(ctx)

    def describe(self) -> str:
        """One line for the status line and /model_status: the mode and what it gives up."""
        if self.mode == THREADS:
            return ("heavy work: threads (one engine batches every learner's rows; a training runs on in its own "
                    "thread and a reloaded page reattaches to it)")
        return (f"heavy work: in-call (ZeroGPU: each request's work runs in its own GPU call of at most "
                f"{self.limit_s:.0f} s, up to {self.concurrent} learners' trainings at once, each asking for the GPU seconds "
                "its kind measured per step; batching across learners and reattaching to a training after a reload are given up)")
