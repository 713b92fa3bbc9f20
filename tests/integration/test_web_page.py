"""The page at `GET /` in a real browser: log in, post, and see the post arrive in "Latest".

Headless Chromium (Debian's `chromium` package) driven by Playwright; no browser is downloaded.
Without either, the test is skipped locally but fails under CI (CI=true), so CI cannot silently
not run it.
"""

from __future__ import annotations

import os
import shutil
import sys
import uuid
from pathlib import Path
from typing import Any

import pytest

from tests.harness import Cluster, unavailable

CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
USER = 9
ARRIVAL_TIMEOUT_MS = 20_000
STEP_TIMEOUT_MS = 10_000


def chromium_path() -> str:
    if os.access("/usr/bin/chromium", os.X_OK):
        return "/usr/bin/chromium"
    found = shutil.which("chromium")
    if found is None:
        unavailable("no chromium: install Debian's package with `apt-get install -y chromium`")
    return found


@pytest.mark.slow
def test_login_post_and_see_it_in_latest(empty_broker: str, cluster: Cluster, tmp_path: Path) -> None:
    try:
        from playwright.sync_api import Error as PlaywrightError
        from playwright.sync_api import expect, sync_playwright
    except ImportError as exc:
        unavailable(f"playwright is not installed ({exc}): pip install -e '.[dev]'")
    executable = chromium_path()

    worker = cluster.start_worker(HOMEMIXER_DEV_LOGIN="1")
    text = f"hello from the browser {uuid.uuid4().hex[:8]} <b>not bold</b>"
    screenshot = tmp_path / "web_page_failure.png"
    console: list[str] = []

    with sync_playwright() as pw:
        try:
            browser = pw.chromium.launch(executable_path=executable, headless=True, args=CHROMIUM_ARGS)
        except PlaywrightError as exc:
            unavailable(f"chromium at {executable} does not start: {exc}")
        try:
            page = browser.new_page()
            page.set_default_timeout(STEP_TIMEOUT_MS)
            page.on("console", lambda msg: console.append(f"console.{msg.type}: {msg.text}"))
            page.on("pageerror", lambda err: console.append(f"page error: {err}"))
            try:
                page.goto(worker.url + "/")
                expect(page.locator("#app")).to_be_hidden()

                page.fill("#user-id", str(USER))
                page.click("#login")
                expect(page.locator("#app")).to_be_visible()
                expect(page.locator("#logout")).to_be_visible()

                page.fill("#compose-text", text)
                with page.expect_response(
                    lambda r: r.url.endswith("/tweets") and r.request.method == "POST"
                ) as posted:
                    page.click("#post")
                assert posted.value.status == 201, posted.value.text()
                created: dict[str, Any] = posted.value.json()
                tweet_id = created["tweet_id_str"]
                expect(page.locator("#compose-text")).to_have_value("")

                # Polled every 2 s: wait for the push through Kafka to reach the timeline.
                item = page.locator("#latest li.item", has_text=text)
                expect(item).to_have_count(1, timeout=ARRIVAL_TIMEOUT_MS)
                expect(item).to_have_attribute("data-tweet-id", tweet_id)
                expect(item.locator(".text")).to_have_text(text)  # as text, never as HTML
                expect(item.locator(".text b")).to_have_count(0)
                expect(item.locator(".author")).to_have_text(f"user {USER}")
                # The author's own tweet is pushed into their own timeline.
                expect(item.locator(".source")).to_have_text("push")
            except BaseException:
                page.screenshot(path=str(screenshot), full_page=True)
                print(f"screenshot of the failure: {screenshot}", file=sys.stderr)
                print("\n".join(console[-50:]), file=sys.stderr)
                raise
        finally:
            browser.close()
