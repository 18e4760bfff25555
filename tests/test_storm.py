"""The start-up storm, three times in a row: start `python app.py`, and the moment the page answers,
fire every endpoint at once from separate clients. None may fail (the loader owns the heavy imports).

A fresh process each time: the import race only exists while the libraries are first imported.
The model is a tiny random Gemma 3 saved to a local directory (the `--model DIR` path).
"""

from __future__ import annotations

import pytest

from bench.storm import run_storm, save_tiny_model


@pytest.fixture(scope="module")
def tiny_dir(tmp_path_factory):
    d = tmp_path_factory.mktemp("storm")
    adapter = save_tiny_model(d / "model")
    return d, str(d / "model"), adapter


@pytest.mark.parametrize("attempt", [1, 2, 3])
def test_startup_storm(tiny_dir, attempt):
    d, model, adapter = tiny_dir
    out = run_storm(model, str(d / "cache"), adapter, str(d))
    failed = {e: r["error"] for e, r in out["results"].items() if not r["ok"]}
    assert len(out["results"]) == 7
    assert not failed, f"{failed}\n--- server log ---\n{out['log'][-4000:]}"
    assert "Traceback" not in out["log"], out["log"][-4000:]
