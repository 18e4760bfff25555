"""An emulator of ZeroGPU for tests: a stand-in `spaces` package whose `spaces.GPU` runs the decorated
call in a forked child process, as ZeroGPU does, with the arguments and results pickled across (a
generator's items one by one), and a guard that makes any model forward pass in the parent raise.

What it copies from `spaces` 0.51 (spaces/zero/wrappers.py): the fork; pickling both ways; `duration`
as a number or a callable given the call's arguments, refused above the per-call limit; a closed
generator setting the worker's stop event, checked between items; a gr.Error from the task raised as
it is and any other error as "ZeroGPU worker error"; a visitor's daily quota (`quota_s`): a call whose requested
duration exceeds what is left is refused before it starts, with ZeroGPU's words, and each call's wall time is
taken off it; calls at once, each in its own worker (`peak` counts them). What it leaves out: per-visitor
quotas (one quota for every caller), the device API, CUDA, and the worker kept between calls (here each
call forks afresh, so it sees the parent as it is then).
"""

from __future__ import annotations

import multiprocessing
import os
import sys
import traceback
import types

FORK = multiprocessing.get_context("fork")


class Emulator:
    """Install with `install()`, remove with `uninstall()`; `calls`, `durations` and `violations` say what happened."""

    def __init__(self, limit_s: float = 300, quota_s: float | None = None):
        self.limit_s = limit_s
        self.quota_s = quota_s  # seconds left in the visitor's daily quota (None: no quota)
        self.calls = 0
        self.durations: list[float] = []
        self.walls: list[float] = []  # each finished call's wall seconds, as ZeroGPU counts them
        self.running = self.peak = 0  # calls at once, now and at most
        import threading

        self._lock = threading.Lock()
        self.violations: list[str] = []  # models called in the parent (each also raised there)
        self.parent = os.getpid()
        self._saved = {}

    # ---- the stand-in package ----
    def module(self) -> types.ModuleType:
        spaces = types.ModuleType("spaces")
        config = types.ModuleType("spaces.config")
        config.Config = types.SimpleNamespace(zero_gpu=True)
        spaces.config = config
        spaces.GPU = self.GPU
        spaces.emulator = self
        return spaces

    def GPU(self, task=None, *, duration=None, size=None):
        if task is None:
            return lambda t: self._wrap(t, duration)
        return self._wrap(task, duration)

    def _wrap(self, task, duration):
        import functools
        import inspect

        emu = self
        if inspect.isgeneratorfunction(task):
            @functools.wraps(task)
            def gen_handler(*args, **kwargs):
                if os.getpid() != emu.parent:  # already in a worker: run here (spaces does the same)
                    yield from task(*args, **kwargs)
                    return
                proc, res, stop = emu._start(task, duration, args, kwargs, True)
                ended, t0 = False, emu._began()
                try:
                    while True:
                        kind, val = _get(res, proc)
                        if kind == "end":
                            ended = True
                            return
                        if kind == "error":
                            ended = True
                            raise emu._error(val)
                        yield val
                finally:
                    stop.set()  # a closed generator: the worker stops at its next item
                    proc.join(30 if ended else 5)
                    if proc.is_alive():
                        proc.kill()
                    emu._ended(t0)

            return gen_handler

        @functools.wraps(task)
        def handler(*args, **kwargs):
            if os.getpid() != emu.parent:
                return task(*args, **kwargs)
            proc, res, stop = emu._start(task, duration, args, kwargs, False)
            t0 = emu._began()
            try:
                kind, val = _get(res, proc)
                if kind == "error":
                    raise emu._error(val)
                return val
            finally:
                proc.join(30)
                emu._ended(t0)

        return handler

    def _start(self, task, duration, args, kwargs, is_gen):
        import gradio as gr

        secs = duration(*args, **kwargs) if callable(duration) else (duration or 60)
        if secs > self.limit_s:
            raise gr.Error(f"ZeroGPU illegal duration: the requested GPU duration ({secs}s) is larger than the maximum allowed")
        if self.quota_s is not None and secs > self.quota_s:
            self.refused = getattr(self, "refused", 0) + 1
            raise gr.Error(f"You have exceeded your GPU quota ({secs}s requested vs. {max(0, int(self.quota_s))}s left). "
                           "Create a free account to get more daily usage quota.")
        self.calls += 1
        self.durations.append(secs)
        res, stop = FORK.SimpleQueue(), FORK.Event()
        payload = (args, kwargs)
        import pickle

        pickle.dumps(payload)  # what ZeroGPU does first: arguments that do not pickle fail here, in the parent
        proc = FORK.Process(target=_child, args=(task, payload, res, stop, is_gen), daemon=True)
        proc.start()
        return proc, res, stop

    def _began(self) -> float:
        import time

        with self._lock:
            self.running += 1
            self.peak = max(self.peak, self.running)
        return time.monotonic()

    def _ended(self, t0: float) -> None:
        import time

        wall = time.monotonic() - t0
        with self._lock:
            self.running -= 1
            self.walls.append(wall)
            if self.quota_s is not None:
                self.quota_s -= wall

    @staticmethod
    def _error(val):
        import gradio as gr

        if isinstance(val, gr.Error):
            return val
        cls, tb = val
        sys.stderr.write(tb)
        return gr.Error(f"ZeroGPU worker error: {cls}")

    # ---- the parent's guard ----
    def install(self) -> "Emulator":
        import torch

        self._saved = {"spaces": sys.modules.get("spaces"), "spaces.config": sys.modules.get("spaces.config"),
                       "call": torch.nn.Module.__call__}
        mod = self.module()
        sys.modules["spaces"], sys.modules["spaces.config"] = mod, mod.config
        original, emu = torch.nn.Module.__call__, self

        def guarded(module, *args, **kwargs):
            if os.getpid() == emu.parent:
                emu.violations.append(type(module).__name__)
                raise RuntimeError(f"emulated ZeroGPU: {type(module).__name__} ran in the main process, where no GPU is")
            return original(module, *args, **kwargs)

        torch.nn.Module.__call__ = guarded
        return self

    def uninstall(self) -> None:
        import torch

        torch.nn.Module.__call__ = self._saved["call"]
        for name in ("spaces", "spaces.config"):
            if self._saved.get(name) is None:
                sys.modules.pop(name, None)
            else:
                sys.modules[name] = self._saved[name]


