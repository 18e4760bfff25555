"""One real-browser walk through the Korean UI: every tab runs a small job; screenshots are saved.

Playwright drives Debian's Chromium (/usr/bin/chromium); no browser is ever downloaded.
Screenshots go to artifacts/screenshots/ (kept by CI as test artifacts).
"""

from __future__ import annotations

import contextlib
import os
import re
import shutil
from pathlib import Path

import pytest

from tests.conftest import scaled_ms, served_app

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
SHOTS = Path(__file__).resolve().parent.parent / "artifacts" / "screenshots"
ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
        "--disable-sync", "--no-first-run", "--disable-quic"]

pytestmark = [pytest.mark.browser,
              pytest.mark.skipif(not os.path.exists(CHROMIUM), reason="Debian chromium is not installed")]


def open_page(p, url: str, locale: str = "en-US", height: int = 1600, timeout_ms: int = 120_000):
    """(browser, page): Debian's Chromium on `url`, in `locale`, with one timeout for waits and expects."""
    from playwright.sync_api import expect

    browser = p.chromium.launch(executable_path=CHROMIUM, headless=True, args=ARGS)
    page = browser.new_context(locale=locale, viewport={"width": 1280, "height": height}).new_page()
    timeout_ms = scaled_ms(timeout_ms / 1000)  # set on the reference machine, stretched by this one's slowness now
    page.set_default_timeout(timeout_ms)
    expect.set_options(timeout=timeout_ms)
    page.goto(url)
    return browser, page


def set_number(page, label: str, value: int) -> None:
    # Exact name: "스텝 수" must not match the pre-training tab's "학습 스텝 수".
    box = page.get_by_role("spinbutton", name=f"number input for {label}", exact=True)
    box.fill(str(value))
    box.press("Enter")
    box.press("Tab")  # blur too: the slider takes a typed value on change or on blur, whichever comes


def drawn_lines(page, elem_id: str) -> int:
    """How many line marks of a gr.LinePlot have path data (an undrawn line has an empty `d`)."""
    paths = page.locator(f"#{elem_id} g.mark-line path")
    return sum(1 for i in range(paths.count()) if (paths.nth(i).get_attribute("d") or "").strip())


def eventually(page, check, timeout_ms: int = 30_000):
    """Retry `check()` (which asserts) until it passes: plots redraw a moment after the text updates."""
    waited, cap = 0, scaled_ms(timeout_ms / 1000)
    while True:
        try:
            return check()
        except AssertionError:
            if waited >= cap:
                raise
            page.wait_for_timeout(500)
            waited += 500


def legend(page, elem_id: str) -> list[str]:
    return page.locator(f"#{elem_id} g.role-legend-label text").all_text_contents()


