"""The app context: what every tab shares that is not a model. Created once in app.py, passed in.

The loader knows models; this holds the app state around them: the generation engine, the weights
proof, the training slot and its queue, results that are the same for every learner (computed once),
recorded trainings that can be replayed, every learner's runs (modes/runs/history.py), the classes
(modes/runs/classes.py), and test hooks.
"""

from __future__ import annotations

import logging
import threading
import time
from pathlib import Path
from typing import Hashable

from modes.runs.classes import Classes
from modes.runs.history import History
from modes.runs.jobs import TrainingSlot
from modes.runs.keys import code_version, runtime, text_hash
from modes.runs.reuse import Once, ReplayStore, ResultStore
from modes.runs.warmup import Warmup


def _durable(data_dir) -> dict:
    """{folder, store} for History: the adapters' folder and the store in `data_dir`, or nothing (memory
    only) when there is no data dir or its database cannot be opened (the app then runs without one)."""
    if data_dir is None:
        return {}
    from modes.runs.store import Store, database_url

    try:
        store = Store(database_url(Path(data_dir)))
    except Exception:  # a broken URL, an unreachable server, a read-only dir: serve from memory
        logging.getLogger(__name__).exception("the store could not be opened; runs are kept in memory only")
        return {}
    return {"folder": Path(data_dir) / "runs", "store": store}


