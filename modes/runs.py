"""The learner's runs: what each training or sweep records for the scoreboard, and the lines that
describe a run to the learner (its place in the queue, or that it is a replay)."""

from __future__ import annotations

from modes import ui
from modes.jobs import fmt_eta


def new_runs() -> dict:
    """A session's records: tab id -> the summary of its latest run."""
    return {}


def record(runs: dict | None, tab_id: str, summary: dict) -> None:
    if runs is not None:
        runs[tab_id] = summary


def queue_line(job, lang: str) -> str:
    """A waiting learner's line: place in the queue and the estimated wait, or that they left it."""
    if job.kind == "left":
        return ui.msg("queue_left", lang)
    return ui.msg("queue_wait", lang, pos=job.position, wait=fmt_eta(job.wait))


def replay_info(replayed) -> dict | None:
    """The summary's `replay` entry: None for a computed run, else when the original ran and how long."""
    if replayed is None:
        return None
    return {"recorded_at": replayed.recorded_at, "original_seconds": round(replayed.seconds, 1)}


def replay_line(replayed, lang: str) -> str:
    """Said plainly above a replayed result: these figures are an identical earlier run's."""
    return "♻️ " + ui.msg("replay_note", lang, when=replayed.recorded_at, secs=f"{replayed.seconds:.0f}")


def progress_line(md: str, replayed, lang: str) -> str:
    """A progress line, marked as a replay when it is one."""
    return "♻️ " + ui.msg("replay_progress", lang) + " " + md if replayed else md
