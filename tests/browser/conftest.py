"""Browser tests of the keys page: Playwright driving Debian's Chromium (never a download).

Without ``/usr/bin/chromium`` or the ``playwright`` package the suite skips
on a laptop and fails under ``CI=true`` (``tests.conftest.unavailable``).
Screenshots of each main view go to ``$SCOUT_SCREENSHOTS``, by default
``test-output/browser/`` at the repository root (ignored by git).
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from scout_auth import InMemoryKeyStore, KeyManager
from tests.browser.site import COOKIE, MOUNT, create_app, serve
from tests.conftest import unavailable

CHROMIUM = os.environ.get("SCOUT_TEST_CHROMIUM", "/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]
ROOT = Path(__file__).resolve().parents[2]


@dataclass
class Site:
    """The running app: its store, a manager on it, and its URLs."""

    store: InMemoryKeyStore
    manager: KeyManager
    port: int

    @property
    def origin(self) -> str:
        """What the browser opens (``localhost``: same site as the attacker's page)."""
        return f"http://localhost:{self.port}"

    @property
    def api_origin(self) -> str:
        """What httpx calls (no name resolution question)."""
        return f"http://127.0.0.1:{self.port}"

    def page_url(self, path: str = "/") -> str:
        return f"{self.origin}{MOUNT}{path}"


@pytest.fixture(scope="module")
def site() -> Iterator[Site]:
    store = InMemoryKeyStore()
    manager = KeyManager(store, audit=store.audit_sink())
    manager.publish_scope("org_1", "drive:read", "Read files")
    manager.publish_scope("org_1", "reports:read", "Read reports")
    manager.put_role("org_1", "reporter", ["reports:read"])
    with serve(create_app(store)) as port:
        yield Site(store, manager, port)


# Module scope, not session: Playwright's sync API keeps an event loop
# running in this thread while it is open, and the async tests of other
# modules (anyio) cannot start one beside it.
@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    if not os.path.exists(CHROMIUM):
        unavailable(f"Chromium not found at {CHROMIUM} (apt-get install chromium)")
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        unavailable("playwright is not installed (pip install playwright; no browser download)")
    with sync_playwright() as playwright:
        chromium = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        try:
            yield chromium
        finally:
            chromium.close()


@pytest.fixture(scope="session")
def shots() -> Path:
    folder = Path(os.environ.get("SCOUT_SCREENSHOTS", ROOT / "test-output" / "browser"))
    folder.mkdir(parents=True, exist_ok=True)
    return folder


@pytest.fixture
def login(browser: Any, site: Site) -> Iterator[Callable[..., Any]]:
    """``login("admin")``: a fresh browser context signed in as that user, on the keys page."""
    contexts: list[Any] = []

    def open_page(user: str, *, viewport: dict[str, int] | None = None) -> Any:
        context = browser.new_context(
            viewport=viewport or {"width": 1280, "height": 900}, base_url=site.origin
        )
        context.set_default_timeout(5000)
        contexts.append(context)
        page = context.new_page()
        errors: list[str] = []
        page.on("pageerror", lambda exc: errors.append(str(exc)))
        page.js_errors = errors
        page.goto(f"{site.origin}/login?as={user}")
        assert any(c["name"] == COOKIE for c in context.cookies())
        return page

    yield open_page
    for context in contexts:
        context.close()
