"""The owner a browser keeps survives a restart of the server: a run made before SIGKILL is listed after
the app starts again on the same data dir and port, once the page reloads (Debian's Chromium)."""

from __future__ import annotations

import os
import re
import time

import pytest

from bench.storm import free_port, save_tiny_model, start_app, wait_for_page
from tests.conftest import scaled
from tests.test_browser import CHROMIUM, open_page, set_number

pytestmark = [pytest.mark.browser, pytest.mark.restart,
              pytest.mark.skipif(not os.path.exists(CHROMIUM), reason="Debian chromium is not installed")]


def test_the_browser_keeps_its_runs_across_a_server_restart(tmp_path, monkeypatch):
    from playwright.sync_api import expect, sync_playwright

    model = tmp_path / "model"
    save_tiny_model(model)
    monkeypatch.setenv("HML_DATA_DIR", str(tmp_path / "data"))
    for var in ("HML_DATABASE_URL", "HML_SECRET"):  # the default store and the secret kept in the data dir
        monkeypatch.delenv(var, raising=False)
    port = free_port()  # the same port after the restart: the browser keeps its owner per origin
    url = f"http://127.0.0.1:{port}/"
    procs = []

    def start():
        from gradio_client import Client

        procs.append(start_app(str(model), str(tmp_path / "cache"), port, str(tmp_path / f"app-{len(procs)}.log")))
        wait_for_page(url, time.perf_counter(), timeout=scaled(180))
        end = time.monotonic() + scaled(120)
        while Client(url, verbose=False).predict(api_name="/model_status")["state"] != "ready":  # the page's jobs wait for it
            assert time.monotonic() < end, "the model never loaded"
            time.sleep(0.5)

    start()
    try:
        with sync_playwright() as p:
            browser, page = open_page(p, url)
            page.get_by_label("tiny").check()
            set_number(page, "Training steps", 7)
            page.get_by_role("button", name="Pre-train from scratch").click()
            expect(page.get_by_text(re.compile(r"Done: 7 steps")).first).to_be_visible()
            procs[-1].kill()  # SIGKILL
            procs[-1].wait(30)
            start()  # the same data dir and port
            page.reload()
            page.get_by_role("tab", name=re.compile("Three ways compared")).click()
            table = page.locator("#runs-table")
            expect(table).to_contain_text("pretrain")
            expect(table).to_contain_text("steps=7")
            expect(table).to_contain_text("done")
            browser.close()
    finally:
        for proc in procs:
            proc.kill()
            proc.wait(30)
