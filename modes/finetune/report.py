"""The fine-tune's result as the learner reads it: the before/after card with its weights proof, the
overfit line, and what the adapter cost elsewhere. Plain strings in the learner's language."""

from __future__ import annotations

from modes import ui


def result_text(res, n_test: int, direction: str, lang: str, task: str = "translation") -> str:
    """The result card: chrF before/after, the weights proof, and what the run cost elsewhere.
    `direction`: the translation direction, or the summary's label ('summary (en)')."""
    md = ui.msg("ft_result" if task == "translation" else "ft_result_summary", lang, before=res.chrf_before, after=res.chrf_after, n=n_test,
                el_before=f"{res.eval_loss_before:.3f}", el_after=f"{res.eval_loss_after:.3f}",
                trainable=f"{res.trainable_params:,}", pct=f"{100 * res.trainable_fraction:.2f}",
                h1=res.base_hash_before[:16], h2=res.base_hash_after[:16],
                same="✅" if res.base_weights_unchanged else "❌", changed=f"{res.adapter_params_changed:,}",
                steps=res.steps, secs=f"{res.seconds:.0f}")
    lead = getattr(res, "lead", None)  # recordings made before the lead was measured have none
    if lead:
        md += "\n\n" + lead_text(lead, res.chrf_after, n_test, lang)
    if res.stopped:
        md = ui.msg("ft_stopped", lang, step=res.steps) + "\n\n" + md
    if res.diverged_at is not None:
        md = "⚠️ " + ui.msg("ft_diverged", lang, step=res.diverged_at, kept=res.kept_step) + "\n\n" + md
    if res.empty_outputs:
        md += "\n\n" + ui.msg("ft_empty_outputs", lang, n=res.empty_outputs, total=n_test)
    if res.off_task is not None:
        md += "\n\n" + render_cost(res.off_task, res.chrf_before, res.chrf_after, direction, lang)
    return md


def lead_text(lead: dict, after, n: int, lang: str) -> str:
    """The adapter against k examples in the prompt on the same sentences, and whether the lead is more than noise:
    clear when the whole 95% bootstrap interval is above 0, behind when it is below, inside the noise otherwise."""
    f = lambda x: f"{x:+.1f}"
    verdict = "ft_lead_clear" if lead["low"] > 0 else "ft_lead_behind" if lead["high"] < 0 else "ft_lead_noise"
    return ui.msg("ft_lead", lang, k=lead["k"], n=n, k4=lead["chrf_k"], after=after, lead=f(lead["lead"])) + " " + \
        ui.msg(verdict, lang, k=lead["k"], n=n, low=f(lead["low"]), high=f(lead["high"]))


def _cell(text: str) -> str:
    return (text or "∅").replace("|", "\\|").replace("\n", " ")


def render_cost(off: dict, chrf_before, chrf_after, direction: str, lang: str) -> str:
    """The "what it cost elsewhere" table and its one-line reading, in the learner's language."""
    from modes.finetune.offtask import verdict

    m = lambda key, **kw: ui.msg(key, lang, **kw)
    v = verdict(chrf_before, chrf_after, direction, off)
    rows = [m("ft_cost_title"), m("ft_cost_header")]
    for name, d in off["general_bpc_texts"].items():
        rows.append(m("ft_cost_bpc_row", name=m(f"ft_text_{name}"), before=f"{d['before']:.3f}", after=f"{d['after']:.3f}",
                      delta=f"{d['after'] - d['before']:+.3f}"))
    if "translation_chrf" in off:  # a summary adapter: translation, both ways, is what it may have cost
        rev = m("ft_cost_translation")
        for d, c in off["translation_chrf"].items():
            rows.append(m("ft_cost_translation_row", dir=d, before=c["before"], after=c["after"], delta=f"{c['after'] - c['before']:+.2f}"))
    else:
        rev = off["reverse_direction"]
        rows.append(m("ft_cost_rev_row", rev=rev, before=off["reverse_chrf_before"], after=off["reverse_chrf_after"],
                      delta=f"{off['reverse_chrf_after'] - off['reverse_chrf_before']:+.2f}"))
        rows.append(m("ft_cost_k4_row", rev=rev, k4=off["reverse_chrf_base_k4"]))
    gain = "—" if v["gain"] is None else f"{v['gain']:+.1f}"
    reading = m("ft_cost_reading", gain=gain, dir=direction, bpc=f"{abs(v['bpc_delta']):.2f}",
                way=m("ft_cost_harder" if v["bpc_delta"] > 0 else "ft_cost_easier"), rev=rev, rev_delta=f"{v['reverse_delta']:+.1f}")
    note = m("ft_cost_hurt") if v["hurt"] else m("ft_cost_none", rev=rev)
    conts = [m("ft_cost_cont_header")] + [f"| {_cell(c['prompt'])} | {_cell(c['base'])} | {_cell(c['adapter'])} |"
                                          for c in off["continuations"]]
    return "\n".join(rows) + "\n\n" + reading + " " + note + "\n\n" + "\n".join(conts) + "\n\n" + \
        m("ft_cost_seconds", secs=f"{off['off_task_seconds']:.0f}")


def score_row(f: dict | None, lang: str) -> str:
    """This tab's row of the three-ways scoreboard, from the learner's latest fine-tune."""
    if not f:
        return ui.msg("sb_empty_finetune", lang)
    off = f.get("off_task")
    if f.get("task", "translation") != "translation":  # another task's chrF: said, and priced in translation
        from modes.finetune.offtask import translation_delta

        other = ui.msg("sb_other_finetune_none", lang) if not off else ui.msg(
            "sb_other_finetune_summary", lang, bpc=f"{off['general_bpc_after'] - off['general_bpc_before']:+.3f}",
            delta=f"{translation_delta(off):+.1f}")
        return ui.msg("sb_row_finetune_summary", lang, pct=f"{100 * f['trainable_fraction']:.2f}", params=f"{f['trainable_params']:,}",
                      pairs=f["n_pairs"], secs=f"{f['seconds']:.0f}", after=f["chrf_after"], before=f["chrf_before"],
                      n=f["n_test"], label=f.get("label", ""), other=other)
    other = ui.msg("sb_other_finetune_none", lang) if not off else ui.msg(
        "sb_other_finetune", lang, bpc=f"{off['general_bpc_after'] - off['general_bpc_before']:+.3f}", rev=off["reverse_direction"],
        rev_delta=f"{off['reverse_chrf_after'] - off['reverse_chrf_before']:+.1f}")
    lead = f.get("lead")  # the same held-out pairs with 4 examples in the prompt (runs from before it was measured: none)
    k4 = ui.msg("sb_k4", lang, k=lead["k"], chrf=lead["chrf_k"]) if lead else ""
    return ui.msg("sb_row_finetune", lang, pct=f"{100 * f['trainable_fraction']:.2f}", params=f"{f['trainable_params']:,}",
                  pairs=f["n_pairs"], secs=f"{f['seconds']:.0f}", after=f["chrf_after"], before=f["chrf_before"], n=f["n_test"],
                  other=other, label=f.get("label") or "", k4=k4)


def _best(s: dict) -> float:
    # The three ways are compared on translation: a run of another task ranks below every translation run.
    return s["chrf_after"] - (1000.0 if s.get("task", "translation") != "translation" else 0.0)
