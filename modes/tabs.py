"""The tab registry: the page is built from TABS, and the scoreboard reads each tab's row from it.

A new tab is one module that defines `TAB = Tab(...)` and one line in TABS. A tab module never
imports another tab: what tabs share reaches them through the Page (the app context, the learner's
adapter and session) or through the shared modules (engine, metrics, data, jobs, ui).
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass, field
from typing import Any, Callable

# The order is the order of the tabs on the page; the scoreboard and the class board come last and read the others.
TABS = ("modes.pretrain.tab", "modes.finetune.tab", "modes.incontext.tab", "modes.scoreboard.tab", "modes.classboard.tab")


@dataclass(frozen=True)
class Tab:
    id: str  # the gr.Tab id, and the key of this tab's runs in the learner's records
    title: str  # the UI string key of the tab's title
    build: Callable[["Page"], Any]  # lays out the tab (inside its gr.Tab) and wires its events
    score_row: Callable[[dict | None, str], str] | None = None  # (best run's summary or None, lang) -> scoreboard row
    best: Callable[[dict], float] | None = None  # a run summary's score (higher is better): which run the board shows
    curves: tuple[str, str] = ("train", "val")  # the names of a training's train and held-out series on its plot
    headline: Callable[[dict], str] | None = None  # a run summary -> its result in a few characters (the runs table)
    shown: tuple[str, ...] = ()  # the settings the runs table shows for this tab's runs
    rerun: Callable[[Any, Any, dict, str], Any] | None = None  # (ctx, session, a run's settings, lang) -> a new Run: "Run again"
    metric: tuple[str, Callable[[dict], float | None]] | None = None  # (its name, a summary -> the figure, None: not ranked): the class board's column
    config: type | None = None  # the run's config dataclass: a class experiment's values are checked by it
    presets: tuple[str, ...] = ()  # the config fields a class experiment may pre-set (the tab registers their widgets)
    warm: Callable[[Any], Any] | None = None  # (ctx) -> a generator of idle-time pieces: what every learner's first run computes alike (modes/runs/warmup.py)


@dataclass
class Page:
    """What one build of the page hands every tab."""

    ctx: Any  # the AppContext (shared by every learner)
    adapter: Any  # gr.State: the learner's LoRA adapter (fine-tune writes it, in-context reads it)
    session: Any  # gr.State(history.Session): whose runs this page shows (the owner id) and how it draws curves
    attached: Any = None  # the page-load event that found the learner's owner id: tabs chain their reattach on it
    tabs: list[Tab] = field(default_factory=list)  # every tab on the page, in order
    tab: Any = None  # the gr.Tab being built (for its select event)
    # tab id -> {config field: its widget}: what a class experiment may pre-set (each tab adds its own while built)
    controls: dict = field(default_factory=dict)


def load(names: tuple[str, ...] = TABS) -> list[Tab]:
    """The Tab of each registered module, in order (importing them: Gradio, no torch)."""
    return [importlib.import_module(name).TAB for name in names]
