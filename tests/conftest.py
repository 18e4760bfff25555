"""Shared fixtures: tiny random models for fast tests, one real embedded model for the few real tests."""

from __future__ import annotations

import contextlib
import os
import re
import socket
import tempfile
from dataclasses import dataclass
from pathlib import Path

import pytest
import torch

from tests.postgres import postgres_server  # noqa: F401 - the `postgres` lane's server fixture, for every test module

# The suite runs as two xdist workers on two cores (pytest.ini). With torch's default of one intra-op thread per core
# in each worker, two busy workers put four spinning OpenMP threads on two cores, and a step then took several times
# longer. One thread per worker keeps both cores busy without that. The apps a test starts as processes (restart,
# replicas, storm) get the same budget through OMP_NUM_THREADS, which torch reads when it starts: with torch's default
# there, one such app's two spinning threads beside the other worker's one made the real-model walkthrough take 524 s
# instead of 224 s. HML_TEST_TORCH_THREADS=auto keeps torch's default everywhere.
if os.environ.get("PYTEST_XDIST_WORKER") and os.environ.get("HML_TEST_TORCH_THREADS", "1") != "auto":
    torch.set_num_threads(int(os.environ.get("HML_TEST_TORCH_THREADS", "1")))
    os.environ["OMP_NUM_THREADS"] = str(torch.get_num_threads())

# Loaders made in tests keep float32 unless a test asks otherwise: tiny and stubbed models must not
# be probed and cast. The real embedded model decides for itself (dtype="auto"), as the app does.
os.environ.setdefault("HML_DTYPE", "float32")
os.environ.setdefault("HML_TRAIN_DTYPE", "float32")  # likewise a fine-tune's training copy (modes/model/training.py)
# No idle-time work in apps the tests start (modes/runs/warmup.py): its pieces would hold the training slot
# while a test times its own runs. The tests that check it turn it on.
os.environ.setdefault("HML_WARMUP", "off")
# The app's data dir (the browser-state secret, the SQLite store) in a temp folder: tests never write the user's
# own. One per test process: an xdist worker inherits the controller's, and two processes must never share one
# SQLite file (the second is refused, modes/runs/store.py).
if os.environ.get("PYTEST_XDIST_WORKER") or "HML_DATA_DIR" not in os.environ:
    os.environ["HML_DATA_DIR"] = tempfile.mkdtemp(prefix="hml-test-data-")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="session")
def tiny_tokenizer():
    """A byte-level BPE tokenizer trained on a few lines: handles English and Korean, ~300 entries."""
    from tokenizers import ByteLevelBPETokenizer
    from transformers import PreTrainedTokenizerFast

    bpe = ByteLevelBPETokenizer()
    lines = [
        "English: Where is the station?\nKorean: 역은 어디에 있어요?",
        "English: I would like a cup of coffee, please.\nKorean: 커피 한 잔 주세요.",
        "English: The weather is nice today.\nKorean: 오늘 날씨가 좋네요.",
        "Now, fair Hippolyta, our nuptial hour draws on apace.",
    ] * 4
    bpe.train_from_iterator(lines, vocab_size=400, min_frequency=2, special_tokens=["<pad>", "<eos>", "<bos>"])
    return PreTrainedTokenizerFast(tokenizer_object=bpe, pad_token="<pad>", eos_token="<eos>", bos_token="<bos>")


def make_tiny_model(vocab_size: int, seed: int = 0, sliding_window: int = 512):
    from transformers import Gemma3ForCausalLM, Gemma3TextConfig

    torch.manual_seed(seed)
    cfg = Gemma3TextConfig(
        vocab_size=vocab_size, hidden_size=32, intermediate_size=64, num_hidden_layers=2,
        num_attention_heads=2, num_key_value_heads=1, head_dim=16, query_pre_attn_scalar=16,
        max_position_embeddings=512, sliding_window=sliding_window, layer_types=["sliding_attention", "full_attention"],
        pad_token_id=0, eos_token_id=1, bos_token_id=2,
    )
    return Gemma3ForCausalLM(cfg).eval()


@pytest.fixture()
def tiny_loader(tiny_tokenizer):
    """A ModelLoader around a fresh tiny random Gemma 3 (same family, ~40k parameters)."""
    from modes.model.loader import ModelLoader

    return ModelLoader.from_model(make_tiny_model(len(tiny_tokenizer)), tiny_tokenizer, name="tiny random gemma3")


