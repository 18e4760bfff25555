"""The generation engine: batched rows give exactly the unbatched greedy output, rows join and leave
at step boundaries, a cancelled or failing row leaves without disturbing the others."""

from __future__ import annotations

import threading
import time

import pytest
import torch

from modes.serving.engine import Engine, EngineError, Request
from tests.conftest import make_tiny_model, scaled

PREFIXES = ["Translate English to Korean.\n", "English: hello\nKorean: 안녕\n", "A: one two three four five six\nB: seven\n", ""]
QUERIES = ["English: where is it\nKorean:", "hi", "English: a much longer sentence with many words in it\nKorean:", "x y"]


def reference(model, tok, prefix: str, query: str, max_new: int) -> str:
    """Unbatched greedy: one row, HF generate, the same stop rule."""
    head = tok(prefix, add_special_tokens=True)["input_ids"] or [tok.bos_token_id]  # as the engine's prefill
    ids = head + tok(query, add_special_tokens=False)["input_ids"]
    x = torch.tensor([ids])
    stop = [tok("\n", add_special_tokens=False)["input_ids"][-1], tok.eos_token_id]
    with torch.no_grad():
        out = model.generate(input_ids=x, attention_mask=torch.ones_like(x), max_new_tokens=max_new, do_sample=False,
                             eos_token_id=stop, pad_token_id=tok.pad_token_id)
    return tok.decode(out[0, x.shape[1]:], skip_special_tokens=True).split("\n")[0].strip()


def run_all(engine, model, tok, pairs, max_new, lane="base", session=None):
    reqs = [engine.submit(Request(model, tok, lane, p, q, max_new, session=session or f"s{i}", stream=False))
            for i, (p, q) in enumerate(pairs)]
    outs = []
    for r in reqs:
        kind, val = r.events.get(timeout=60)
        assert kind == "done", val
        outs.append(val)
    return outs


@pytest.mark.parametrize("window", [512, 12])  # 12: prompts and answers run past the sliding window
def test_batched_greedy_equals_unbatched(tiny_tokenizer, window):
    model = make_tiny_model(len(tiny_tokenizer), seed=3, sliding_window=window)
    pairs = [(p, q) for p in PREFIXES for q in QUERIES]
    engine = Engine(max_rows=8)
    got = run_all(engine, model, tiny_tokenizer, pairs, max_new=24)
    want = [reference(model, tiny_tokenizer, p, q, 24) for p, q in pairs]
    assert got == want
    assert engine.stats["max_batch"] > 1  # they really shared decode steps
    assert any(got)  # a random model writes something; an all-empty result would prove nothing


def test_rows_join_mid_generation_and_stay_exact(tiny_tokenizer):
    model = make_tiny_model(len(tiny_tokenizer), seed=4, sliding_window=12)
    engine = Engine()
    tok = tiny_tokenizer
    first = engine.submit(Request(model, tok, "base", PREFIXES[2], QUERIES[2], 40, session="a"))
    kind, _ = first.events.get(timeout=30)  # it is decoding now
    assert kind == "text"
    late = [engine.submit(Request(model, tok, "base", PREFIXES[i], QUERIES[i], 20, session=f"b{i}")) for i in range(3)]
    texts = []
    for r in [first, *late]:
        kind, val = r.events.get(timeout=30)
        while kind == "text":
            kind, val = r.events.get(timeout=30)
        texts.append(val)
    assert texts[0] == reference(model, tok, PREFIXES[2], QUERIES[2], 40)
    assert texts[1:] == [reference(model, tok, PREFIXES[i], QUERIES[i], 20) for i in range(3)]
    assert engine.stats["max_batch"] >= 2


def test_sampling_keeps_its_own_seed_in_any_batch(tiny_tokenizer):
    model = make_tiny_model(len(tiny_tokenizer), seed=5)
    tok = tiny_tokenizer

    def sample(seed, crowd):
        engine = Engine()
        others = [engine.submit(Request(model, tok, "base", PREFIXES[1], QUERIES[i % 4], 16, session=f"o{i}")) for i in range(crowd)]
        r = engine.submit(Request(model, tok, "base", PREFIXES[0], QUERIES[0], 16, temperature=1.0, top_p=0.9, seed=seed, session="me"))
        out = [e.text for e in _drain(engine, r)][-1]
        for o in others:
            o.cancel()
        return out

    assert sample(7, 0) == sample(7, 3)  # alone or among three other rows: the same text
    assert len({sample(s, 0) for s in range(4)}) > 1  # and the seed matters


def _drain(engine, req):
    from modes.serving.engine import StreamEvent

    while True:
        kind, val = req.events.get(timeout=30)
        if kind == "error":
            raise val
        yield StreamEvent(val, req.ttft, kind == "done")
        if kind == "done":
            return


def test_cancelled_row_leaves_at_next_step(tiny_tokenizer):
    model = make_tiny_model(len(tiny_tokenizer), seed=6)
    engine = Engine()
    stream = engine.stream(model=model, tok=tiny_tokenizer, lane="base", prefix=PREFIXES[0], query=QUERIES[0], max_new=200)
    next(stream)
    other = engine.submit(Request(model, tiny_tokenizer, "base", PREFIXES[1], QUERIES[1], 30, session="other", stream=False))
    stream.close()  # the caller went away (a closed tab): its row must stop costing decode steps
    kind, val = other.events.get(timeout=30)
    assert kind == "done" and val == reference(model, tiny_tokenizer, PREFIXES[1], QUERIES[1], 30)
    deadline = time.time() + scaled(5)
    while engine.active_rows() and time.time() < deadline:
        time.sleep(0.01)
    assert engine.active_rows() == 0
    assert engine.stats["rows_decoded"] < 200  # the cancelled row did not decode its 200 tokens