@pytest.mark.real
def test_korean_walkthrough_all_tabs(real_loader, real_results):
    from playwright.sync_api import expect, sync_playwright

    stack = contextlib.ExitStack()
    url = stack.enter_context(served_app(real_loader, results_dir=real_results)).url
    SHOTS.mkdir(parents=True, exist_ok=True)
    try:
        with sync_playwright() as p:
            browser, page = open_page(p, url, "ko-KR", 1800, 240_000)
            expect(page.get_by_text("모델은 어떻게 배우는가").first).to_be_visible()
            expect(page.get_by_text("사전학습: 다음 토큰 맞히기").first).to_be_visible()

            # Tab 1: token loss, then a very short pre-train on the tiny preset.
            page.get_by_role("button", name="모든 토큰 채점하기").click()
            expect(page.get_by_text(re.compile("평균 손실")).first).to_be_visible()
            page.get_by_label("tiny").check()
            set_number(page, "학습 스텝 수", 30)
            page.get_by_role("button", name="처음부터 사전학습").click()
            expect(page.get_by_text(re.compile("갱신된 가중치: 100%")).first).to_be_visible()
            def pt_plot():
                assert drawn_lines(page, "pt-plot") == 2  # train and val curves are actually drawn
                assert sorted(legend(page, "pt-plot")) == ["train", "val"]

            eventually(page, pt_plot)
            page.screenshot(path=str(SHOTS / "1-pretraining.png"), full_page=True)

            # Tab 2: a short LoRA run.
            page.get_by_role("tab", name=re.compile("파인튜닝")).click()
            # The data preview shows the first built-in pairs as soon as the tab opens.
            expect(page.get_by_text("Hello, nice to meet you.").first).to_be_visible()
            page.get_by_text("고급 설정").click()
            expect(page.get_by_role("spinbutton", name="number input for 스텝 수", exact=True)).to_be_visible()
            set_number(page, "스텝 수", 6)  # held-out loss every 2 steps: the eval line has 4 points
            page.get_by_role("button", name="LoRA로 파인튜닝").click()
            expect(page.get_by_text(re.compile(r"갱신된 가중치: [0-9.]+% \(어댑터만\)")).first).to_be_visible(timeout=scaled_ms(480))
            def ft_plot():
                # The train and the held-out curves are both drawn (and the mark where the held-out
                # loss was lowest, if it rose after that).
                names = sorted(legend(page, "ft-plot"))
                assert names in (["held-out eval", "train"], ["held-out eval", "lowest held-out loss", "train"]), names
                assert drawn_lines(page, "ft-plot") == len(names)
                strokes = page.locator("#ft-plot g.mark-line path").evaluate_all("ps => ps.map(p => p.getAttribute('stroke'))")
                assert all(strokes) and len(set(strokes)) == len(names), strokes  # each line has its own visible colour

            eventually(page, ft_plot)
            # What the adapter cost elsewhere, beside its gain, in Korean.
            expect(page.get_by_text("다른 작업에서 치른 대가 (같은 어댑터, 학습한 작업 밖에서)").first).to_be_visible()
            expect(page.get_by_text(re.compile("한 줄 요약: en-ko에서 chrF")).first).to_be_visible()
            expect(page.get_by_role("cell", name="The capital of France is").first).to_be_visible()
            page.screenshot(path=str(SHOTS / "2-finetune.png"), full_page=True)

            # Tab 3: switch to KO→EN with one click, edit one pool row, translate: the edited row is in the prompt.
            page.get_by_role("tab", name=re.compile("인컨텍스트")).click()
            page.get_by_role("button", name=re.compile("한국어 → 영어로 해 보기")).click()
            expect(page.get_by_label("번역할 문장")).to_have_value(re.compile("[가-힣]"))
            page.get_by_label("앞에서 k개").check()
            page.get_by_text(re.compile("^예시 풀")).first.click()
            cell = page.locator('#ic-pool [data-testid="cell-0-1"]')  # row 1, Korean column
            expect(cell).to_have_text("안녕하세요, 만나서 반가워요.")
            cell.dblclick()
            editor = page.locator("#ic-pool textarea:focus, #ic-pool input:focus").first
            editor.wait_for(timeout=scaled_ms(10))  # typing before the editor has focus appended to the old text (flaky)
            editor.fill("우리 고양이는 하루 종일 자요.")
            page.keyboard.press("Enter")
            expect(cell).to_have_text(re.compile("우리 고양이는 하루 종일 자요\\."))  # a selected cell also shows its menu glyph
            page.get_by_role("button", name="번역하기").click()
            expect(page.get_by_text(re.compile("갱신된 파라미터: 0개")).first).to_be_visible()
            expect(page.get_by_label("모델 출력 (실시간)")).not_to_have_value("")
            expect(page.get_by_label("모델이 보는 정확한 프롬프트")).to_have_value(re.compile("^Korean: 우리 고양이는"))
            prompt = page.get_by_label("모델이 보는 정확한 프롬프트").input_value()
            assert prompt.startswith("Korean: 우리 고양이는 하루 종일 자요.\nEnglish: Hello, nice to meet you."), prompt
            assert prompt.rstrip().endswith("English:")
            page.screenshot(path=str(SHOTS / "3-incontext.png"), full_page=True)

            # The sweep: k is a count, so the x axis shows the measured k values, and both lines are drawn.
            page.get_by_label("k 값 (쉼표로 구분)").fill("0,1,2")
            set_number(page, "채점할 평가용 쌍 수", 2)
            page.get_by_role("button", name="스윕 실행").click()
            expect(page.get_by_text(re.compile(r"최고: k = \d")).first).to_be_visible()
            def sweep_plot():
                assert drawn_lines(page, "ic-sweep-plot") == 2  # in-context and the LoRA reference
                x_ticks = page.locator("#ic-sweep-plot g.role-axis-label").first.locator("text").all_text_contents()
                assert x_ticks == ["0", "1", "2"], x_ticks
                assert sorted(legend(page, "ic-sweep-plot")) == ["LoRA fine-tuned (k=0)", "in-context (base model)"]

            eventually(page, sweep_plot)
            page.screenshot(path=str(SHOTS / "3b-sweep.png"), full_page=True)

            # Tab 4: the scoreboard shows this session's runs.
            page.get_by_role("tab", name=re.compile("세 방법 비교")).click()
            expect(page.get_by_text(re.compile("작은 모델의 100%")).first).to_be_visible()
            expect(page.get_by_text(re.compile("어댑터 파라미터")).first).to_be_visible()
            expect(page.get_by_text(re.compile("어댑터 켬 대 끔")).first).to_be_visible()  # the "other tasks" column
            page.screenshot(path=str(SHOTS / "4-scoreboard.png"), full_page=True)
            browser.close()
    finally:
        stack.close()
