"""Raw HTTP calls that bypass gradio_client's and the sliders' checks (NaN, +-inf, wrong types) are refused
on the server, by field name, before any work starts; and one such call beside eight learners'
translations leaves every one of them translated."""

from __future__ import annotations

import json
import threading
import urllib.request

import pytest

from modes.data import translation as task
from tests.conftest import scaled

NAN, INF = float("nan"), float("inf")
EMPTY_POOL = {"headers": list(task.POOL_COLUMNS), "data": []}  # no rows: the built-in pool (the API's default)


def raw_call(url: str, api: str, data: list, timeout: float = 120) -> tuple[str, str]:
    """POST /gradio_api/call/<api> with `data` as JSON (NaN and Infinity written as Python's json does),
    then read the event stream: (the last event's kind, its data)."""
    body = json.dumps({"data": data}, allow_nan=True).encode()
    req = urllib.request.Request(f"{url.rstrip('/')}/gradio_api/call/{api}", body, {"Content-Type": "application/json"})
    with urllib.request.urlopen(req, timeout=timeout) as r:
        event_id = json.loads(r.read())["event_id"]
    kind = payload = ""
    with urllib.request.urlopen(f"{url.rstrip('/')}/gradio_api/call/{api}/{event_id}", timeout=timeout) as r:
        for line in r.read().decode().splitlines():
            if line.startswith("event: "):
                kind = line[7:].strip()
            elif line.startswith("data: "):
                payload = line[6:]
    return kind, payload


def translate_args(text="Hello", direction="en-ko", k=1, selection="random", seed=0, use_adapter=False,
                   template=task.DEFAULT_TEMPLATE, temperature=0.0, top_p=1.0, max_new_tokens=4, pool=EMPTY_POOL) -> list:
    """/translate's inputs in their wired order (the learner's adapter is session state, not an input)."""
    return [text, direction, k, selection, seed, use_adapter, template, temperature, top_p, max_new_tokens, pool]


def finetune_args(steps=2, r=2, learning_rate=1e-3, seed=0, alpha=4, dropout=0.0, target="attention", batch_size=2,
                  max_length=32, direction="en-ko", task="translation", summary_lang="en") -> list:
    """/finetune's inputs in their wired order: the settings, the data source (built-in), `fresh`, the task,
    the summary language and the upload's two columns."""
    return [steps, r, learning_rate, seed, alpha, dropout, target, batch_size, max_length, direction,
            "built-in", None, "", "source", "target", False, task, summary_lang, "", ""]


def pretrain_args(steps=5, seed=1, objective="next-token", mask_rate=0.15) -> list:
    """/pretrain's inputs in their wired order: corpus, size, steps, seed, upload, `fresh`, objective, mask rate."""
    return ["shakespeare", "tiny", steps, seed, None, False, objective, mask_rate]


BAD = [
    ("translate", translate_args(temperature=NAN), "temperature"),
    ("translate", translate_args(temperature=INF), "temperature"),
    ("translate", translate_args(top_p=NAN), "top_p"),
    ("translate", translate_args(top_p=-INF), "top_p"),
    ("translate", translate_args(k=NAN), "k"),
    ("translate", translate_args(k="3"), "k"),
    ("translate", translate_args(max_new_tokens=INF), "max_new_tokens"),
    ("translate", translate_args(seed=NAN), "seed"),
    ("translate", translate_args(seed=2.5), "seed"),
    ("translate", translate_args(use_adapter="yes"), "use_adapter"),
    ("icl_sweep", ["en-ko", "0,1", 1, NAN], "seed"),
    ("pretrain", pretrain_args(steps=NAN), "steps"),
    ("pretrain", pretrain_args(seed=INF), "seed"),
    ("pretrain", pretrain_args(seed=1.5), "seed"),
    ("pretrain", pretrain_args(objective="masked", mask_rate=0), "mask_rate"),  # nothing hidden: nothing to learn
    ("pretrain", pretrain_args(objective="masked", mask_rate=1), "mask_rate"),  # everything hidden: no context
    ("pretrain", pretrain_args(mask_rate=NAN), "mask_rate"),
    ("pretrain", pretrain_args(objective="bert"), "objective"),
    ("finetune", finetune_args(learning_rate=NAN), "learning_rate"),
    ("finetune", finetune_args(dropout=INF), "dropout"),
    ("finetune", finetune_args(r="4"), "r"),
    ("finetune", finetune_args(steps=-INF), "steps"),
    ("finetune", finetune_args(task="summarise"), "task"),
    ("finetune", finetune_args(task="dialogue-summary", summary_lang="fr"), "summary_lang"),
]


@pytest.mark.parametrize("api, data, field", BAD, ids=[f"{a}-{f}-{i}" for i, (a, _, f) in enumerate(BAD)])
def test_a_raw_bad_setting_is_refused_by_field_name(served, api, data, field):
    url = served.url
    kind, payload = raw_call(url, api, data)
    assert kind == "error", (kind, payload)
    assert f"Invalid setting: {field}: " in payload, payload


SHORT = [("pretrain", ["shakespeare", "tiny", NAN], 8, "corpus, size, steps, seed"),
         ("translate", [{"a": 1}], 11, "text, direction, k, selection, seed, use_adapter"),
         ("finetune", [INF], 20, "steps, r, learning_rate, seed")]


@pytest.mark.parametrize("api, data, n, names", SHORT, ids=[a for a, *_ in SHORT])
def test_a_raw_call_with_too_few_values_is_told_what_the_endpoint_takes(served, api, data, n, names):
    """Gradio's own check hides its message (`{"error": null}`): the caller is told the count and the order instead,
    and the app still answers the next call."""
    kind, payload = raw_call(served.url, api, data)
    assert kind == "error", (kind, payload)
    said = json.loads(payload)["error"]
    assert said.startswith(f"/{api} takes {n} values, in this order: {names}"), said
    assert f"This call sent {len(data)}." in said, said
    assert raw_call(served.url, "translate", translate_args())[0] == "complete"


def test_a_nan_request_beside_eight_learners_fails_alone(served):
    """The issue's storm: a raw NaN temperature sent while 8 learners translate. It is refused by name,
    and all 8 get their translation, in every one of three trials."""
    from gradio_client import Client

    url = served.url
    texts = ["Where is the station?", "I like coffee.", "The weather is nice today.", "Thank you very much.",
             "역은 어디에 있어요?", "커피를 좋아해요.", "오늘 날씨가 좋네요.", "감사합니다."]
    clients = [Client(url, verbose=False) for _ in texts]
    for _trial in range(3):
        jobs = [c.submit(text=t, direction="en-ko" if i < 4 else "ko-en", k=2, max_new_tokens=6, api_name="/translate")
                for i, (c, t) in enumerate(zip(clients, texts))]
        bad: dict = {}
        t = threading.Thread(target=lambda: bad.update(res=raw_call(url, "translate", translate_args(temperature=NAN))))
        t.start()
        results = [j.result(timeout=scaled(120))[-1] for j in jobs]
        t.join(120)
        assert bad["res"][0] == "error" and "temperature" in bad["res"][1], bad
        assert all(r["weights_unchanged"] and "translation" in r for r in results)
        assert [r["direction"] for r in results] == ["en-ko"] * 4 + ["ko-en"] * 4
    if not served.ctx.heavy.in_call:  # in-call mode has no shared engine: each request's is its GPU call's own
        engine = served.engine
        assert engine.stats["lane_failures"] == 0 and engine.stats["row_failures"] == 0  # refused before the engine