@pytest.fixture(scope="session")
def real_results(tmp_path_factory):
    """One shared-results folder for the apps the real-model tests serve (what app.py keeps beside its model cache):
    a result the same for every learner is computed once in this test process, as it is once per app."""
    return tmp_path_factory.mktemp("real-results")


@pytest.fixture(scope="session")
def real_loader():
    """The real embedded model, converted once into HOW_MODELS_LEARN_CACHE (or the user cache) and shared."""
    from modes.model.loader import ModelLoader

    loader = ModelLoader(dtype="auto", train_dtype="auto")
    loader.get()
    return loader


# A fixed piece of CPU work (Python and a small matmul) took 0.03 s on the 2-core Intel Xeon the waits were set on,
# idle. Grace periods a test gives the app (a reload before a page counts as gone) are scaled by how much longer it
# takes now, so a slower CPU, or both cores busy, gets longer ones instead of a failure.
REFERENCE_WORK_S = 0.03
_slowness: dict = {}


def slowness() -> float:
    """How many times slower than the reference machine this one is now (at least 1; HML_TEST_SLOWNESS overrides).
    The median of three runs of the fixed work, measured again at most every 30 s (load comes and goes)."""
    import statistics
    import time

    if os.environ.get("HML_TEST_SLOWNESS"):
        return max(1.0, float(os.environ["HML_TEST_SLOWNESS"]))
    if time.monotonic() - _slowness.get("at", -1e9) > 30:
        def work() -> float:
            t = time.perf_counter()
            sum(i * i for i in range(200_000))
            a = torch.randn(256, 256)
            for _ in range(40):
                a @ a
            return time.perf_counter() - t

        _slowness.update(at=time.monotonic(), factor=max(1.0, statistics.median(work() for _ in range(3)) / REFERENCE_WORK_S))
    return _slowness["factor"]


def scaled(seconds: float) -> float:
    """A grace period or deadline set on the reference machine, stretched by this machine's slowness now."""
    return seconds * slowness()


def scaled_ms(seconds: float) -> int:
    """scaled(), in the milliseconds Playwright's waits take."""
    return int(scaled(seconds) * 1000)


def wait_until(cond, timeout: float, why: str) -> None:
    """Poll a state until it holds: generous on a busy machine (the cap is scaled by its slowness), and it fails with
    the reason."""
    import time

    end = time.monotonic() + scaled(timeout)
    while not cond():
        assert time.monotonic() < end, why
        time.sleep(0.05)


@dataclass
class Served:
    """A launched app: its page, address, loader and context; `client()` is a fresh gradio_client."""

    demo: object
    url: str
    loader: object

    @property
    def ctx(self):
        return self.demo.ctx

    @property
    def engine(self):
        return self.demo.ctx.engine

    def client(self, **kw):
        from gradio_client import Client

        return Client(self.url, verbose=False, **kw)

    # (url, loader) unpacking, as the older fixtures handed them out
    def __iter__(self):
        return iter((self.url, self.loader, self.ctx))


# HML_TEST_HEAVY=in-call: every served app runs its heavy work in-call, under the ZeroGPU emulator
# (tests/zerogpu.py) for as long as it is served; tests that need threads mode say so (`threads_only`).
IN_CALL_LANE = os.environ.get("HML_TEST_HEAVY", "") == "in-call"


def pytest_configure(config):
    config.addinivalue_line("markers", "threads_only: needs the threads mode (batching across learners, reattaching)")


