"""Pre-training: corpus and split, the objective's arithmetic, a short scratch run, bad inputs."""

from __future__ import annotations

import contextlib
import math

import gradio as gr
import pytest

from modes.data import corpus
from modes.metrics import bits_per_char
from modes.pretrain import core as pc
from modes.pretrain import tab as pretrain
from modes.runs.events import Eval, Sample, Step


def test_shakespeare_corpus_loads_and_split_is_stable():
    a = corpus.shakespeare()
    corpus.shakespeare.cache_clear()
    b = corpus.shakespeare()
    assert a == b
    assert len(a.train) > 4_000_000 and 0.09 < len(a.val) / (len(a.train) + len(a.val)) < 0.11
    assert "ROMEO:" in a.train + a.val and "**" not in a.train and "#" not in a.train[:10_000]


def test_clean_play_turns_markdown_into_dialogue():
    md = "# Title\n\n## ACT I\n\n_Enter A_\n\n**HAMLET**  \nTo be, or not to be,  \nthat is the question.\n"
    assert corpus.clean_play(md) == "HAMLET:\nTo be, or not to be,\nthat is the question.\n"


def test_bits_per_char_hand_computed():
    # 4 tokens at ln(2) nats each over 2 characters = 4 bits / 2 chars = 2 bits/char.
    assert bits_per_char(4 * math.log(2), 2) == pytest.approx(2.0)
    with pytest.raises(ValueError, match="n_chars must be positive"):
        bits_per_char(1.0, 0)


def test_token_losses_match_bits_per_char(tiny_loader):
    model, tok = tiny_loader.get()
    r = pc.token_losses(model, tok, "Where is the station?")
    total = sum(t["loss"] for t in r.tokens)
    assert r.bits_per_char == pytest.approx(total / math.log(2) / len("Where is the station?"), rel=1e-3)
    assert r.perplexity == pytest.approx(math.exp(r.mean_loss), rel=1e-3)
    assert all(len(t["top"]) == 5 and t["top"][0][1] >= t["top"][-1][1] for t in r.tokens)


def test_thirty_tiny_steps_lower_loss_from_ln_vocab(tiny_loader):
    c = corpus.shakespeare()
    cfg = pc.PretrainConfig(size="tiny", steps=30, eval_every=10, sample_every=30)
    events = list(pc.train_scratch(tiny_loader, c, cfg))
    first, res = events[0], events[-1]
    vocab = len(pc.CharVocab(c.train + c.val))
    assert isinstance(first, Eval) and first.step == 1  # the held-out loss after the first step comes first
    assert abs(first.loss - math.log(vocab)) < 0.5  # starts near uniform guessing
    assert res.val_loss < first.loss - 0.5
    assert [type(e) for e in events[1:4]] == [Step, Step, Step] and isinstance(res, pc.PretrainResult)
    assert [e.step for e in events if isinstance(e, Sample)] == [30]
    assert res.params_updated_fraction == 1.0 and 150_000 < res.params < 260_000
    assert res.samples and res.samples[-1]["step"] == 30


def test_scratch_run_is_deterministic_for_a_seed(tiny_loader):
    c = corpus.from_text("t", "abcdefgh ijklmnop\n" * 300)
    cfg = pc.PretrainConfig(size="tiny", steps=8, eval_every=4, sample_every=8, seed=7)
    a = list(pc.train_scratch(tiny_loader, c, cfg))[-1]
    b = list(pc.train_scratch(tiny_loader, c, cfg))[-1]
    assert a.train_loss == b.train_loss and a.samples == b.samples


def test_stop_flag_ends_run_and_keeps_result(tiny_loader):
    from modes.runs.jobs import StopFlag

    flag = StopFlag()
    c = corpus.from_text("t", "hello world\n" * 500)
    cfg = pc.PretrainConfig(size="tiny", steps=1000, eval_every=50, sample_every=500)
    res = None
    for ev in pc.train_scratch(tiny_loader, c, cfg, should_stop=flag.is_set):
        if isinstance(ev, Step) and ev.step == 5:
            flag.set()
        res = ev
    assert res.stopped and res.steps == 5 and not math.isnan(res.val_loss)


@pytest.mark.parametrize(
    "text, key",
    [("", "err_text_empty"), ("   \n ", "err_text_empty"), (None, "err_text_empty"), ("x" * 2001, "err_text_too_long")],
)
def test_token_loss_rejects_bad_text(text, key):
    with pytest.raises(gr.Error) as e:
        pretrain.validate_text(text, "en")
    assert str(e.value.message) == pretrain.ui.msg(key, "en", n=len(text or ""), cap=2000)


@pytest.mark.parametrize(
    "content, fragment",
    [
        (b"", "empty"),
        (b"\x00\x01\x02binary" * 100, "binary"),
        ("caf\u00e9 ".encode("latin-1") * 1000, "UTF-8"),
        (b"short text", "at least"),
        (b"a" * (5 * 1024 * 1024 + 1), "limit"),
    ],
)
def test_bad_uploads_are_rejected(tmp_path, content, fragment):
    f = tmp_path / "up.txt"
    f.write_bytes(content)
    with pytest.raises(gr.Error, match=fragment):
        pretrain.resolve_corpus("upload", str(f), "en")


