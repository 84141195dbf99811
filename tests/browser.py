"""Browser-test fixtures: the app over real HTTP, one headless Chromium per run, a page per test.

A test that takes ``page`` (or ``logged_in_page``) is a browser test: it gets the ``browser``
marker on its own (``-m "not browser"`` leaves them out) and runs on SQLite only. Its ``[mysql]``
variant is deselected, not skipped: the storage it reaches is tested on both databases elsewhere,
and a second browser pass over MariaDB would only double the time.

Loaded through ``pytest_plugins`` in ``tests/conftest.py``.
"""

from __future__ import annotations

import re
import shutil
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import pytest
from flask import Flask, got_request_exception
from werkzeug.serving import make_server

from tests.conftest import ADMIN_PASSWORD, require

if TYPE_CHECKING:
    from playwright.sync_api import Browser, Page

ARTIFACTS = Path(__file__).resolve().parent.parent / "test-artifacts"
# Headless Chromium as root needs --no-sandbox; the rest keeps it off a network it cannot reach.
# Playwright gives every launch a fresh temporary --user-data-dir (and refuses one in ``args``).
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]
_REPORTS = pytest.StashKey[dict[str, pytest.TestReport]]()


@dataclass(frozen=True)
class LiveServer:
    url: str


def save_screenshot(page: Page, name: str) -> Path:
    """Save a full-page screenshot of ``page`` as ``test-artifacts/<name>.png``."""
    ARTIFACTS.mkdir(exist_ok=True)
    path = ARTIFACTS / f"{re.sub(r'[^A-Za-z0-9_.-]+', '_', name)}.png"
    page.screenshot(path=path, full_page=True)
    return path


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]):
    # Keep each phase's report on the item so the ``page`` teardown knows whether the test failed.
    report = yield
    item.stash.setdefault(_REPORTS, {})[report.when] = report
    return report


@pytest.fixture
def live_server(app: Flask) -> Iterator[LiveServer]:
    """``app`` served over HTTP on 127.0.0.1 (a free port) from a background thread."""
    assert app.config.get("WTF_CSRF_ENABLED", True), "browser tests go through CSRF like a user"
    # A 500 in the server thread is only a log line and an error page: make it fail the test.
    errors: list[BaseException] = []

    def record(sender: Flask, exception: BaseException, **extra: object) -> None:
        errors.append(exception)

    got_request_exception.connect(record, app)
    server = make_server("127.0.0.1", 0, app, threaded=True)
    thread = threading.Thread(target=server.serve_forever, name="live_server", daemon=True)
    thread.start()
    try:
        yield LiveServer(url=f"http://127.0.0.1:{server.server_port}")
    finally:
        server.shutdown()
        thread.join()
        server.server_close()
        got_request_exception.disconnect(record, app)
    if errors:
        pytest.fail(f"the app raised while serving the browser: {errors[0]!r}")


@pytest.fixture(scope="session")
def browser() -> Iterator[Browser]:
    """One headless Debian Chromium for the whole run (Playwright's own download fails here)."""
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        require(False, "playwright is not installed (pip install -r requirements.txt)")
    executable = shutil.which("chromium")
    require(executable is not None, "chromium is not installed (apt-get install chromium)")
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(
            executable_path=executable, headless=True, args=CHROMIUM_ARGS
        )
        yield browser
        browser.close()


@pytest.fixture
def page(
    browser: Browser, live_server: LiveServer, request: pytest.FixtureRequest
) -> Iterator[Page]:
    """A fresh context and page on ``live_server``; a failed test leaves a screenshot behind."""
    context = browser.new_context(
        base_url=live_server.url, viewport={"width": 1400, "height": 900}
    )
    # The server is local and answers in milliseconds: fail fast, not after Playwright's 30 s.
    context.set_default_timeout(5_000)
    page = context.new_page()
    try:
        yield page
        reports = request.node.stash.get(_REPORTS, {}).values()
        if any(report.failed for report in reports):
            save_screenshot(page, f"failed-{request.node.nodeid}")
    finally:
        context.close()


@pytest.fixture
def logged_in_page(page: Page, admin_user: str) -> Page:
    """``page`` logged in as ``admin_user`` through the real login form, at /admin/."""
    page.goto("/admin/login")
    page.get_by_label("Username").fill(admin_user)
    page.get_by_label("Password").fill(ADMIN_PASSWORD)
    page.get_by_role("button", name="Log in").click()
    page.wait_for_url("**/admin/")
    return page
