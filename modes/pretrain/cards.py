"""What a pre-training shows when it ends: its result card, the generated samples (a masked run's fill-in
coloured right and wrong), the two objectives side by side, and its scoreboard row. Plain strings and values
in the learner's language; the tab (tab.py) draws them."""

from __future__ import annotations

from modes import ui


def samples_view(run) -> tuple[str, list | None]:
    """(the samples box's text, the coloured fill-in of the newest sample or None). A masked run's samples
    are fill-ins of one fixed val window: guesses in brackets, ✓ right, ✗ wrong."""
    if run.settings.get("objective") != "masked":
        return "\n\n".join(run.samples), None
    from modes.pretrain.masked import parse_fill_in

    spans = parse_fill_in(run.samples[0].split("\n", 1)[1]) if run.samples else None
    colour = [(ch, None if ok is None else ("right" if ok else "wrong")) for ch, ok in spans] if spans else None
    return "\n\n".join(run.samples), colour


def result_card(res, lang: str) -> str:
    """The run's result card: against the pretrained 270M model (next-token), or its fill-in figures (masked)."""
    fmt = dict(steps=res.steps, params=f"{res.params:,}", bpc=f"{res.val_bpc:.2f}", ref=_ref(res.pretrained_val_bpc),
               secs=f"{res.seconds:.0f}", tps=f"{res.tokens_per_s:,.0f}", pct=f"{100 * res.params_updated_fraction:.0f}")
    if getattr(res, "objective", "next-token") == "masked":
        md = ui.msg("pt_result_masked", lang, **fmt, acc=f"{100 * res.fill_in_accuracy:.1f}", uni=f"{100 * res.unigram_accuracy:.1f}",
                    written=(res.left_to_right or "").replace("\n", " ").replace("|", "\\|"))
        return (ui.msg("pt_stopped_line", lang, steps=res.steps) + "\n\n" + md) if res.stopped else md
    return ui.msg("pt_result_stopped" if res.stopped else "pt_result", lang, **fmt)


def two_ways(ctx, session, lang: str) -> str:
    """The learner's own latest finished run of each objective, side by side, and why they differ:
    the masked loss is lower (it sees both sides of a gap), yet that model cannot write left to right."""
    owner = session.owner if session else None
    latest = {}
    for r in ctx.history.runs(owner, "pretrain"):
        s = r.summary or {}
        if r.status == "done" and "val_bpc" in s:
            latest[s.get("objective", "next-token")] = s  # runs come oldest first: the last one wins
    if len(latest) < 2:
        return ""
    nt, mk = latest["next-token"], latest["masked"]
    key = "pt_two_ways_lower" if mk["val_bpc"] < nt["val_bpc"] else "pt_two_ways_not_lower"
    return ui.msg(key, lang, nt=f"{nt['val_bpc']:.2f}", mk=f"{mk['val_bpc']:.2f}", nt_steps=nt["steps"], mk_steps=mk["steps"],
                  acc=f"{100 * (mk.get('fill_in_accuracy') or 0):.0f}", uni=f"{100 * (mk.get('unigram_accuracy') or 0):.0f}",
                  written=(mk.get("left_to_right") or "").replace("\n", " ")[:80].replace("|", "\\|"))


def _ref(bpc: float | None) -> str:
    return "—" if bpc is None else f"{bpc:.2f}"


def score_row(p: dict | None, lang: str) -> str:
    """This tab's row of the three-ways scoreboard, from the learner's latest pre-training."""
    if not p:
        return ui.msg("sb_empty_pretrain", lang)
    if p.get("objective") == "masked":
        return ui.msg("sb_row_pretrain_masked", lang, pct=f"{100 * p['params_updated_fraction']:.0f}", params=f"{p['params']:,}",
                      chars=f"{p['n_chars']:,}", corpus=p["corpus"], secs=f"{p['seconds']:.0f}", bpc=f"{p['val_bpc']:.2f}",
                      acc=f"{100 * p['fill_in_accuracy']:.0f}")
    return ui.msg("sb_row_pretrain", lang, pct=f"{100 * p['params_updated_fraction']:.0f}", params=f"{p['params']:,}",
                  chars=f"{p['n_chars']:,}", corpus=p["corpus"], secs=f"{p['seconds']:.0f}", bpc=f"{p['val_bpc']:.2f}",
                  ref=_ref(p.get("pretrained_val_bpc")), other=ui.msg("sb_other_pretrain", lang, bpc=f"{p['val_bpc']:.2f}"))


def _best(s: dict) -> float:
    # A masked run's bits/char are on hidden characters only, a different task: any next-token run ranks above it.
    return -s["val_bpc"] - (1000.0 if s.get("objective") == "masked" else 0.0)


def _headline(s: dict) -> str:
    if s.get("objective") == "masked":
        return f"masked: val {s['val_bpc']:.3f} bits/masked char, fill-in {100 * s['fill_in_accuracy']:.0f}%"
    return f"val {s['val_bpc']:.3f} bits/char"