SILENCE_S = 180  # a worker silent this long is taken as hung: its threads' stacks are printed, then it is killed


def _get(res, proc):
    """The worker's next message; a worker that died without one is an aborted task, as on ZeroGPU, and one
    that hangs is reported (with its stacks on stderr) instead of hanging the test run."""
    import signal
    import time

    import gradio as gr

    end = time.monotonic() + SILENCE_S
    while not res._reader.poll(0.5):
        if not proc.is_alive() and not res._reader.poll(0.1):
            raise gr.Error("ZeroGPU worker error: GPU task aborted")
        if time.monotonic() > end:
            os.kill(proc.pid, signal.SIGUSR1)
            time.sleep(1)
            proc.kill()
            raise gr.Error(f"emulated ZeroGPU: the worker sent nothing for {SILENCE_S} s (its stacks are on stderr)")
    return res.get()


def _child(task, payload, res, stop, is_gen) -> None:
    import faulthandler
    import pickle
    import signal

    import gradio as gr

    faulthandler.register(signal.SIGUSR1, all_threads=True)
    args, kwargs = payload

    def send(kind, val):
        try:
            res.put((kind, val))
        except (pickle.PicklingError, TypeError, AttributeError) as exc:  # a result that does not pickle
            res.put(("error", (type(exc).__name__, f"result does not pickle: {exc}\n")))

    try:
        if is_gen:
            gen = task(*args, **kwargs)
            for item in gen:
                if stop.is_set():
                    gen.close()
                    break
                send("ok", item)
        else:
            send("ok", task(*args, **kwargs))
        res.put(("end", None))
    except gr.Error as exc:
        res.put(("error", exc))
    except BaseException as exc:  # reported to the parent as ZeroGPU does, then the worker ends
        res.put(("error", (type(exc).__name__, "".join(traceback.format_exception(exc)))))
