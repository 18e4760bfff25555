"""One real-browser walk through the Korean UI: every tab runs a small job; screenshots are saved.

Playwright drives Debian's Chromium (/usr/bin/chromium); no browser is ever downloaded.
Screenshots go to artifacts/screenshots/ (kept by CI as test artifacts).
"""

from __future__ import annotations

import os
import re
import shutil
from pathlib import Path

import pytest

import app
from tests.conftest import free_port

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
SHOTS = Path(__file__).resolve().parent.parent / "artifacts" / "screenshots"
ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
        "--disable-sync", "--no-first-run", "--disable-quic"]

pytestmark = [pytest.mark.browser, pytest.mark.real,
              pytest.mark.skipif(not os.path.exists(CHROMIUM), reason="Debian chromium is not installed")]


def set_number(page, label: str, value: int) -> None:
    # Exact name: "스텝 수" must not match the pre-training tab's "학습 스텝 수".
    box = page.get_by_role("spinbutton", name=f"number input for {label}", exact=True)
    box.fill(str(value))
    box.press("Enter")


def drawn_lines(page, elem_id: str) -> int:
    """How many line marks of a gr.LinePlot have path data (an undrawn line has an empty `d`)."""
    paths = page.locator(f"#{elem_id} g.mark-line path")
    return sum(1 for i in range(paths.count()) if (paths.nth(i).get_attribute("d") or "").strip())


def test_korean_walkthrough_all_tabs(real_loader):
    from playwright.sync_api import expect, sync_playwright

    demo = app.build_app(real_loader)
    _, url, _ = app.launch(demo, prevent_thread_lock=True, server_port=free_port(), quiet=True)
    SHOTS.mkdir(parents=True, exist_ok=True)
    try:
        with sync_playwright() as p:
            browser = p.chromium.launch(executable_path=CHROMIUM, headless=True, args=ARGS)
            page = browser.new_context(locale="ko-KR", viewport={"width": 1280, "height": 1800}).new_page()
            page.set_default_timeout(240_000)
            expect.set_options(timeout=240_000)
            page.goto(url)
            expect(page.get_by_text("모델은 어떻게 배우는가").first).to_be_visible()
            expect(page.get_by_text("사전학습: 다음 토큰 맞히기").first).to_be_visible()

            # Tab 1: token loss, then a very short pre-train on the tiny preset.
            page.get_by_role("button", name="모든 토큰 채점하기").click()
            expect(page.get_by_text(re.compile("평균 손실")).first).to_be_visible()
            page.get_by_label("tiny").check()
            set_number(page, "학습 스텝 수", 30)
            page.get_by_role("button", name="처음부터 사전학습").click()
            expect(page.get_by_text(re.compile("갱신된 가중치: 100%")).first).to_be_visible()
            page.wait_for_timeout(1000)  # the plot redraws after the last update
            assert drawn_lines(page, "pt-plot") == 2  # train and val curves are actually drawn
            page.screenshot(path=str(SHOTS / "1-pretraining.png"), full_page=True)

            # Tab 2: a short LoRA run.
            page.get_by_role("tab", name=re.compile("파인튜닝")).click()
            page.get_by_text("고급 설정").click()
            set_number(page, "스텝 수", 3)
            page.get_by_role("button", name="LoRA로 파인튜닝").click()
            expect(page.get_by_text(re.compile(r"갱신된 가중치: [0-9.]+% \(어댑터만\)")).first).to_be_visible(timeout=480_000)
            page.wait_for_timeout(1000)
            assert drawn_lines(page, "ft-plot") >= 1
            page.screenshot(path=str(SHOTS / "2-finetune.png"), full_page=True)

            # Tab 3: one translation.
            page.get_by_role("tab", name=re.compile("인컨텍스트")).click()
            page.get_by_role("button", name="번역하기").click()
            expect(page.get_by_text(re.compile("갱신된 파라미터: 0개")).first).to_be_visible()
            expect(page.get_by_label("모델 출력 (실시간)")).not_to_have_value("")
            page.screenshot(path=str(SHOTS / "3-incontext.png"), full_page=True)

            # Tab 4: the scoreboard shows this session's runs.
            page.get_by_role("tab", name=re.compile("세 방법 비교")).click()
            expect(page.get_by_text(re.compile("작은 모델의 100%")).first).to_be_visible()
            expect(page.get_by_text(re.compile("어댑터 파라미터")).first).to_be_visible()
            page.screenshot(path=str(SHOTS / "4-scoreboard.png"), full_page=True)
            browser.close()
    finally:
        demo.close()


def test_closing_the_tab_stops_its_training(tiny_loader):
    """A learner closes the tab mid-training: the run is cancelled and the training slot is free again."""
    import time

    from gradio_client import Client
    from playwright.sync_api import sync_playwright

    demo = app.build_app(tiny_loader)
    _, url, _ = app.launch(demo, prevent_thread_lock=True, server_port=free_port(), quiet=True)
    try:
        with sync_playwright() as p:
            browser = p.chromium.launch(executable_path=CHROMIUM, headless=True, args=ARGS)
            page = browser.new_context(locale="en-US").new_page()
            page.goto(url)
            page.get_by_label("baby").check()
            set_number(page, "Training steps", 5000)
            page.get_by_role("button", name="Pre-train from scratch").click()
            page.get_by_text(re.compile(r"Step \*?\*?\d+/5000|Step \d+/5000")).first.wait_for(timeout=60_000)
            page.close()
            browser.close()
        t = time.perf_counter()
        out = Client(url, verbose=False).predict(corpus="shakespeare", size="tiny", steps=5, seed=1, api_name="/pretrain")
        assert out[-1]["steps"] == 5
        assert time.perf_counter() - t < 30, "the closed tab's 5000-step training still held the slot"
        assert tiny_loader.memo["training_gauge"].now == 0
    finally:
        demo.close()
