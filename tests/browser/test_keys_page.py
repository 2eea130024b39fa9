"""The keys page in a real browser: every change a user makes reaches the protected API."""

from __future__ import annotations

import re
import time
from pathlib import Path
from typing import Any

import httpx

from tests.browser.conftest import Site
from tests.browser.site import attacker_app, serve

WHOAMI = "/api/whoami"


def expect(locator: Any) -> Any:
    """Playwright's retrying assertions (imported late: without playwright the fixture says why)."""
    from playwright.sync_api import expect as playwright_expect

    return playwright_expect(locator)


def call_api(site: Site, token: str) -> httpx.Response:
    """The protected endpoint, called with ``token`` as a bearer key."""
    return httpx.get(
        site.api_origin + WHOAMI, headers={"authorization": f"Bearer {token}"}, timeout=5
    )


def key_id(token: str) -> str:
    match = re.fullmatch(r"scout_sk_([a-z0-9]+)_\S+", token)
    assert match, "the dialog shows a scout_sk_ token"
    return match.group(1)


def row(page: Any, kid: str) -> Any:
    return page.locator(f'tr[data-key-id="{kid}"]')


def create_in_page(page: Any, name: str, shots: Path | None = None) -> str:
    """Open the create dialog, fill it, generate; the token read from the result dialog."""
    page.get_by_role("button", name="Create New Key").click()
    dialog = page.locator("#create-dialog")
    assert dialog.is_visible()
    page.get_by_label("Name", exact=True).fill(name)
    page.get_by_label("Description").fill("nightly invoice export")
    dialog.get_by_role("checkbox", name="drive:read").check()
    dialog.get_by_role("checkbox", name="reporter").check()
    page.get_by_label("Other scopes").fill("reports:*")
    page.get_by_label("In 30 days").check()
    page.get_by_label("IP allowlist").fill("127.0.0.1\n::1\n10.0.0.0/8")
    if shots is not None:
        page.screenshot(path=shots / "create-dialog.png")
    page.get_by_role("button", name="Generate").click()
    token_dialog = page.locator("#token-dialog")
    token_dialog.wait_for(state="visible")
    token: str = page.locator("#token-value").input_value()
    assert page.locator("#token-export").input_value() == f"export SCOUT_API_KEY={token}"
    assert "will not be shown again" in token_dialog.inner_text()
    if shots is not None:
        page.screenshot(path=shots / "token-dialog.png")
    return token


def close_token_dialog(page: Any) -> None:
    with page.expect_navigation():
        page.get_by_role("button", name="Done, I have copied it").click()
    assert page.locator("#token-dialog").is_visible() is False


def test_create_toggle_rotate_delete_in_the_page(login, site: Site, shots: Path) -> None:
    page = login("admin")
    assert page.url.endswith("/settings/api-keys/orgs/org_1")
    token = create_in_page(page, "billing-sync prod", shots)
    kid = key_id(token)
    assert call_api(site, token).status_code == 200
    close_token_dialog(page)
    record = row(page, kid)
    assert "Active" in record.locator(".badge").inner_text()
    assert "drive:read" in record.inner_text()
    assert "10.0.0.0/8" in record.inner_text()
    assert "alice@example.com" in record.inner_text()
    page.screenshot(path=shots / "list.png", full_page=True)

    # Off in the page: 401 at once; on again: 200.
    switch = record.get_by_role("switch", name="Enabled: billing-sync prod")
    switch.uncheck()
    expect(record.locator(".badge")).to_have_attribute("data-status", "disabled")
    refused = call_api(site, token)
    assert refused.status_code == 401
    assert refused.json()["code"] == "key_disabled"
    switch.check()
    expect(record.locator(".badge")).to_have_attribute("data-status", "active")
    assert call_api(site, token).status_code == 200

    # Rotate with one hour of grace: both tokens work.
    opener = record.get_by_role("button", name="Rotate billing-sync prod")
    opener.click()
    rotate = page.locator("#rotate-dialog")
    assert rotate.is_visible()
    page.get_by_label("1 hour").check()
    page.screenshot(path=shots / "rotate-dialog.png")
    rotate.get_by_role("button", name="Rotate key").click()
    page.locator("#token-dialog").wait_for(state="visible")
    assert "Both keys work until" in page.locator("#token-rotation").inner_text()
    new_token = page.locator("#token-value").input_value()
    page.screenshot(path=shots / "rotate-token-dialog.png")
    new_kid = key_id(new_token)
    assert new_kid != kid
    assert call_api(site, token).status_code == 200
    assert call_api(site, new_token).status_code == 200
    close_token_dialog(page)
    assert row(page, kid).locator(".badge").get_attribute("data-status") == "rotation_grace"

    # Delete the new key: the button waits for the exact name.
    row(page, new_kid).get_by_role("button", name="Delete billing-sync prod").click()
    dialog = page.locator("#delete-dialog")
    assert "permanent and immediate" in dialog.inner_text()
    confirm = dialog.get_by_role("button", name="Delete key permanently")
    page.get_by_label("Type the key name").fill("billing-sync")
    assert confirm.is_disabled()
    page.get_by_label("Type the key name").fill("billing-sync prod")
    assert confirm.is_enabled()
    page.screenshot(path=shots / "delete-confirm.png")
    with page.expect_navigation():
        confirm.click()
    assert row(page, new_kid).count() == 0
    gone = call_api(site, new_token)
    assert gone.status_code == 401
    assert gone.json()["code"] == "invalid_token"
    assert page.js_errors == []


