"""The README's demo runs green: real servers on loopback, real HTTP."""

from __future__ import annotations

import re

import httpx

from examples import demo, keys_app
from scout_auth import InMemoryKeyStore, KeyManager


def test_demo_walks_the_whole_story(capsys, monkeypatch):
    # As on a fresh machine: no pepper configured (the in-memory store has its own).
    monkeypatch.delenv("SCOUT_AUTH_LEGACY_PEPPER", raising=False)
    assert demo.main() == 0
    out = capsys.readouterr().out
    assert "BAD" not in out
    assert out.count("ok ") >= 38
    legacy = [line for line in out.splitlines() if "legacy" in line and "ok " in line]
    assert any("unchanged legacy client (Bearer <legacy>)" in line for line in legacy)
    assert any("legacy_disabled" in line for line in legacy)
    # A key made through the keys page's API: works, then 401 off, then 401 deleted.
    page = [line for line in out.splitlines() if "page" in line and "ok " in line]
    assert any("Create New Key" in line and "201" in line for line in page)
    assert any("the page's key calls the API" in line and "200" in line for line in page)
    assert any("once switched off" in line and "key_disabled" in line for line in page)
    assert any("once deleted" in line and "invalid_token" in line for line in page)
    # One URL a new user opens: the demo login of the keys page.
    urls = re.findall(r"http://127\.0\.0\.1:\d+\S*", out.split("all steps answered")[-1])
    assert len(urls) == 1
    assert urls[0].endswith(keys_app.LOGIN)


def test_demo_login_opens_the_keys_page_as_org_admin():
    store = InMemoryKeyStore()
    org = demo.org_for("starlette")
    made = KeyManager(store).create_key(org, "billing-sync prod", scopes=["files:read"])
    with demo.serve_starlette(store) as base_url, httpx.Client(base_url=base_url) as browser:
        assert browser.get("/settings/api-keys/").status_code == 303  # not signed in: login
        page = browser.get(keys_app.LOGIN, follow_redirects=True)
        assert page.status_code == 200
        assert page.url.path == f"/settings/api-keys/orgs/{org}"
        assert "Create New Key" in page.text  # an admin's page
        assert made.key.key_id in page.text
        assert "content-security-policy" in page.headers
        assert browser.get("/settings/api-keys/static/keys.js").status_code == 200
        # The login only ever sends back to the keys page.
        away = browser.get(f"{keys_app.LOGIN}?next=//evil.example/")
        assert away.headers["location"] == "/settings/api-keys/"
        # Another process's cookie (or none) is nobody.
        browser.cookies.clear()
        browser.cookies.set("demo_session", "guessed")
        assert browser.get(f"/settings/api-keys/api/orgs/{org}/keys").status_code == 401
