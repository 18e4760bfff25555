"""Shared fixtures: tiny random models for fast tests, one real embedded model for the few real tests."""

from __future__ import annotations

import contextlib
import os
import socket
import tempfile
from dataclasses import dataclass

import pytest
import torch

# Loaders made in tests keep float32 unless a test asks otherwise: tiny and stubbed models must not
# be probed and cast. The real embedded model decides for itself (dtype="auto"), as the app does.
os.environ.setdefault("HML_DTYPE", "float32")
# The app's data dir (the browser-state secret) in a temp folder: tests never write the user's own.
os.environ.setdefault("HML_DATA_DIR", tempfile.mkdtemp(prefix="hml-test-data-"))


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
def real_loader():
    """The real embedded model, converted once into HOW_MODELS_LEARN_CACHE (or the user cache) and shared."""
    from modes.model.loader import ModelLoader

    loader = ModelLoader(dtype="auto")
    loader.get()
    return loader


def wait_until(cond, timeout: float, why: str) -> None:
    """Poll a state until it holds: generous on a busy machine, and it fails with the reason."""
    import time

    end = time.monotonic() + timeout
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


@contextlib.contextmanager
def served_app(loader=None, *, tokenizer=None, tabs=None, grace_s: float | None = None, **launch_kw):
    """The one way a test serves the app: build the page around `loader` (a fresh tiny random Gemma 3 on
    `tokenizer` when None), launch it on a free port, yield a Served, close it after."""
    import app
    from modes import tabs as registry
    from modes.model.loader import ModelLoader

    if loader is None:
        loader = ModelLoader.from_model(make_tiny_model(len(tokenizer)), tokenizer, name="tiny random gemma3")
    demo = app.build_app(loader, tabs=registry.load(tabs) if tabs else None)
    if grace_s is not None:
        demo.ctx.history.grace_s = grace_s  # a closed page's training stops after the grace period
    _, url, _ = app.launch(demo, prevent_thread_lock=True, server_port=free_port(), quiet=True, **launch_kw)
    try:
        yield Served(demo, url, loader)
    finally:
        demo.close()


@pytest.fixture(scope="module")
def served(tiny_tokenizer):
    """One app on a tiny random model, shared by a test module."""
    with served_app(tokenizer=tiny_tokenizer) as s:
        yield s
