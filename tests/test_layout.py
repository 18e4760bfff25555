"""The house rules a newcomer relies on: the page is built from the tab registry (a new tab is one
module and one registry line), tab modules never import each other, and the loader keeps no app state."""

from __future__ import annotations

import ast
import contextlib
import sys
import textwrap
from pathlib import Path

import pytest

from modes import tabs as registry
from tests.conftest import served_app

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

    at = registry.TABS.index("modes.scoreboard.tab")
    names = registry.TABS[:at] + (dummy_module,) + registry.TABS[at:]  # the one line: before the scoreboard
    stack = contextlib.ExitStack()
    s = stack.enter_context(served_app(tiny_loader, tabs=names))
    url, demo = s.url, s.demo
    ids = [c["props"].get("id") for c in demo.config["components"] if c["type"] == "tabitem"]
    assert ids == ["pretrain", "finetune", "incontext", "wordcount", "scoreboard", "classboard"]
    try:
        client = Client(url, verbose=False)
        assert "/count_words" in client.view_api(return_format="dict", print_info=False)["named_endpoints"]
        assert client.predict("a b c d", api_name="/count_words") == {"words": 4}
        assert client.predict("a b", api_name="/count_words") == {"words": 2}
        # The new tab's runs are the learner's runs, and the board shows its best one in its own row.
        assert [r["kind"] for r in client.predict(api_name="/runs")] == ["wordcount", "wordcount"]
        from modes.scoreboard import tab as scoreboard

        owner = next(iter(demo.ctx.history._owners))
        board = scoreboard.board(demo.ctx, owner, registry.load(names), "en")
        assert "| word counting | 4 words |" in board
        assert "| word counting | nothing learned |" in scoreboard.render({}, registry.load(names))
    finally:
        stack.close()


def _imports(path: Path) -> set[str]:
    out = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            out |= {a.name for a in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module:
            out.add(node.module)
            out |= {f"{node.module}.{a.name}" for a in node.names}
    return out


def _package_of(module: str) -> str:
    """The part of modes/ a module belongs to: a package (serving, pretrain, ...) or a top-level module."""
    parts = module.split(".")
    return parts[1] if len(parts) > 1 and parts[0] == "modes" else ""


TAB_PACKAGES = {name.split(".")[1] for name in registry.TABS}
SHARED_PACKAGES = {"serving", "model", "runs", "data"}
# What each shared part may import (besides itself and the top-level helpers fields, metrics, ui):
# the imports point one way, from tabs down to runs, model, serving and data, never back up.
MAY_IMPORT = {"data": set(), "serving": {"data"}, "model": {"serving", "data"}, "runs": {"model", "serving", "data"}}
HELPERS = {"fields", "metrics", "ui", "codec"}  # top-level helpers every part may use (the app context and registry are not)


def test_the_tree_shows_the_architecture():
    """A newcomer finds the engine, each tab, the runs and the model loading from the folder names alone."""
    packages = {p.name for p in (ROOT / "modes").iterdir() if p.is_dir() and (p / "__init__.py").exists()}
    assert packages == TAB_PACKAGES | SHARED_PACKAGES, packages
    assert (ROOT / "modes/serving/engine.py").exists() and (ROOT / "modes/model/loader.py").exists()
    for tab in TAB_PACKAGES:  # a tab is one folder: its UI and registry entry, and its compute and config
        assert (ROOT / f"modes/{tab}/tab.py").exists()
    for pkg in packages:  # every package says what it holds
        assert ast.get_docstring(ast.parse((ROOT / f"modes/{pkg}/__init__.py").read_text(encoding="utf-8")))


def _modules():
    for path in sorted((ROOT / "modes").rglob("*.py")):
        rel = path.relative_to(ROOT).with_suffix("")
        yield ".".join(rel.parts).removesuffix(".__init__"), path


@pytest.mark.parametrize("module, path", list(_modules()), ids=[m for m, _ in _modules()])
def test_imports_point_one_way(module, path):
    """No tab imports another tab; shared packages never import a tab; shared packages import only the
    ones below them (runs -> model -> serving -> data)."""
    own = _package_of(module)
    found = {_package_of(m) for m in _imports(path) if m.startswith("modes.")} - {own, ""}
    if own in TAB_PACKAGES:
        assert not found & (TAB_PACKAGES - {own}), f"{module} imports another tab: {sorted(found & TAB_PACKAGES)}"
    else:
        assert not found & TAB_PACKAGES, f"{module} (shared) imports a tab: {sorted(found & TAB_PACKAGES)}"
    if own in MAY_IMPORT:
        above = found - HELPERS - MAY_IMPORT[own]
        assert not above, f"{module} imports {sorted(above)}, above it"


def test_the_import_check_can_fail(tmp_path):
    """The walk above sees an import of another tab, however it is written."""
    bad = tmp_path / "bad.py"
    bad.write_text("def f():\n    from modes.finetune import core\n", encoding="utf-8")
    assert "finetune" in {_package_of(m) for m in _imports(bad)}


def test_the_loader_keeps_models_not_app_state():
    found = _imports(ROOT / "modes" / "model" / "loader.py")
    app_state = {"modes.context", "modes.runs", "modes.serving.engine", "gradio"}
    assert not {m for m in found if m.split(".")[0] == "gradio" or any(m == a or m.startswith(a + ".") for a in app_state)}


def test_no_function_in_the_app_is_over_80_lines():
    long = []
    for path in [ROOT / "app.py", *sorted((ROOT / "modes").rglob("*.py"))]:
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)) and node.end_lineno - node.lineno + 1 > 80:
                long.append(f"{path.relative_to(ROOT)}:{node.name} ({node.end_lineno - node.lineno + 1} lines)")
    assert not long, long


@pytest.mark.real  # (needs no model: it checks where the real-model tests run)
def test_the_real_model_tests_run_in_one_worker(request):
    """Under xdist's loadgroup (pytest.ini) the real-model tests carry their group in their node ids, so one worker
    runs them all and loads the real model once; a pytest that drops the group (pytest-dev/pytest-xdist#1386) fails here."""
    if request.config.getoption("loadgroup", False):
        assert request.node.nodeid.endswith("@real"), request.node.nodeid