class AppContext:
    def __init__(self, loader, store_dir=None, reuse: bool = True, engine: bool = True, data_dir=None, heavy=None):
        from modes.serving.gpu_worker import fork_safe
        from modes.serving.heavy import Heavy

        self.loader = loader
        self.data_dir = data_dir
        # Where heavy work runs (modes/serving/heavy.py): threads here, or each request's own ZeroGPU call.
        self.heavy = heavy if isinstance(heavy, Heavy) else Heavy(heavy)
        self.reuse = reuse  # False: every result is computed afresh (the classroom benchmark's baseline)
        self.use_engine = engine  # False: each request generates alone (the baseline)
        self.slot = TrainingSlot(self.heavy.concurrent)  # one at a time here; a few at once on ZeroGPU
        # store_dir: results and recordings also go to disk there (app.py: beside the model cache).
        self.results = ResultStore(store_dir if reuse else None)
        self.replays = ReplayStore(store_dir if reuse else None)
        # Every learner's runs, in memory (their adapters in a temp folder): a restart forgets them.
        # data_dir: every learner's runs in the durable store there (a restart keeps them); None: memory only.
        try:
            self.history = History(**_durable(data_dir))
        except Exception:  # a store that opened but cannot be read back: serve from memory rather than not at all
            logging.getLogger(__name__).exception("the store could not be read; runs are kept in memory only")
            self.history = History()
        # Classes (a join code, its learners, an experiment): rows in the same store, read back on a restart.
        try:
            self.classes = Classes(store=self.history.store, ttl_s=self.history.ttl_s)
        except Exception:  # classes that cannot be read back: serve new ones from memory rather than not at all
            logging.getLogger(__name__).exception("the classes could not be read; they are kept in memory only")
            self.classes = Classes(ttl_s=self.history.ttl_s)
        # Several processes on one database (modes/runs/liveness.py): this one beats, marks the runs of one that
        # stopped beating interrupted, and takes the stops asked for its runs elsewhere.
        if self.history.live is not None and self.history.store.shared:  # (one SQLite process has nobody to tell)
            self.history.live.start()
        store = self.history.store if self.history.store is not None and self.history.store.shared else None
        # Shared results and recordings in the database when other processes read it too, with leases on work
        # in progress (modes/runs/reuse.py); else in memory and the folder beside the model cache.
        self.results.attach(store, self.history.live)
        self.replays.attach(store, self.history.live)
        # Idle-time work (modes/runs/warmup.py), started by start_warmup once the model is ready.
        self.warmup = Warmup(self)
        self.hooks: dict = {}  # test hooks: {"fail_at_step": 2}, {"after_step": a callable given each Step}
        self._engine = None
        self._proof = None
        self._adapters: dict = {}  # adapter key -> PEFT model, a small LRU shared by every session
        self._building = Once()
        self._lock = threading.Lock()
        self.heavy.attach(self)
        fork_safe(self)

    def _after_fork(self) -> None:
        """In a forked GPU worker: fresh locks, and an engine and adapter models of its own."""
        self._lock, self._building = threading.Lock(), Once()
        self._engine, self._adapters = None, {}

    def browser_secret(self) -> str:
        """The secret a browser's owner id is encrypted with: HML_SECRET, else the database's (one for every
        replica), else the data dir's (modes/runs/place.py)."""
        from modes.runs import place

        if getattr(self, "_secret", None) is None:
            self._secret = place.browser_secret(place.data_dir(self.loader.cache_dir), self.history.store)
        return self._secret

    def storage(self) -> dict:
        """Where learners' work is kept, and whether a Space will lose it at its next restart (modes/runs/place.py);
        `warning`: what the status line and /model_status say then, in English and Korean (else None)."""
        from modes import ui
        from modes.runs import place

        store = self.history.store
        out = place.storage(self.data_dir, store.url if store is not None else None)
        out["warning"] = {lang: ui.msg("storage_ephemeral", lang) for lang in ("en", "ko")} if out["ephemeral"] else None
        return out

    def start_warmup(self, tabs) -> bool:
        """Start the tabs' idle-time work (modes/runs/warmup.py) where it can help: the model is ready,
        shared results are kept (reuse on), and heavy work runs here (in-call mode computes nothing
        outside a learner's GPU call). True when it started."""
        jobs = [(t.id, t.warm) for t in tabs if getattr(t, "warm", None) is not None]
        if not jobs or not self.reuse or self.heavy.in_call or not self.loader.ready:
            return False
        return self.warmup.start(jobs) is not None

    def base_answers(self, generate):
        """`generate` (model, tok, prefix, queries, max_new_tokens=40) -> greedy answers, where the served base
        model's answers are computed once for every caller and kept in the shared results: the same held-out
        queries are a fine-tune's "before", the reverse direction's off-task row and a sweep point (greedy decoding
        is batch-invariant, so who asked, and beside whom, does not change them). Other models pass through."""
        if not self.reuse:
            return generate

        def shared(model, tok, prefix: str, queries: list[str], max_new_tokens: int = 40) -> list[str]:
            if model is not self.loader.get()[0]:
                return generate(model, tok, prefix, queries, max_new_tokens)
            key = {"kind": "base_answers", "model": self.proof().reference, "dtype": self.loader.dtype_name,
                   "prompts": text_hash(prefix, list(queries)), "n": len(queries), "max_new": max_new_tokens,
                   "code": code_version("serving", "model"), **runtime()}
            value, _ = self.results.once(key, lambda: {"answers": generate(model, tok, prefix, queries, max_new_tokens)})
            return list(value["answers"])

        return shared

    def decoding(self) -> int:
        """Rows the engine is decoding now (0 before it exists): idle-time work waits for none."""
        eng = self._engine
        return eng.active_rows() if eng is not None else 0

    @property
    def deterministic(self) -> bool:
        """Replays need identical reruns: tests/test_reuse.py shows two CPU runs give identical figures.
        On a GPU that is not shown (atomic adds reorder sums), so nothing is replayed there."""
        return self.loader.resolved_device() == "cpu"

    @property
    def engine(self):
        """The one generation engine (made on first use: building the page must not wait for torch)."""
        if self.heavy.in_call:  # each request's generation runs in its own GPU call (modes/serving/incall.py)
            from modes.serving.incall import InCallEngine

            return InCallEngine(self.heavy)
        with self._lock:
            if self._engine is None:
                from modes.serving.engine import Engine

                self._engine = Engine(max_rows=16 if self.use_engine else 1)
            return self._engine

    def proof(self):
        """The coalesced weights proof of the loaded model (its reference hash is taken once, here)."""
        model, _ = self.loader.get()
        with self._lock:
            if self._proof is None or self._proof.model is not model:
                from modes.serving.proof import WeightsProof

                self._proof = WeightsProof(model)
            return self._proof

    def proof_before(self) -> str:
        """The hash a request compares against: taken once at load (the baseline hashes every request)."""
        if not self.reuse:
            from modes.metrics import weights_hash

            return weights_hash(self.loader.get()[0])
        return self.proof().reference

    def proof_after(self, before: str, finished_at: float) -> dict:
        """The proof after a request: one coalesced hash for everything that finished before it began."""
        if not self.reuse:
            from modes.metrics import weights_hash

            t0 = time.perf_counter()
            after = weights_hash(self.loader.get()[0])
            return {"before": before, "after": after, "unchanged": after == before, "shared_with": 1,
                    "wait_s": round(time.perf_counter() - t0, 3)}
        p = self.proof().after(finished_at)
        return {"before": p.before, "after": p.after, "unchanged": p.unchanged and p.before == before,
                "shared_with": p.shared_with, "wait_s": p.seconds}

    def adapter_model(self, adapter) -> tuple[Hashable, object]:
        """(lane key, PEFT model) for an adapter: built once and shared by every request that uses it."""
        from modes.model.adapters import adapter_key, serving_model

        key = ("adapter", adapter_key(adapter))
        if self.heavy.in_call:  # built in the GPU call that uses it, from the adapter's bytes
            from modes.serving.incall import AdapterRef

            return key, AdapterRef(adapter)
        with self._building(key):  # twenty learners asking at once build it once (each build copies the base)
            with self._lock:
                if key in self._adapters:
                    self._adapters[key] = self._adapters.pop(key)  # most recently used last
                    return key, self._adapters[key]
            model = serving_model(self.loader.get()[0], adapter)
            self._keep_adapter(key, model)
        return key, model

    def _keep_adapter(self, key, model) -> None:
        with self._lock:
            self._adapters[key] = model
            while len(self._adapters) > 2:  # each holds its LoRA targets' merged weights; the rest is the base's
                old = next(iter(self._adapters))
                del self._adapters[old]
                if self._engine is not None:
                    self._engine.prefixes.drop(old)