def pytest_sessionstart(session):
    """The README's run converts the real model before the workers start, once, for all of them.

    A clean clone has no converted model: the worker that draws the real-model group would convert it (about 35 s of
    CPU) inside its first real test. The controller starts the conversion in a process of its own while the workers
    start and collect, into the cache they share (HOW_MODELS_LEARN_CACHE); a worker that needs it sooner waits on the
    cache's conversion lock (modes/model/embedded.py) and then loads what it finds. Only for the whole suite (no paths
    given) and when the real tests are not deselected: a run of one tiny-model file should not pay for it."""
    import subprocess
    import sys

    config = session.config
    if os.environ.get("PYTEST_XDIST_WORKER") or config.args_source != pytest.Config.ArgsSource.TESTPATHS:
        return
    if re.search(r"not\s+real\b", config.getoption("markexpr", "") or ""):
        return
    from modes.model.embedded import embedded_cache_path
    from modes.model.loader import default_cache_dir

    cache = default_cache_dir()
    if embedded_cache_path(cache) is not None:
        return
    code = "import sys, pathlib; from modes.model.embedded import convert_embedded; convert_embedded(pathlib.Path(sys.argv[1]))"
    log = Path(tempfile.mkdtemp(prefix="hml-convert-")) / "log"
    with log.open("w") as out:  # the process keeps its own copy of the handle
        config._hml_convert = (subprocess.Popen([sys.executable, "-c", code, str(cache)], cwd=Path(__file__).parent.parent,
                                                stdout=out, stderr=subprocess.STDOUT), log)


def pytest_sessionfinish(session):
    # A short session may end before the conversion does: wait for it (a killed one leaves a half-written copy).
    started = getattr(session.config, "_hml_convert", None)
    if started is not None:
        proc, log = started
        if proc.wait() != 0:
            print(f"\nconverting the real model before the workers failed (the workers converted it or said why):\n"
                  f"{log.read_text()[-2000:]}")


def pytest_itemcollected(item):
    # The real-model tests run in one xdist group (pytest.ini: --dist loadgroup), so one worker loads the real model
    # once, and their served apps share one results folder (`real_results`): the base model's held-out answers that
    # the walkthrough's fine-tune decodes are the ones the quality test's /icl_sweep asks for, decoded once (as the
    # app keeps them beside its model cache). The group is the largest scope, so xdist hands it out first.
    # (Marked as each item is collected: xdist reads the marks into the node ids in its collection_modifyitems.)
    if "real" in item.keywords:
        item.add_marker(pytest.mark.xdist_group("real"))


def pytest_collection_modifyitems(config, items):
    if IN_CALL_LANE:
        skip = pytest.mark.skip(reason="threads mode only: in-call mode gives this up by design (README, GPU Spaces)")
        for item in items:
            if "threads_only" in item.keywords:
                item.add_marker(skip)


@contextlib.contextmanager
def served_app(loader=None, *, tokenizer=None, tabs=None, grace_s: float | None = None, heavy: str | None = None,
               results_dir=None, **launch_kw):
    """The one way a test serves the app: build the page around `loader` (a fresh tiny random Gemma 3 on
    `tokenizer` when None), launch it on a free port, yield a Served, close it after. `heavy`: where heavy
    work runs (modes/serving/heavy.py); None: the process's own choice (in-call in the emulator's lane).
    `results_dir`: the shared results and recordings on disk there (as app.py keeps them); None: memory only."""
    import app
    from modes import tabs as registry
    from modes.context import AppContext
    from modes.model.loader import ModelLoader

    if loader is None:
        loader = ModelLoader.from_model(make_tiny_model(len(tokenizer)), tokenizer, name="tiny random gemma3")
    emulator = None
    if IN_CALL_LANE and heavy is None:
        from tests.zerogpu import Emulator

        emulator = Emulator().install()  # the app below detects ZeroGPU: in-call mode
    ctx = AppContext(loader, store_dir=results_dir, heavy=heavy)
    demo = app.build_app(loader, ctx, tabs=registry.load(tabs) if tabs else None)
    if grace_s is not None:
        demo.ctx.history.grace_s = grace_s  # a closed page's training stops after the grace period
    _, url, _ = app.launch(demo, prevent_thread_lock=True, server_port=free_port(), quiet=True, **launch_kw)
    try:
        yield Served(demo, url, loader)
        if emulator is not None:
            assert emulator.violations == [], f"models ran in the parent in in-call mode: {emulator.violations}"
    finally:
        demo.close()
        if emulator is not None:
            emulator.uninstall()


@pytest.fixture()
def zerogpu():
    """The ZeroGPU emulator (tests/zerogpu.py) installed for one test: apps built meanwhile run in-call."""
    from tests.zerogpu import Emulator

    emu = Emulator().install()
    try:
        yield emu
    finally:
        emu.uninstall()


@pytest.fixture(scope="module")
def served(tiny_tokenizer):
    """One app on a tiny random model, shared by a test module."""
    with served_app(tokenizer=tiny_tokenizer) as s:
        yield s
