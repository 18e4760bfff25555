"""The first screen on a phone (390x844) in Korean: the title, one short status line in Korean, and the tabs;
the technical detail folded one click away. On a tiny random model (the page is what is checked, not the model)."""

from __future__ import annotations

import os

import pytest

from tests.conftest import scaled_ms, served_app
from tests.test_browser import ARGS, CHROMIUM, SHOTS

pytestmark = [pytest.mark.browser, pytest.mark.skipif(not os.path.exists(CHROMIUM), reason="Debian chromium is not installed")]


def test_a_phone_in_korean_opens_on_the_title_one_status_line_and_the_tabs(tiny_tokenizer):
    from playwright.sync_api import expect, sync_playwright

    with served_app(tokenizer=tiny_tokenizer) as s, sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, headless=True, args=ARGS)
        try:
            page = browser.new_context(locale="ko-KR", viewport={"width": 390, "height": 844}, is_mobile=True,
                                       has_touch=True).new_page()
            page.set_default_timeout(scaled_ms(120))
            page.goto(s.url)
            status = page.locator("#model-status")
            expect(status).to_contain_text("준비됨", timeout=scaled_ms(120))  # the poll's line, in the page's language
            line = status.inner_text().strip().splitlines()[0]
            assert "tiny random gemma3" in line and "CPU" in line and "precision" not in line, line
            folded = page.locator("#model-status-details")
            expect(folded).to_contain_text("자세히")  # the accordion's label, in Korean
            assert not page.get_by_text("heavy work", exact=False).is_visible()  # folded
            folded.get_by_text("자세히").click()
            expect(page.get_by_text("heavy work", exact=False)).to_be_visible()  # one click away
            folded.get_by_text("자세히").click()
            # the intro paragraph is folded on a phone, one click away, in Korean
            assert not page.locator("#app-intro").is_visible()
            about = page.locator("#app-intro-fold")
            expect(about).to_contain_text("이 앱은?")
            about.get_by_text("이 앱은?").click()
            expect(about.get_by_text("세 가지 학습 방법", exact=False)).to_be_visible()
            about.get_by_text("이 앱은?").click()
            tab = page.get_by_role("tab").first
            box = tab.bounding_box()
            assert box is not None and box["y"] + box["height"] <= 844, box  # the tabs are on the first screen
            SHOTS.mkdir(parents=True, exist_ok=True)
            page.screenshot(path=str(SHOTS / "phone-ko-first-screen.png"))
            # a laptop's screen keeps the intro open, and has no fold for it
            wide = browser.new_context(locale="ko-KR", viewport={"width": 1280, "height": 800}).new_page()
            wide.goto(s.url)
            expect(wide.locator("#app-intro")).to_contain_text("세 가지 학습 방법", timeout=scaled_ms(120))
            assert not wide.locator("#app-intro-fold").is_visible()
        finally:
            browser.close()
