"""Every named endpoint, called through gradio_client against the launched app (tiny model)."""

from __future__ import annotations

import pytest


@pytest.fixture(scope="module")
def client(served):
    return served.client()


def test_api_lists_all_endpoints(client):
    names = set(client.view_api(print_info=False, return_format="dict")["named_endpoints"])
    assert {"/token_loss", "/pretrain", "/finetune", "/translate", "/icl_sweep", "/model_status"} <= names


def test_each_endpoint_answers(client):
    s = client.predict(text="Where is the station?", api_name="/token_loss")[-1]
    assert s["tokens"] and s["mean_loss"] > 0 and s["perplexity"] > 1 and s["bits_per_char"] > 0

    s = client.predict(corpus="shakespeare", size="tiny", steps=10, seed=1, api_name="/pretrain")[-1]
    assert s["steps"] == 10 and s["params_updated_fraction"] == 1.0 and len(s["samples"]) >= 1

    s = client.predict(steps=2, r=2, learning_rate=1e-3, seed=0, api_name="/finetune")[-1]
    assert s["steps"] == 2 and s["base_weights_unchanged"] is True and 0 < s["trainable_fraction"] < 0.5
    assert set(s) >= {"train_loss_first", "train_loss_last", "eval_loss_before", "eval_loss_after", "chrf_before",
                      "chrf_after", "trainable_params", "seconds"}

    s = client.predict(text="Where is the station?", direction="en-ko", k=2, selection="first", seed=0,
                       use_adapter=False, max_new_tokens=8, api_name="/translate")[-1]
    assert s["weights_unchanged"] is True and s["prompt"].endswith("Korean:") and s["prompt_tokens"] > 5
    assert s["prompt"].count("English:") == 3

    s = client.predict(direction="en-ko", ks="0,1", n=3, api_name="/icl_sweep")[-1]
    assert set(s["chrf"]) == {"0", "1"} and s["seconds"] > 0

    s = client.predict(api_name="/model_status")
    assert s["state"] == "ready"
