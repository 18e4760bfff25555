"""A class in real browsers (Debian's Chromium, four contexts): a teacher creates a class and starts an experiment,
three learners join from the link (one named with HTML), find their value pre-set and pre-train; the teacher's
board shows three rows, a scatter with three points and a three-ways table that names its counts, and the HTML
name as text (nothing runs), and never the teacher key; names can be hidden and the runs exported. The board's
screenshot is saved (the README shows it)."""

from __future__ import annotations

import os
import re

import pytest

from tests.conftest import scaled_ms, served_app
from tests.test_browser import ARGS, CHROMIUM, SHOTS, eventually

pytestmark = [pytest.mark.browser, pytest.mark.skipif(not os.path.exists(CHROMIUM), reason="Debian chromium is not installed")]

XSS = "<img src=x onerror=alert(1)>"  # 28 characters: the board shows its first 24, as text


def test_a_teacher_and_three_learners(tiny_loader):
    from gradio_client import Client
    from playwright.sync_api import expect, sync_playwright

    with served_app(tiny_loader) as s, sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, headless=True, args=ARGS)
        dialogs = []

        def page_in(url: str):
            page = browser.new_context(locale="en-US", viewport={"width": 1280, "height": 2400}).new_page()
            page.set_default_timeout(scaled_ms(120))
            expect.set_options(timeout=scaled_ms(120))
            page.on("dialog", lambda d: (dialogs.append(d.message), d.dismiss()))
            page.goto(url)
            return page

        teacher = page_in(s.url)
        teacher.get_by_role("tab", name=re.compile("Class")).click()
        teacher.get_by_text("For teachers: create a class and project its board").click()
        teacher.locator("#class-create").click()
        created = teacher.locator("#class-created")
        expect(created).to_contain_text("Class code")
        code = re.search(r"Class code: ([A-Z0-9]{6})", created.inner_text()).group(1)
        teacher.get_by_text("Teacher key (shown once").click()  # folded away: never on the projected board
        key = teacher.locator("#class-key code").first.inner_text().strip()
        assert len(key) >= 22 and key not in created.inner_text()
        # The experiment through the API with the key the page showed once: pre-training steps, one value each.
        Client(s.url, verbose=False).predict(code, key, "pretrain", "steps", "20, 30, 40", api_name="/class_experiment")

        names = ["Ada", "Grace", XSS]
        for i, name in enumerate(names):
            page = page_in(f"{s.url}?class={code}")
            page.get_by_role("tab", name=re.compile("Class")).click()
            expect(page.locator("#class-code textarea, #class-code input").first).to_have_value(code)  # from the link
            page.locator("#class-name textarea, #class-name input").first.fill(name)
            page.locator("#class-join").click()
            expect(page.locator("#class-you")).to_contain_text(f"steps = {[20, 30, 40][i]}")
            page.get_by_role("tab", name=re.compile("Pre-training")).click()
            page.get_by_label("tiny").check()
            steps = page.get_by_role("spinbutton", name="number input for Training steps", exact=True)
            expect(steps).to_have_value(str([20, 30, 40][i]))  # pre-set by the class experiment
            page.get_by_role("button", name="Pre-train from scratch").click()
            expect(page.get_by_text(re.compile(rf"Done: {[20, 30, 40][i]} steps")).first).to_be_visible()

        # Three learners: the grid says so (a header row and three; Gradio's table is virtualised).
        expect(teacher.locator("#class-learners [role=grid]")).to_have_attribute("aria-rowcount", "4")
        board = teacher.locator("#class-learners")
        expect(board).to_contain_text("Ada")
        expect(board).to_contain_text(XSS[:24])  # the HTML name shown as text
        assert teacher.locator("#class-learners img").count() == 0

        def three_points():
            assert teacher.locator("#class-scatter-pretrain g.mark-symbol path").count() == 3
            assert teacher.locator("#class-exp-plot g.mark-symbol path").count() == 3

        eventually(teacher, three_points, 60_000)
        expect(teacher.locator("#class-three-ways")).to_contain_text("3 runs, 3 learners")
        expect(teacher.locator("#class-exp-md")).to_contain_text("3 learners' results")
        SHOTS.mkdir(parents=True, exist_ok=True)
        board = teacher.locator("#class-board")
        assert key not in board.inner_text()
        board.screenshot(path=str(SHOTS / "class-board.png"))  # what a teacher projects (the README shows it)
        # The teacher's controls through the page: names hidden for projecting, then the CSV.
        teacher.get_by_role("button", name="Hide names").click()
        expect(teacher.locator("#class-learners")).to_contain_text("Learner 3")
        expect(teacher.locator("#class-learners")).not_to_contain_text("Grace")
        teacher.get_by_role("button", name="Export CSV").click()
        expect(teacher.locator("#class-csv")).to_contain_text(re.compile(rf"class-{code}\s*\.csv"))
        href = teacher.locator("#class-csv a").first.get_attribute("href")
        csv_text = teacher.request.get(href if href.startswith("http") else s.url.rstrip("/") + href).text()
        assert csv_text.count("\n") == 4 and "Grace" in csv_text and "setting.steps" in csv_text  # real names: the teacher's own
        assert dialogs == [], dialogs  # the name's onerror never ran
        browser.close()
