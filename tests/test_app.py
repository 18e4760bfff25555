"""The app shell: builds, launches on a free port, answers HTTP, lists its API through gradio_client."""

from __future__ import annotations

import gc
import urllib.request

import pytest

import app
from tests.conftest import served_app


@pytest.fixture()
def launched(tiny_loader):
    with served_app(tiny_loader) as s:
        yield s.demo, s.url


def test_app_launches_and_answers(launched):
    from gradio_client import Client

    demo, url = launched
    with urllib.request.urlopen(url, timeout=10) as r:
        assert r.status == 200
    # The page shows the model status and the three tabs (checked in the served config).
    with urllib.request.urlopen(url + "config", timeout=10) as r:
        cfg = r.read().decode()
    for key in ("tab_pretrain", "tab_finetune", "tab_incontext", "i18n_translations"):
        assert key in cfg
    assert "tiny random gemma3" in cfg
    info = Client(url, verbose=False).view_api(return_format="dict", print_info=False)["named_endpoints"]
    # Every tab's endpoints are served, with the parameter names the README documents.
    assert {"/token_loss", "/pretrain", "/finetune", "/translate", "/icl_sweep", "/model_status", "/runs", "/compare",
            "/load_adapter", "/export_script"} <= set(info), sorted(info)
    params = {p["parameter_name"] for p in info["/translate"]["parameters"]}
    assert {"text", "direction", "k", "temperature", "top_p", "max_new_tokens", "pool"} <= params, params
    classes = {"/class_create": [], "/class_join": ["code", "name"], "/class_board": ["code", "teacher_key"],
               "/class_experiment": ["code", "teacher_key", "kind", "setting", "values"],
               "/class_teacher": ["code", "teacher_key", "action", "run_id"], "/class_csv": ["code", "teacher_key"],
               "/my_class": [], "/class_share": ["run_id", "shared"]}
    for name, names in classes.items():
        assert [p["parameter_name"] for p in info[name]["parameters"]] == names, (name, info[name]["parameters"])


def test_queue_is_configured(launched):
    """The queue bounds what waits (64), the default slot count is 4, translations reach the engine with no
    Gradio limit (it batches and caps rows per learner), and trainings share one slot id."""
    demo, _ = launched
    assert demo._queue is not None and demo._queue.max_size == 64
    fns = {fn.api_name: fn for fn in demo.fns.values() if fn.api_name}
    assert fns["translate"].concurrency_limit is None and fns["icl_sweep"].concurrency_limit is None
    assert fns["token_loss"].concurrency_limit == "default" and demo._queue.default_concurrency_limit == 4


def test_main_parses_model_flag(monkeypatch, tmp_path):
    monkeypatch.setenv("HML_DATA_DIR", str(tmp_path / "data"))  # its store: not the one the other tests' apps open
    seen = {}
    monkeypatch.setattr(app, "launch", lambda demo, **kw: seen.setdefault("launched", True))
    monkeypatch.setattr(app.ModelLoader, "start_background",
                        lambda self, on_done: seen.update(model=self.model_id, dtype=self.dtype_request, gc_on=gc.isenabled(), done=on_done))
    try:
        app.main(["--model", "/some/dir", "--dtype", "float32"])
        # The collector is off while the model loads, and back on once the loader calls on_done.
        assert seen.pop("gc_on") is False
        seen.pop("done")()
        assert gc.isenabled()
    finally:
        gc.unfreeze()
        gc.enable()
    assert seen == {"model": "/some/dir", "dtype": "float32", "launched": True}


def test_strings_exist_in_both_languages():
    from modes import ui

    en, ko = ui.strings("en"), ui.strings("ko")
    assert set(en) == set(ko)
    assert all(v.strip() for v in list(en.values()) + list(ko.values()))
    # Korean strings are really Korean: every card and button has Hangul in it.
    for key in ("pt_card", "ft_card", "ic_card", "ft_train_btn", "ic_translate_btn", "pt_train_btn", "sb_intro"):
        assert any("\uac00" <= ch <= "\ud7a3" for ch in ko[key]), key


def test_the_browser_secret_is_fixed_private_and_overridable(tmp_path, monkeypatch):
    """The owner id the browser keeps is encrypted with one secret per data dir (0600), or HML_SECRET:
    the same after a restart, so a reloaded page's id can still be read."""
    import stat

    from modes.runs import place

    monkeypatch.delenv("HML_SECRET", raising=False)
    monkeypatch.setenv("HML_DATA_DIR", str(tmp_path / "data"))
    d = place.data_dir(tmp_path / "cache")
    assert d == tmp_path / "data" and d.is_dir()
    first = place.browser_secret(d)
    assert len(first) == 64 and place.browser_secret(d) == first  # a "restart" reads the same one back
    assert stat.S_IMODE((d / place.SECRET_FILE).stat().st_mode) == 0o600
    assert place.browser_secret(tmp_path / "other") != first  # another data dir, another secret
    monkeypatch.setenv("HML_SECRET", "from-the-environment")
    assert place.browser_secret(d) == "from-the-environment"
    monkeypatch.delenv("HML_DATA_DIR")
    assert place.data_dir(tmp_path / "cache") in (tmp_path / "cache" / "data", place.Path("/data/hml"))