def test_key_detail_page_edits_and_shows_history(login, site: Site, shots: Path) -> None:
    new = site.manager.create_key("org_1", "report-builder", scopes=["reports:read"])
    site.manager.disable_key(new.key.key_id)
    assert call_api(site, new.token).status_code == 401  # a refusal for the denials table
    site.manager.enable_key(new.key.key_id)
    page = login("admin")
    page.get_by_role("link", name="report-builder").click()
    page.wait_for_url(re.compile(f"/keys/{new.key.key_id}$"))
    assert page.get_by_role("heading", name=re.compile("report-builder")).is_visible()
    page.get_by_label("Description").fill("builds the weekly report")
    page.get_by_label("Scopes", exact=True).fill("reports:read reports:write")
    page.get_by_label("IP allowlist").fill("192.0.2.0/24")
    with page.expect_navigation():
        page.get_by_role("button", name="Save changes").click()
    details = page.locator(".facts").first.inner_text()
    assert "builds the weekly report" in details
    assert "reports:write" in details
    assert "192.0.2.0/24" in details
    history = page.locator("#history-table").inner_text()
    assert "created" in history
    assert "updated" in history or "scopes" in history
    # The verifier's audit buffer flushes within a moment.
    deadline = time.monotonic() + 3
    while page.locator("#denials-table").count() == 0 and time.monotonic() < deadline:
        time.sleep(0.1)
        page.reload()
    assert "key_disabled" in page.locator("#denials-table").inner_text()
    page.screenshot(path=shots / "detail.png", full_page=True)
    assert page.js_errors == []


def test_legacy_card_switch(login, site: Site, shots: Path) -> None:
    secret = "legacy-secret-of-org-1"
    site.manager.import_legacy_key("org_1", secret)
    assert call_api(site, secret).status_code == 200
    page = login("admin")
    card = page.locator("#legacy-card")
    text = card.inner_text()
    assert "Accepted" in text
    assert "in the last 30 days" in text
    assert "Bearer scout_sk_" in text
    assert "legacy-delete org_1" in text
    card.screenshot(path=shots / "legacy-card.png")
    card.get_by_role("switch", name="Accept the legacy key").uncheck()
    expect(page.locator("#legacy-state")).to_have_text("Switched off")
    refused = call_api(site, secret)
    assert refused.status_code == 401
    assert refused.json()["code"] == "legacy_disabled"
    card.get_by_role("switch", name="Accept the legacy key").check()
    expect(page.locator("#legacy-state")).to_have_text("Accepted")
    assert call_api(site, secret).status_code == 200


def test_viewer_sees_no_controls_and_cannot_post(login, site: Site) -> None:
    site.manager.create_key("org_1", "viewer-visible key")
    page = login("viewer")
    assert "viewer-visible key" in page.locator("#keys-table").inner_text()
    for selector in ("#create-open", ".js-enable", ".js-rotate", ".js-delete", "#legacy-switch"):
        assert page.locator(selector).count() == 0, selector
    assert page.locator("dialog").count() == 0
    answer = page.evaluate(
        """async () => {
            const r = await fetch(document.body.dataset.api + "/keys", {
                method: "POST", credentials: "same-origin",
                headers: {"Content-Type": "application/json", "x-scout-auth-request": "1"},
                body: JSON.stringify({name: "viewer made this"}),
            });
            return {status: r.status, body: await r.json()};
        }"""
    )
    assert answer["status"] == 403
    assert answer["body"]["code"] == "not_an_admin"
    assert not any(k.name == "viewer made this" for k in site.manager.list_keys("org_1"))