def test_upload_missing_and_hub_offline(monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    with pytest.raises(gr.Error, match="no file"):
        pretrain.resolve_corpus("upload", None, "en")
    with pytest.raises(gr.Error, match="offline"):
        pretrain.resolve_corpus("someone/some-dataset", None, "en")


def test_korean_error_messages(tmp_path):
    with pytest.raises(gr.Error, match="텍스트"):
        pretrain.validate_text("", "ko")


@pytest.mark.parametrize("steps", [0, -5, 10**9, 2.5, float("nan"), "many"])
def test_bad_steps_are_rejected(steps):
    with pytest.raises(gr.Error, match="Invalid setting: steps: "):
        pretrain.parse_config("tiny", steps, 1, "en")


def test_unknown_preset_is_rejected():
    with pytest.raises(gr.Error, match="Invalid setting: size: "):
        pretrain.parse_config("huge", 10, 1, "en")
    with pytest.raises(ValueError, match="size"):
        pc.PretrainConfig(size="huge")


def test_pretrain_api_end_to_end(tiny_loader):
    """/token_loss and /pretrain through gradio_client against the launched app (tiny model)."""
    from gradio_client import Client

    from tests.conftest import served_app

    stack = contextlib.ExitStack()
    url = stack.enter_context(served_app(tiny_loader)).url
    try:
        c = Client(url, verbose=False)
        out = c.predict(text="Where is the station?", api_name="/token_loss")
        assert set(out[-1]) >= {"tokens", "mean_loss", "perplexity", "bits_per_char"}
        out = c.predict(corpus="shakespeare", size="tiny", steps=12, seed=3, api_name="/pretrain")
        s = out[-1]
        assert s["steps"] == 12 and s["params_updated_fraction"] == 1.0 and s["pretrained_val_bpc"] > 0
        assert set(s) >= {"steps", "params", "train_loss", "val_loss", "val_bpc", "pretrained_val_bpc",
                          "tokens_per_s", "seconds", "samples", "params_updated_fraction"}
        with pytest.raises(Exception, match="steps: must be|less than minimum"):
            c.predict(corpus="shakespeare", size="tiny", steps=0, seed=3, api_name="/pretrain")
    finally:
        stack.close()


@pytest.mark.real
def test_repeated_phrase_second_copy_is_cheaper(real_loader):
    model, tok = real_loader.get()
    phrase = "The quick brown fox jumps over the lazy dog."
    r = pc.token_losses(model, tok, phrase + " " + phrase)
    n = len(tok(phrase, add_special_tokens=False)["input_ids"])
    first = [t["loss"] for t in r.tokens[:n]]
    second = [t["loss"] for t in r.tokens[-n:]]
    assert sum(second) / n < 0.5 * sum(first) / n


def test_batched_muon_matches_torch_muon():
    """The shape-batched Muon makes torch.optim.Muon's update (bf16 Newton-Schulz, so to ~1e-3 of a step)."""
    import torch

    from modes.pretrain.optim import BatchedMuon

    torch.manual_seed(0)
    shapes = [(128, 128), (32, 128), (344, 128), (128, 344), (32, 128)]
    a = [torch.nn.Parameter(torch.randn(s)) for s in shapes]
    b = [torch.nn.Parameter(p.detach().clone()) for p in a]
    oa = torch.optim.Muon(a, lr=0.01, weight_decay=0.1, adjust_lr_fn="match_rms_adamw")
    ob = BatchedMuon(b, lr=0.01, weight_decay=0.1)
    start = [p.detach().clone() for p in a]
    for _ in range(3):
        grads = [torch.randn(s) for s in shapes]
        for p, q, g in zip(a, b, grads):
            p.grad, q.grad = g.clone(), g.clone()
        oa.step()
        ob.step()
    for p, q, s in zip(a, b, start):
        moved = (p.detach() - s).abs().max()
        assert moved > 0.01  # both really stepped
        assert (p.detach() - q.detach()).abs().max() < 0.02 * moved


def test_muon_default_learns_faster_than_adamw_per_step(tiny_loader):
    """The default recipe (Muon + WSD) gets lower val loss than AdamW everywhere in the same 60 steps."""
    from modes.data import corpus as corpus_mod
    from modes.pretrain.core import PretrainConfig, PretrainResult, train_scratch

    sh = corpus_mod.shakespeare()
    data = corpus_mod.Corpus("t", sh.train[:300_000], sh.val[:30_000])

    def val(opt):
        cfg = PretrainConfig(size="tiny", steps=60, optimizer=opt, eval_every=60, sample_every=60, sample_chars=8)
        return [e for e in train_scratch(tiny_loader, data, cfg) if isinstance(e, PretrainResult)][0].val_loss

    assert val("muon") < val("adamw") - 0.05


def test_char_vocab_encodes_by_table_as_by_dict():
    """The table lookup gives each character's id, and a character outside the vocabulary (Korean, an emoji, a code
    point beyond the largest known one) reads as a space, as the per-character dict lookup it replaced did."""
    from modes.pretrain.scratch import MASK, CharVocab

    vocab = CharVocab("to be, or not to be:\nthat is the question", mask=True)
    text = "to be 안녕 😀 or \x00not" + MASK

    def by_dict(t):
        return [vocab.stoi.get(c, vocab.stoi[" "]) for c in t]

    assert vocab.encode(text).tolist() == by_dict(text) and str(vocab.encode(text).dtype) == "torch.int64"
    assert vocab.decode(vocab.encode("that is the question")) == "that is the question"
    assert vocab.encode("").tolist() == [] and CharVocab("ab").encode("zb").tolist() == [0, 1]  # no space: id 0