@pytest.mark.parametrize("cap, served_within", [(None, 8), ("bulk", 16)], ids=["a flooding learner", "a sweep"])
def test_forty_waiting_rows_cannot_starve_a_learner(tiny_tokenizer, cap, served_within):
    """40 rows waiting from one learner (capped at 4 rows each round) or from a sweep (bulk rows,
    which go after a learner's own request): the other learner is served within two rounds."""
    from modes.serving.engine import BULK_ROWS, PER_SESSION

    model = make_tiny_model(len(tiny_tokenizer), seed=7)
    engine = Engine(max_rows=8)
    rows = [engine.submit(Request(model, tiny_tokenizer, "base", PREFIXES[0], QUERIES[0], 30, session="many",
                                  cap=BULK_ROWS if cap == "bulk" else PER_SESSION, stream=False)) for _ in range(40)]
    mine = engine.submit(Request(model, tiny_tokenizer, "base", PREFIXES[1], QUERIES[1], 30, session="learner", stream=False))
    kind, _ = mine.events.get(timeout=30)
    assert kind == "done"
    finished = sum(not r.events.empty() for r in rows)
    assert finished <= served_within, finished  # not behind all 40
    for r in rows:
        r.cancel()


def test_engine_fault_reaches_only_its_callers(tiny_tokenizer):
    tok = tiny_tokenizer
    model = make_tiny_model(len(tok), seed=8)
    other_model = make_tiny_model(len(tok), seed=9)
    engine = Engine()
    boom = threading.Event()

    def fault(phase, lane, reqs):
        if lane == "bad" and phase == "decode" and not boom.is_set():
            boom.set()
            raise RuntimeError("injected fault")

    engine.fault = fault
    good = engine.submit(Request(model, tok, "base", PREFIXES[0], QUERIES[0], 20, session="g", stream=False))
    bad = engine.submit(Request(other_model, tok, "bad", PREFIXES[0], QUERIES[0], 20, session="b", stream=False))
    kind, val = bad.events.get(timeout=30)
    assert kind == "error" and isinstance(val, EngineError) and "injected fault" in str(val)
    kind, val = good.events.get(timeout=30)
    assert kind == "done" and val == reference(model, tok, PREFIXES[0], QUERIES[0], 20)
    # The failed lane restarts: the same model is served again.
    assert run_all(engine, other_model, tok, [(PREFIXES[1], QUERIES[1])], 20, lane="bad") == \
        [reference(other_model, tok, PREFIXES[1], QUERIES[1], 20)]
    assert engine.stats["lane_failures"] == 1


BAD = "English: the row that breaks\nKorean:"


def _eight(model, tok, engine, bad: dict | None):
    """Seven good rows (four greedy, three sampled with their own seeds) and, if given, one bad row, all
    admitted in one round: (the good rows' results, the bad row's result or None)."""
    good = [Request(model, tok, "base", PREFIXES[i % 3], QUERIES[i % 4], 16, session=f"s{i}", stream=False,
                    temperature=0.0 if i < 4 else 0.9, top_p=0.9, seed=i) for i in range(7)]
    extra = [Request(model, tok, "base", PREFIXES[0], BAD, 16, session="bad", stream=False, **bad)] if bad is not None else []
    with engine._cond:  # the scheduler admits all of them in one round
        for r in good[:3] + extra + good[3:]:
            engine.submit(r)
    results = [r.events.get(timeout=60) for r in good]
    return results, extra[0].events.get(timeout=60) if extra else None


@pytest.mark.parametrize("how", ["token choice", "nan temperature", "prefill"])
def test_a_failing_row_fails_alone_and_the_others_get_the_same_tokens(tiny_tokenizer, monkeypatch, how):
    """One bad row in a batch of 8: it gets its own error; the 7 others get exactly what they get without
    it (greedy rows equal unbatched greedy; sampled rows, their seeded draws)."""
    from modes.serving import rows as rows_mod

    tok = tiny_tokenizer
    model = make_tiny_model(len(tok), seed=11)
    want, _ = _eight(model, tok, Engine(max_rows=8), None)
    assert all(kind == "done" for kind, _ in want) and any(text for _, text in want)
    for i in range(4):
        assert want[i][1] == reference(model, tok, PREFIXES[i % 3], QUERIES[i % 4], 16)

    engine, bad = Engine(max_rows=8), {}
    if how == "token choice":  # fails on its third token, mid-generation, from inside the batch
        real = rows_mod._pick

        def pick(logits, rows):
            if any(r.req.query == BAD and len(r.ids) >= 2 for r in rows):
                raise RuntimeError("injected row fault")
            return real(logits, rows)

        monkeypatch.setattr(rows_mod, "_pick", pick)
    elif how == "nan temperature":  # what a raw HTTP call could send if the server let it through
        bad = {"temperature": float("nan")}
    else:
        def fault(phase, lane, reqs):
            if phase == "prefill" and any(r.query == BAD for r in reqs):
                raise RuntimeError("injected row fault")

        engine.fault = fault
    got, (kind, err) = _eight(model, tok, engine, bad)
    assert kind == "error" and isinstance(err, EngineError) and "other requests were not affected" in str(err)
    assert got == want
    assert engine.stats["row_failures"] == 1 and engine.stats["lane_failures"] == 0
    assert engine.stats["max_batch"] >= 7  # they really shared decode steps