def test_other_org_admin_gets_404(login, site: Site) -> None:
    page = login("admin2")
    assert page.url.endswith("/orgs/org_2")
    response = page.goto(site.page_url("/orgs/org_1"))
    assert response.status == 404
    kid = site.manager.create_key("org_1", "not for org_2").key.key_id
    assert page.goto(site.page_url(f"/orgs/org_1/keys/{kid}")).status == 404
    page.goto(site.page_url("/orgs/org_2"))
    statuses = page.evaluate(
        """async (kid) => {
            const api = document.body.dataset.api.replace(/org_2$/, "org_1");
            const h = {"Content-Type": "application/json", "x-scout-auth-request": "1"};
            const list = await fetch(api + "/keys", {credentials: "same-origin"});
            const off = await fetch(api + "/keys/" + kid + "/disable",
                                    {method: "POST", headers: h, credentials: "same-origin"});
            return [list.status, off.status];
        }""",
        kid,
    )
    assert statuses == [404, 404]
    assert site.manager.get_key(kid).enabled


def test_cross_site_form_post_is_refused(login, site: Site) -> None:
    page = login("admin")  # the victim is signed in
    target = site.page_url("/api/orgs/org_1/keys")
    with serve(attacker_app(target)) as port:
        # Same site, other origin (another port of localhost): the cookie goes along.
        with page.expect_response(lambda r: r.request.method == "POST") as posted:
            page.goto(f"http://localhost:{port}/")
        answer = posted.value
        assert answer.status == 403
        assert answer.json()["code"] == "cross_site_request"
        # Another site altogether (127.0.0.1 vs localhost): no cookie even reaches it.
        with page.expect_response(lambda r: r.request.method == "POST") as posted:
            page.goto(f"http://127.0.0.1:{port}/")
        assert posted.value.status in (401, 403)
    assert not any(k.name == "planted" for k in site.manager.list_keys("org_1"))


def test_weak_name_warning_and_validation_messages(login, site: Site) -> None:
    page = login("admin")
    page.get_by_role("button", name="Create New Key").click()
    name = page.get_by_label("Name", exact=True)
    warning = page.locator("#create-name-warning")
    name.press_sequentially("key1")
    assert warning.is_visible()
    assert "does not say what the key is for" in warning.inner_text()
    name.fill("invoice-sync staging")
    assert warning.inner_text() == ""
    assert not warning.is_visible()

    # The allowlist is checked as you leave it, before anything is sent.
    ips = page.get_by_label("IP allowlist")
    ips.fill("10.0.0.300/8")
    page.get_by_role("button", name="Generate").click()
    assert "10.0.0.300/8" in page.locator("#create-ips-error").inner_text()
    assert ips.get_attribute("aria-invalid") == "true"
    assert page.locator("#token-dialog").is_visible() is False
    ips.fill("10.0.0.0/33")
    ips.blur()
    assert "prefix length" in page.locator("#create-ips-error").inner_text()
    ips.fill("")
    ips.blur()

    # What only the server knows comes back as its 422 message, in the dialog.
    page.get_by_label("Other scopes").fill('bad"scope')
    page.get_by_role("button", name="Generate").click()
    error = page.locator("#create-dialog .dialog-error")
    error.wait_for(state="visible")
    assert "scope" in error.inner_text()
    assert page.locator("#create-dialog").is_visible()
    assert not any(k.name == "invoice-sync staging" for k in site.manager.list_keys("org_1"))


def test_create_dialog_by_keyboard(login, site: Site) -> None:
    page = login("admin")
    for _ in range(30):
        if page.evaluate("document.activeElement.id") == "create-open":
            break
        page.keyboard.press("Tab")
    assert page.evaluate("document.activeElement.id") == "create-open"
    page.keyboard.press("Enter")
    assert page.locator("#create-dialog").is_visible()
    assert page.evaluate("document.activeElement.id") == "create-name"
    # Escape closes it and gives focus back to the button that opened it.
    page.keyboard.press("Escape")
    assert not page.locator("#create-dialog").is_visible()
    assert page.evaluate("document.activeElement.id") == "create-open"

    page.keyboard.press("Enter")
    page.keyboard.type("keyboard-only import")
    page.keyboard.press("Tab")
    assert page.evaluate("document.activeElement.id") == "create-description"
    page.keyboard.type("typed without a mouse")
    page.keyboard.press("Tab")
    page.keyboard.press("Space")  # the first catalogue entry or the scopes field
    page.get_by_label("Other scopes").focus()
    page.keyboard.type("drive:read")
    page.keyboard.press("Enter")  # submits the form
    page.locator("#token-dialog").wait_for(state="visible")
    assert page.evaluate("document.activeElement.closest('dialog')?.id") == "token-dialog"
    token = page.locator("#token-value").input_value()
    assert call_api(site, token).status_code == 200
    with page.expect_navigation():
        page.keyboard.press("Escape")
    assert "keyboard-only import" in page.locator("#keys-table").inner_text()


