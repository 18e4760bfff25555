"""The house rules a newcomer relies on: the page is built from the tab registry (a new tab is one
module and one registry line), tab modules never import each other, and the loader keeps no app state."""

from __future__ import annotations

import ast
import sys
import textwrap
from pathlib import Path

import pytest

import app
from modes import tabs as registry
from tests.conftest import free_port

ROOT = Path(__file__).resolve().parent.parent

DUMMY = '''
"""A fourth tab for the registry test: one button that records a run for the scoreboard."""
import gradio as gr

from modes import ui
from modes.tabs import Page, Tab


def count(ctx, text: str, session=None) -> dict:
    """How many words `text` has (recorded as one of the learner's runs)."""
    summary = {"words": len(text.split())}
    run = ctx.history.new_run(ctx.history.owner_of(session), TAB.id, {"text": text})
    ctx.history.update(run, status="done", summary=summary)
    return summary


def score_row(run, lang):
    return "| word counting | nothing learned |" if not run else f"| word counting | {run['words']} words |"


def build(page: Page) -> None:
    text = gr.Textbox(value="one two three", elem_id="dummy-text")
    out = gr.JSON()
    gr.Button("Count").click(ui.endpoint(count, page.ctx), [text, page.session], out, api_name="count_words")


TAB = Tab(id="wordcount", title="app_title", build=build, score_row=score_row, best=lambda s: s["words"])
'''


@pytest.fixture()
def dummy_module(tmp_path, monkeypatch):
    (tmp_path / "dummy_tab.py").write_text(textwrap.dedent(DUMMY), encoding="utf-8")
    monkeypatch.syspath_prepend(str(tmp_path))
    yield "dummy_tab"
    sys.modules.pop("dummy_tab", None)


def test_a_fourth_tab_is_one_module_and_one_registry_line(tiny_loader, dummy_module):
    from gradio_client import Client

    names = registry.TABS[:-1] + (dummy_module,) + registry.TABS[-1:]  # the one line: before the scoreboard
    demo = app.build_app(tiny_loader, tabs=registry.load(names))
    ids = [c["props"].get("id") for c in demo.config["components"] if c["type"] == "tabitem"]
    assert ids == ["pretrain", "finetune", "incontext", "wordcount", "scoreboard"]
    _, url, _ = app.launch(demo, prevent_thread_lock=True, server_port=free_port(), quiet=True)
    try:
        client = Client(url, verbose=False)
        assert "/count_words" in client.view_api(return_format="dict", print_info=False)["named_endpoints"]
        assert client.predict("a b c d", api_name="/count_words") == {"words": 4}
        assert client.predict("a b", api_name="/count_words") == {"words": 2}
        # The new tab's runs are the learner's runs, and the board shows its best one in its own row.
        assert [r["kind"] for r in client.predict(api_name="/runs")] == ["wordcount", "wordcount"]
        from modes import scoreboard

        owner = next(iter(demo.ctx.history._owners))
        board = scoreboard.board(demo.ctx, owner, registry.load(names), "en")
        assert "| word counting | 4 words |" in board
        assert "| word counting | nothing learned |" in scoreboard.render({}, registry.load(names))
    finally:
        demo.close()


def _imports(path: Path) -> set[str]:
    out = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            out |= {a.name for a in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module:
            out.add(node.module)
            out |= {f"{node.module}.{a.name}" for a in node.names}
    return out


@pytest.mark.parametrize("name", registry.TABS)
def test_no_tab_module_imports_another_tab(name):
    own = name.rsplit(".", 1)[1]
    others = {t for t in registry.TABS if t != name}
    # A tab's own compute and config (modes/<tab>_core.py, _config.py) are its own; another tab's are not.
    others |= {f"{t}_{part}" for t in others for part in ("core", "config", "offtask")}
    found = _imports(ROOT / (name.replace(".", "/") + ".py"))
    assert not found & others, f"{own} imports {sorted(found & others)}"


def test_the_loader_keeps_models_not_app_state():
    found = _imports(ROOT / "modes" / "loader.py")
    app_state = {"modes.context", "modes.jobs", "modes.reuse", "modes.runs", "modes.engine", "gradio"}
    assert not {m for m in found if m.split(".")[0] == "gradio" or m in app_state}
