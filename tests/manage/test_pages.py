"""The server-rendered pages on both mountings: access, escaping, headers, assets."""

from __future__ import annotations

import pytest

from .harness import MOUNT, Harness

MARKUP = '<script>alert("x")</script>'


def test_the_keys_page_escapes_what_users_typed(api: Harness) -> None:
    api.manager.create_key("org_1", MARKUP, description=f"desc {MARKUP}")
    page = api.call("GET", "/orgs/org_1")
    assert page.status == 200
    html = page.body.decode()
    assert MARKUP not in html
    assert "&lt;script&gt;alert(" in html
    assert page.headers["content-type"] == "text/html; charset=utf-8"
    csp = page.headers["content-security-policy"]
    assert "script-src 'self'" in csp
    assert "frame-ancestors 'none'" in csp
    assert page.headers["cache-control"] == "no-store"
    assert "<script>" not in html.replace(f'<script src="{MOUNT}/static/keys.js"', "")


def test_viewers_see_no_controls(api: Harness) -> None:
    api.manager.create_key("org_1", "billing-sync prod")
    admin = api.call("GET", "/orgs/org_1").body.decode()
    viewer = api.call("GET", "/orgs/org_1", user="viewer").body.decode()
    assert "Create New Key</button>" in admin
    for control in ("Create New Key</button>", "js-rotate", "js-delete"):
        assert control not in viewer


def test_key_detail_page_and_its_history(api: Harness) -> None:
    key_id = api.create()["key"]["id"]
    api.call("POST", f"/api/orgs/org_1/keys/{key_id}/disable")
    page = api.call("GET", f"/orgs/org_1/keys/{key_id}")
    assert page.status == 200
    html = page.body.decode()
    assert "billing-sync prod" in html
    assert "disabled" in html
    other = api.manager.create_key("org_2", "theirs").key.key_id
    assert api.call("GET", f"/orgs/org_1/keys/{other}").status == 404


def test_home_redirects_to_the_only_org_or_lists_them(api: Harness) -> None:
    one = api.call("GET", "/")
    assert one.status == 303
    assert one.headers["location"] == f"{MOUNT}/orgs/org_1"
    several = api.call("GET", "/", user="multi")
    assert several.status == 200
    assert "org_2" in several.body.decode()


def test_pages_without_a_principal() -> None:
    for kind in ("starlette", "flask"):
        api = Harness(kind, login_url="/login")
        answer = api.call("GET", "/orgs/org_1", user=None)
        assert answer.status == 303
        assert answer.headers["location"] == f"/login?next={MOUNT}/orgs/org_1"
        # The API never redirects: a script gets 401.
        assert api.call("GET", "/api/orgs/org_1/keys", user=None).status == 401
    assert Harness("starlette").call("GET", "/orgs/org_1", user=None).status == 401


def test_another_orgs_page_is_not_found(api: Harness) -> None:
    assert api.call("GET", "/orgs/org_1", user="other").status == 404


@pytest.mark.parametrize(
    ("name", "media_type"),
    [("keys.js", "text/javascript; charset=utf-8"), ("keys.css", "text/css; charset=utf-8")],
)
def test_static_assets_come_from_the_package(api: Harness, name: str, media_type: str) -> None:
    answer = api.call("GET", f"/static/{name}", user=None)
    assert answer.status == 200
    assert answer.headers["content-type"] == media_type
    assert answer.headers["x-content-type-options"] == "nosniff"
    assert answer.body


@pytest.mark.parametrize(
    "name", ["missing.js", "../__init__.py", "..%2F__init__.py", "%2e%2e/_asgi.py", "templates"]
)
def test_only_shipped_assets_are_served(api: Harness, name: str) -> None:
    assert api.call("GET", f"/static/{name}", user=None).status == 404


def test_a_page_without_an_audit_sink_says_so() -> None:
    from scout_auth import AsyncKeyManager, InMemoryKeyStore
    from scout_auth.manage import ManagementApp

    store = InMemoryKeyStore()
    app = ManagementApp(AsyncKeyManager(store), authorize=lambda r: None)
    assert app.audit is None
    assert not app.settings.has_audit