def test_phone_viewport_has_no_horizontal_scroll(login, site: Site, shots: Path) -> None:
    site.manager.create_key(
        "org_1",
        "a rather long key name for the mobile layout check",
        scopes=["reports:read", "drive:read", "drive:write"],
        allowed_ips=["2001:db8:1234:5678::/64", "203.0.113.0/24"],
    )
    page = login("admin", viewport={"width": 390, "height": 844})
    overflow = "document.documentElement.scrollWidth - document.documentElement.clientWidth"
    assert page.evaluate(overflow) <= 0
    page.screenshot(path=shots / "phone-list.png", full_page=True)
    page.get_by_role("button", name="Create New Key").click()
    assert page.evaluate(overflow) <= 0
    page.screenshot(path=shots / "phone-create-dialog.png")
    page.keyboard.press("Escape")
    page.locator("#keys-table a.key-name").first.click()
    page.wait_for_load_state()
    assert page.evaluate(overflow) <= 0
    page.screenshot(path=shots / "phone-detail.png", full_page=True)


def test_reveal_a_recoverable_key_with_a_typed_confirmation(login, site: Site, shots: Path) -> None:
    page = login("admin")
    page.get_by_role("button", name="Create New Key").click()
    page.get_by_label("Name", exact=True).fill("warehouse sync")
    page.get_by_label("Recoverable: org admins can view this key again later").check()
    page.get_by_role("button", name="Generate").click()
    page.locator("#token-dialog").wait_for(state="visible")
    token = page.locator("#token-value").input_value()
    assert "can reveal it again" in page.locator("#token-dialog").inner_text()
    close_token_dialog(page)

    record = row(page, key_id(token))
    record.get_by_role("button", name="Reveal warehouse sync").click()
    dialog = page.locator("#reveal-dialog")
    assert dialog.is_visible()
    show = dialog.get_by_role("button", name="Show the key")
    assert show.is_disabled()
    page.get_by_label("Confirm by writing its name").fill("warehouse sync")
    page.screenshot(path=shots / "reveal-confirm.png")
    show.click()
    page.locator("#token-dialog").wait_for(state="visible")
    assert page.locator("#token-value").input_value() == token
    assert call_api(site, token).status_code == 200


def test_key_hygiene_card_lists_what_needs_attention(login, site: Site, shots: Path) -> None:
    from datetime import UTC, datetime, timedelta

    soon = site.manager.create_key(
        "org_1", "hygiene expiring", expires_at=datetime.now(UTC) + timedelta(days=3)
    )
    old = site.manager.create_key("org_1", "hygiene rotated")
    new = site.manager.rotate_key(old.key.key_id, grace=timedelta(days=2))
    used = datetime.now(UTC) + timedelta(seconds=1)
    site.store.record_usage(old.key.key_id, 3, used, "::ffff:192.0.2.44")
    page = login("admin")
    card = page.locator("#hygiene-card")
    expect(card.get_by_role("heading", name="Key hygiene")).to_be_visible()
    expect(page.locator(f'#hygiene-expiring li[data-key-id="{soon.key.key_id}"]')).to_contain_text(
        "hygiene expiring"
    )
    grace = page.locator(f'#hygiene-grace li[data-key-id="{old.key.key_id}"]')
    expect(grace).to_contain_text("192.0.2.44")  # the address, stored normalised
    expect(grace).to_contain_text(new.key.key_id)
    card.screenshot(path=shots / "hygiene-card.png")
    # The windows are a plain GET form: the page answers with the new report.
    card.get_by_label("Expiring within (days)").fill("1")
    card.get_by_role("button", name="Update").click()
    page.wait_for_url(re.compile(r"expiring_days=1"))
    assert page.locator(f'#hygiene-expiring li[data-key-id="{soon.key.key_id}"]').count() == 0
    expect(page.get_by_label("Expiring within (days)")).to_have_value("1")
    # A link in the card leads to the key.
    grace.get_by_role("link", name="hygiene rotated").click()
    page.wait_for_url(re.compile(f"/keys/{old.key.key_id}$"))
    expect(page.locator("body")).to_contain_text("192.0.2.44")  # "Last used from"
    assert page.js_errors == []
