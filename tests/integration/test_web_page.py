"""The pages in a real browser. `GET /`: log in, page down with "Load older", like a post and see
its like count move, follow a user and see their posts announced as new posts and inserted, post
and see the post arrive. `GET /dashboard`: its panels draw the traffic they watch.

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
from tests.integration.test_timelines import activity, get_timeline, graph, tweet, wait_timeline

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
USER, FRIEND, STRANGER = 9, 51, 52
FRIEND_POSTS = 55  # more than a page of 50
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
def test_login_page_down_like_follow_and_see_new_posts(
    empty_broker: str, cluster: Cluster, tmp_path: Path
) -> None:
    try:
        from playwright.sync_api import Error as PlaywrightError
        from playwright.sync_api import expect, sync_playwright
    except ImportError as exc:
        unavailable(f"playwright is not installed ({exc}): pip install -e '.[dev]'")
    executable = chromium_path()

    worker = cluster.start_worker(HOMEMIXER_DEV_LOGIN="1")
    cluster.produce([activity(USER), graph("follow", USER, FRIEND)])
    assert get_timeline(worker, USER)[0] == 200  # materialise the home timeline
    cluster.produce([tweet(FRIEND) for _ in range(FRIEND_POSTS)] + [tweet(STRANGER) for _ in range(2)])
    wait_timeline(worker, USER, lambda body: len(body["items"]) == FRIEND_POSTS)
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

                latest = page.locator("#latest li.item")
                expect(latest).to_have_count(50)
                page.click("#latest-older")
                expect(latest).to_have_count(FRIEND_POSTS)
                expect(page.locator("#latest-older")).to_be_hidden()  # nothing older

                first = latest.first
                liked_id = first.get_attribute("data-tweet-id")
                like = first.locator("button[data-action=like]")
                expect(like).to_have_attribute("aria-pressed", "false")
                expect(first.locator(".likes")).to_have_text("0 likes")
                like.click()
                # The count moves once the like went through Kafka and the aggregator.
                expect(first.locator(".likes")).to_have_text("1 like", timeout=ARRIVAL_TIMEOUT_MS)
                expect(like).to_have_attribute("aria-pressed", "true")
                expect(like).to_have_text("Liked")
                # The friend is known to be followed: their posts' Follow buttons say so.
                expect(first.locator("button[data-action=follow]")).to_have_text("Following")

                # Following a user merges their posts in: announced, inserted only on a click.
                page.fill("#follow-id", str(STRANGER))
                page.click("#follow")
                banner = page.locator("#latest-new")
                expect(banner).to_have_text("2 new posts", timeout=ARRIVAL_TIMEOUT_MS)
                expect(latest).to_have_count(FRIEND_POSTS)
                banner.click()
                expect(latest).to_have_count(FRIEND_POSTS + 2)
                expect(banner).to_be_hidden()
                expect(latest.nth(0).locator(".author")).to_have_text(f"user {STRANGER}")
                expect(latest.nth(1).locator(".author")).to_have_text(f"user {STRANGER}")
                expect(latest.nth(0)).to_be_focused()

                page.fill("#compose-text", text)
                with page.expect_response(
                    lambda r: r.url.endswith("/tweets") and r.request.method == "POST"
                ) as posted:
                    page.click("#post")
                assert posted.value.status == 201, posted.value.text()
                created: dict[str, Any] = posted.value.json()
                tweet_id = created["tweet_id_str"]
                expect(page.locator("#compose-text")).to_have_value("")

                # Announced once the push through Kafka reached the timeline.
                expect(banner).to_have_text("1 new post", timeout=ARRIVAL_TIMEOUT_MS)
                banner.click()
                item = page.locator("#latest li.item", has_text=text)
                expect(item).to_have_count(1)
                expect(item).to_have_attribute("data-tweet-id", tweet_id)
                expect(item.locator(".text")).to_have_text(text)  # as text, never as HTML
                expect(item.locator(".text b")).to_have_count(0)
                expect(item.locator(".author")).to_have_text(f"user {USER}")
                # The author's own tweet is pushed into their own timeline.
                expect(item.locator(".source")).to_have_text("push")
                expect(latest).to_have_count(FRIEND_POSTS + 3)
                # What the buttons published reached the source topics as the contract has them.
                likes = cluster.read("engagement_events", lambda got: len(got) >= 1)
                assert [(e["type"], e["user_id"], str(e["tweet_id"])) for e in likes] == [
                    ("like", USER, liked_id)
                ]
            except BaseException:
                page.screenshot(path=str(screenshot), full_page=True)
                print(f"screenshot of the failure: {screenshot}", file=sys.stderr)
                print("\n".join(console[-50:]), file=sys.stderr)
                raise
        finally:
            browser.close()


@pytest.mark.slow
def test_the_dashboard_draws_its_panels_after_traffic(empty_broker: str, cluster: Cluster) -> None:
    try:
        from playwright.sync_api import expect, sync_playwright
    except ImportError as exc:
        unavailable(f"playwright is not installed ({exc}): pip install -e '.[dev]'")
    executable = chromium_path()
    worker = cluster.start_worker()
    cluster.produce([activity(USER), graph("follow", USER, FRIEND)])
    assert get_timeline(worker, USER)[0] == 200
    cluster.produce([tweet(FRIEND) for _ in range(5)])
    wait_timeline(worker, USER, lambda body: len(body["items"]) == 5)
    console: list[str] = []
    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=executable, headless=True, args=CHROMIUM_ARGS)
        try:
            page = browser.new_page()
            page.on("console", lambda msg: console.append(f"console.{msg.type}: {msg.text}"))
            page.on("pageerror", lambda err: console.append(f"page error: {err}"))
            page.goto(worker.url + "/dashboard")
            expect(page.locator("#ready-state")).to_have_text("ready", timeout=STEP_TIMEOUT_MS)
            # The worker's first samples can come after the first tweets were counted (its first lag
            # read waits for the broker): tweet once the page is drawing points.
            page.wait_for_function(
                """() => [...document.querySelectorAll('svg[data-panel="tweet_rate"] path')].some(
                     (p) => Number(p.dataset.points) >= 2)""",
                timeout=ARRIVAL_TIMEOUT_MS,
            )
            cluster.produce([tweet(FRIEND) for _ in range(5)])  # while the dashboard watches
            wait_timeline(worker, USER, lambda body: len(body["items"]) == 10)
            # A line of two points or more that rose above zero: the tweets were counted and drawn.
            page.wait_for_function(
                """() => [...document.querySelectorAll('svg[data-panel="tweet_rate"] path')].some(
                     (p) => Number(p.dataset.points) >= 2 && Number(p.dataset.peak) > 0
                       && /^M[^M]*L/.test(p.getAttribute("d")))""",
                timeout=ARRIVAL_TIMEOUT_MS,
            )
            expect(page.locator('svg[data-panel="read_latency"] path').first).to_be_attached()
            # The browser's own request for /favicon.ico is a 404; a script error or a refusal by the
            # Content-Security-Policy is not.
            refused = [line for line in console if "page error" in line or "Security Policy" in line]
            assert not refused, console
        finally:
            browser.close()
