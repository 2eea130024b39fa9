"""Attacks on the management API and keys page, through both mountings (issue 13 review).

Each test is one attack sent as real requests through :class:`Harness`
(the Starlette app and the Flask blueprint). A defence that holds is a
plain test. The attacks that worked when this file was written (a
``keys:manage`` key loosening or widening keys, wildcard root keys, expiry
and allowlist ceilings, year-9999 expiries, lone surrogates in names,
credentials in a request's repr, Flask answering odd methods its own way)
are closed; their tests stay as regressions.
"""

from __future__ import annotations

import base64
import re
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from html.parser import HTMLParser
from importlib import resources
from typing import Any
from urllib.parse import quote

import pytest

from scout_auth import InMemoryKeyStore, Verifier
from scout_auth._manage.http import ManageRequest
from scout_auth.exceptions import AuthError
from scout_auth.manage import CSRF_HEADER, Principal

from .harness import MOUNT, Answer, Harness
from .test_threats import snapshot

ORG = "/api/orgs/org_1"

# ---- helpers ---------------------------------------------------------------


def safe_call(api: Harness, method: str, path: str, **how: Any) -> Answer:
    """``api.call``, with an exception the app let escape read as the 500 it becomes."""
    try:
        return api.call(method, path, **how)
    except Exception:  # Starlette's TestClient re-raises what the app raised
        return Answer(500, {}, b"")


def as_key(token: str) -> dict[str, Any]:
    """How a machine caller sends: its bearer token, no session, no CSRF header."""
    return {"user": None, "csrf": False, "token": token}


def verifies(store: InMemoryKeyStore, token: str) -> frozenset[str] | bool | None:
    """The token's effective scopes when it verifies, else ``False``."""
    verifier = Verifier(store, cache_ttl=0, legacy_bearer=False)
    try:
        return verifier.verify_token(token).scopes
    except AuthError:
        return False
    finally:
        verifier.close()


def bot(api: Harness, scopes: list[str] | None = None, **more: Any) -> tuple[str, str]:
    """A keys:manage key (token, id) whose ceiling is ``scopes``."""
    new = api.manager.create_key(
        "org_1", "provisioning bot", scopes=scopes or ["keys:manage", "drive:read"], **more
    )
    return new.token, new.key.key_id


# ---- 1. Privilege escalation by a keys:manage key ---------------------------

# (case, setup(api) -> (method, path, body)); the bot holds keys:manage and drive:read.
Setup = Callable[[Harness], tuple[str, str, Any]]


def _wide_role_key(api: Harness) -> str:
    api.manager.put_role("org_1", "billing", ["billing:read"])
    return api.manager.create_key(
        "org_1", "billing", scopes=["drive:read"], roles=["billing"]
    ).key.key_id


def _narrow_key(api: Harness) -> str:
    return api.manager.create_key("org_1", "drive export", scopes=["drive:read"]).key.key_id


CEILING_HOLDS: list[tuple[str, Setup]] = [
    ("wildcard of a held scope", lambda api: ("POST", f"{ORG}/keys",
        {"name": "x sync", "scopes": ["drive:*"]})),
    ("sub-wildcard of a held scope", lambda api: ("POST", f"{ORG}/keys",
        {"name": "x sync", "scopes": ["drive:read:*"]})),
    ("star", lambda api: ("POST", f"{ORG}/keys", {"name": "x sync", "scopes": ["*"]})),
    ("keys:*", lambda api: ("POST", f"{ORG}/keys", {"name": "x sync", "scopes": ["keys:*"]})),
    ("empty-prefix wildcard", lambda api: ("POST", f"{ORG}/keys",
        {"name": "x sync", "scopes": [":*"]})),
    ("case variant", lambda api: ("POST", f"{ORG}/keys",
        {"name": "x sync", "scopes": ["Drive:Read"]})),
    ("scopes absent (unrestricted)", lambda api: ("POST", f"{ORG}/keys", {"name": "x sync"})),
    ("role holding star", lambda api: (
        api.manager.put_role("org_1", "god", ["*"]),
        ("POST", f"{ORG}/keys", {"name": "x sync", "scopes": [], "roles": ["god"]}))[1]),
    ("put_role wider, then assign", lambda api: ("PUT", f"{ORG}/roles/ops",
        {"scopes": ["billing:read"]})),
    ("put_role with star", lambda api: ("PUT", f"{ORG}/roles/ops", {"scopes": ["*"]})),
    ("PATCH a wider role onto a key", lambda api: (
        api.manager.put_role("org_1", "billing", ["billing:read"]),
        ("PATCH", f"{ORG}/keys/{_narrow_key(api)}", {"roles": ["billing"]}))[1]),
    ("PATCH scopes null", lambda api: ("PATCH", f"{ORG}/keys/{_narrow_key(api)}",
        {"scopes": None})),
    ("rotate a key wider through a role", lambda api: ("POST",
        f"{ORG}/keys/{_wide_role_key(api)}/rotate", {})),
    ("rotate an unrestricted key", lambda api: ("POST",
        f"{ORG}/keys/{api.manager.create_key('org_1', 'all of it').key.key_id}/rotate", {})),
]  # fmt: skip


@pytest.mark.parametrize("case", CEILING_HOLDS, ids=lambda c: c[0])
def test_a_manage_key_cannot_grant_past_its_ceiling(api: Harness, case: Any) -> None:
    _, setup = case
    token, _ = bot(api)
    method, path, body = setup(api)
    before = snapshot(api.manager)
    answer = api.call(method, path, json=body, **as_key(token))
    assert (answer.status, answer.code) == (403, "scope_ceiling"), answer.body
    assert snapshot(api.manager) == before


@pytest.mark.parametrize("target", ["itself", "another key"])
def test_a_role_based_manage_key_cannot_become_unrestricted(api: Harness, target: str) -> None:
    # A key made the usual KeyManager way: scopes left out (None) and a role.
    # Its effective scopes are the role's, so it manages keys within them.
    api.manager.put_role("org_1", "manager", ["keys:manage", "drive:read"])
    me = api.manager.create_key("org_1", "provisioning bot", roles=["manager"])
    assert verifies(api.store, me.token) == frozenset({"keys:manage", "drive:read"})
    victim = me
    if target == "another key":
        api.manager.put_role("org_1", "reader", ["drive:read"])
        victim = api.manager.create_key("org_1", "drive export", roles=["reader"])
    answer = api.call(
        "PATCH", f"{ORG}/keys/{victim.key.key_id}", json={"roles": []}, **as_key(me.token)
    )
    # What happens today: 200, and the victim's token now verifies unrestricted (None).
    assert verifies(api.store, victim.token) is not None
    assert (answer.status, answer.code) == (403, "scope_ceiling")


@pytest.mark.parametrize("scopes", [["*"], ["keys:*"]], ids=["star", "keys-star"])
def test_only_an_explicit_keys_manage_scope_manages_keys(api: Harness, scopes: list[str]) -> None:
    token = api.manager.create_key("org_1", "wildcard key", scopes=scopes).token
    answer = api.call("GET", f"{ORG}/keys", **as_key(token))
    assert (answer.status, answer.code) == (403, "insufficient_scope")


def test_a_star_key_today_mints_an_unrestricted_key(api: Harness) -> None:
    # The consequence of the finding above, pinned so a fix is a conscious choice.
    token = api.manager.create_key("org_1", "wildcard key", scopes=["*"]).token
    answer = api.call("POST", f"{ORG}/keys", json={"name": "minted"}, **as_key(token))
    if answer.status == 201:
        assert answer.json()["key"]["scopes"] is None
    else:
        assert answer.status == 403


def _disabled_wide_key(api: Harness) -> str:
    key = api.manager.create_key("org_1", "admin console", scopes=["*"]).key.key_id
    api.manager.disable_key(key)
    return key


def _fenced_wide_key(api: Harness) -> str:
    soon = datetime.now(UTC) + timedelta(days=1)
    return api.manager.create_key(
        "org_1", "admin console", scopes=["*"], allowed_ips=["10.0.0.0/8"], expires_at=soon
    ).key.key_id


def _switched_off_legacy(api: Harness) -> tuple[str, str, None]:
    api.manager.import_legacy_key("org_1", "old-shared-secret-123")
    api.manager.disable_legacy("org_1")
    return "POST", f"{ORG}/legacy/enable", None


LOOSENING: list[tuple[str, Setup]] = [
    ("enable a disabled key that holds more", lambda api: ("POST",
        f"{ORG}/keys/{_disabled_wide_key(api)}/enable", None)),
    ("PATCH enabled=true on a key that holds more", lambda api: ("PATCH",
        f"{ORG}/keys/{_disabled_wide_key(api)}", {"enabled": True})),
    ("lift the IP allowlist of a key that holds more", lambda api: ("PATCH",
        f"{ORG}/keys/{_fenced_wide_key(api)}", {"allowed_ips": None})),
    ("lift the expiry of a key that holds more", lambda api: ("PATCH",
        f"{ORG}/keys/{_fenced_wide_key(api)}", {"expires_at": None})),
    ("switch the org's legacy secret back on", _switched_off_legacy),
]  # fmt: skip


@pytest.mark.parametrize("case", LOOSENING, ids=lambda c: c[0])
def test_a_manage_key_cannot_loosen_a_wider_credential(api: Harness, case: Any) -> None:
    _, setup = case
    token, _ = bot(api)
    method, path, body = setup(api)
    before = snapshot(api.manager)
    answer = api.call(method, path, json=body, **as_key(token))
    assert answer.status == 403, answer.body
    assert snapshot(api.manager) == before


@pytest.mark.parametrize("how", ["PATCH itself", "mint a successor"])
def test_an_expiring_manage_key_cannot_outlive_itself(api: Harness, how: str) -> None:
    soon = datetime.now(UTC) + timedelta(days=1)
    token, key_id = bot(api, expires_at=soon)
    if how == "PATCH itself":
        answer = api.call("PATCH", f"{ORG}/keys/{key_id}", json={"expires_at": None},
                          **as_key(token))  # fmt: skip
        assert answer.status == 403 or api.manager.get_key(key_id).expires_at is not None
    else:
        body = {"name": "successor bot", "scopes": ["keys:manage", "drive:read"]}
        answer = api.call("POST", f"{ORG}/keys", json=body, **as_key(token))
        expires = answer.json()["key"]["expires_at"] if answer.status == 201 else None
        assert answer.status == 403 or (
            expires is not None and datetime.fromisoformat(expires) <= soon
        )


def test_a_manage_key_acts_under_its_own_name_only(api: Harness) -> None:
    token, key_id = bot(api)
    body = {"name": "x sync", "scopes": ["drive:read"]}
    # No body field names the actor: each is refused as unknown, nothing written.
    for field in ("actor", "created_by", "org_id", "id", "token", "enabled"):
        answer = api.call("POST", f"{ORG}/keys", json={**body, field: "alice"}, **as_key(token))
        assert (answer.status, answer.code) == (422, "invalid_argument"), field
    assert len(api.manager.list_keys("org_1")) == 1
    made = api.call("POST", f"{ORG}/keys", json=body, **as_key(token))
    assert made.json()["key"]["created_by"] == f"key:{key_id}"
    event = api.call("GET", f"{ORG}/audit?action=created").json()["items"][0]
    assert event["actor"] == f"key:{key_id}"


# ---- 2. Reaching another org -----------------------------------------------

ORG_VARIANTS = [
    "org_1", "ORG_1", "Org_1", "org%5F1", "org%255F1", "org_1%20", "%20org_1", "org_1.",
    "org_%EF%BC%91",  # fullwidth digit one (NFKC: org_1)
    "org%E2%80%8B_1",  # zero-width space
    "org_1%00", "org_1%0d%0a", "org_2%2F..%2Forg_1", "..%2Forg_1", "org_1%2F", "org_1;", "org_1%23",
]  # fmt: skip


@pytest.mark.parametrize("org", ORG_VARIANTS)
@pytest.mark.parametrize("route", ["/keys", "/legacy", "/roles", "/scopes", "/audit", ""])
def test_another_orgs_admin_reaches_org_1_by_no_spelling(
    api: Harness, org: str, route: str
) -> None:
    api.manager.create_key("org_1", "crm export", scopes=["drive:read"])
    path = f"/orgs/{org}" if route == "" else f"/api/orgs/{org}{route}"
    answer = api.call("GET", path, user="other")
    assert answer.status == 404, (path, answer.status)
    assert b"crm export" not in answer.body


KEY_ROUTES = [
    ("GET", "/keys/{key}", None), ("PATCH", "/keys/{key}", {"description": "mine now"}),
    ("DELETE", "/keys/{key}", None), ("POST", "/keys/{key}/enable", None),
    ("POST", "/keys/{key}/disable", None), ("POST", "/keys/{key}/rotate", {}),
]  # fmt: skip


@pytest.mark.parametrize(("method", "route", "body"), KEY_ROUTES)
@pytest.mark.parametrize("caller", ["org_2 admin", "org_2 manage key"])
def test_an_org_1_key_through_an_org_2_path_is_404(
    api: Harness, method: str, route: str, body: Any, caller: str
) -> None:
    key = api.manager.create_key("org_1", "crm export", scopes=["drive:read"]).key.key_id
    how: dict[str, Any] = {"user": "other"}
    if caller == "org_2 manage key":
        how = as_key(api.manager.create_key("org_2", "bot", scopes=["keys:manage", "*"]).token)
    before = snapshot(api.manager)
    path = "/api/orgs/org_2" + route.replace("{key}", key)
    answer = api.call(method, path, json=body, **how)
    assert (answer.status, answer.code) == (404, "not_found"), answer.body
    assert snapshot(api.manager) == before
    page = api.call("GET", f"/orgs/org_2/keys/{key}", **how)
    assert page.status in (401, 404)  # a key reads no pages (no session): 401


def test_the_audit_trail_filter_does_not_cross_orgs(api: Harness) -> None:
    theirs = api.manager.create_key("org_2", "their key").key.key_id
    api.manager.disable_key(theirs, actor="olga@example.com")
    for query in (f"key_id={theirs}", "actor=olga%40example.com", "action=disabled", "limit=1000"):
        answer = api.call("GET", f"{ORG}/audit?{query}")
        assert answer.status == 200
        assert all(e["org_id"] == "org_1" for e in answer.json()["items"]), query
        assert theirs.encode() not in answer.body


# ---- 3. CSRF ---------------------------------------------------------------

CSRF_REFUSED: list[tuple[str, dict[str, str], bool]] = [
    # (case, headers, send the CSRF header)
    ("header present, but cross-site fetch", {"sec-fetch-site": "cross-site"}, True),
    ("header present, foreign origin", {"origin": "http://evil.example"}, True),
    ("origin on another port", {"origin": "http://testserver:8080"}, True),
    ("origin over another scheme", {"origin": "https://testserver"}, True),
    ("origin suffix trick", {"origin": "http://testserver.evil.example"}, True),
    ("origin with a path trick", {"origin": "http://evil.example/http://testserver"}, True),
    ("origin userinfo trick", {"origin": "http://testserver@evil.example"}, True),
    ("two origins joined", {"origin": "http://testserver, http://evil.example"}, True),
    ("two fetch sites joined", {"sec-fetch-site": "same-origin, cross-site"}, True),
    ("blank CSRF header", {CSRF_HEADER: "  "}, False),
    ("no header, same-origin fetch", {"sec-fetch-site": "same-origin"}, False),
    ("no header, own origin", {"origin": "http://testserver"}, False),
    ("no header, method override to DELETE", {"x-http-method-override": "DELETE"}, False),
]


@pytest.mark.parametrize("case", CSRF_REFUSED, ids=lambda c: c[0])
@pytest.mark.parametrize("route", ["create", "disable", "delete", "legacy"])
def test_csrf_is_refused(api: Harness, case: Any, route: str) -> None:
    _, headers, csrf = case
    key = api.manager.create_key("org_1", "crm export", scopes=["drive:read"]).key.key_id
    api.manager.import_legacy_key("org_1", "old-shared-secret-123")
    method, path, body = {
        "create": ("POST", f"{ORG}/keys", {"name": "x sync", "scopes": []}),
        "disable": ("POST", f"{ORG}/keys/{key}/disable", None),
        "delete": ("DELETE", f"{ORG}/keys/{key}", None),
        "legacy": ("POST", f"{ORG}/legacy/disable", None),
    }[route]
    before = snapshot(api.manager)
    answer = api.call(method, path, json=body, headers=headers, csrf=csrf)
    assert answer.status == 403, answer.body
    assert answer.code in ("cross_site_request", "csrf_header_missing")
    assert snapshot(api.manager) == before


NOT_JSON = [
    "text/plain", "text/plain; charset=utf-8", "application/x-www-form-urlencoded",
    "multipart/form-data; boundary=x", "application/jsonx", "application/json-patch+json",
    "application/json, text/plain", "", "text/json",
]  # fmt: skip


@pytest.mark.parametrize("media", NOT_JSON)
def test_a_json_body_sent_as_another_media_type_is_415(api: Harness, media: str) -> None:
    headers = {"content-type": media} if media else {}
    body = b'{"name": "x sync", "scopes": []}'
    answer = api.call("POST", f"{ORG}/keys", body=body, headers=headers)
    assert (answer.status, answer.code) == (415, "unsupported_media_type")
    assert api.manager.list_keys("org_1") == []


@pytest.mark.parametrize(
    "media", ["Application/JSON", "application/json; charset=utf-8", " application/json ;x=1"]
)
def test_json_media_type_spellings_are_accepted(api: Harness, media: str) -> None:
    body = b'{"name": "x sync", "scopes": []}'
    answer = api.call("POST", f"{ORG}/keys", body=body, headers={"content-type": media})
    assert answer.status == 201


@pytest.mark.parametrize("method", ["GET", "HEAD", "OPTIONS"])
@pytest.mark.parametrize(
    "override", ["x-http-method-override", "x-method-override", "x-http-method"]
)
def test_safe_methods_and_override_headers_change_nothing(
    api: Harness, method: str, override: str
) -> None:
    key = api.manager.create_key("org_1", "crm export", scopes=["drive:read"]).key.key_id
    before = snapshot(api.manager)
    for path in (
        f"{ORG}/keys/{key}",
        f"{ORG}/keys/{key}/disable",
        f"{ORG}/keys/{key}?_method=DELETE",
    ):
        answer = api.call(method, path, csrf=False, headers={override: "DELETE"})
        assert answer.status in (200, 405), (method, path, answer.status)
        assert not any(h.startswith("access-control-") for h in answer.headers)
    assert snapshot(api.manager) == before


# ---- 4. Token leakage ------------------------------------------------------


def test_a_token_is_shown_once_and_never_again(api: Harness) -> None:
    created = api.create(scopes=["drive:read"], description="nightly")
    key_id, token = created["key"]["id"], created["token"]
    secret = token.rsplit("_", 1)[1]
    rotated = api.call("POST", f"{ORG}/keys/{key_id}/rotate", json={"grace_seconds": 60})
    assert rotated.status == 201
    new = rotated.json()
    assert secret not in rotated.body.decode()  # the old key's token is not repeated
    assert token not in rotated.headers.get("location", "")
    assert new["token"] not in rotated.headers.get("location", "")
    for path in (f"{ORG}/keys", f"{ORG}/keys/{key_id}", f"{ORG}/keys/{new['key']['id']}",
                 f"{ORG}/audit?limit=1000", "/orgs/org_1", f"/orgs/org_1/keys/{key_id}",
                 f"/orgs/org_1/keys/{new['key']['id']}", f"{ORG}/keys?q={key_id}"):  # fmt: skip
        shown = api.call("GET", path)
        assert shown.status == 200, path
        text = shown.body.decode()
        for value in (secret, new["token"].rsplit("_", 1)[1]):
            assert value not in text, path
            assert value not in str(shown.headers), path


def test_a_bad_token_is_not_echoed(api: Harness) -> None:
    secret = "SECRETSECRETSECRETSECRET"
    for header in (f"Bearer scout_sk_aaaaaaaaaaaaaaaaaaaa_{secret}", f"Bearer scout_sk_{secret}"):
        answer = api.call("GET", f"{ORG}/keys", user=None, csrf=False,
                          headers={"authorization": header})  # fmt: skip
        assert answer.status == 401
        assert secret not in answer.body.decode() + str(answer.headers)


def test_a_request_repr_hides_credentials() -> None:
    request = ManageRequest(
        method="POST", path="/api/orgs/org_1/keys", query="",
        headers={"authorization": "Bearer scout_sk_abc_SECRET", "cookie": "session=COOKIE"},
        body=b"", origin="http://testserver", mount=MOUNT, now=0.0,
    )  # fmt: skip
    text = repr(request)
    assert "SECRET" not in text
    assert "COOKIE" not in text


# ---- 5. XSS and template injection in the pages -----------------------------

XSS = '"><script>alert(1)</script><img src=x onerror=alert(2)>{{7*7}}{% raw %}'
TOKEN_XSS = "<svg/onload=alert(3)>"  # a valid scope / role name: printable ASCII, no space


class _Tags(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.found: list[tuple[str, list[tuple[str, str | None]]]] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.found.append((tag, attrs))


def assert_inert(html: str) -> None:
    parser = _Tags()
    parser.feed(html)
    for tag, attrs in parser.found:
        assert tag not in ("img", "svg", "iframe", "object", "embed"), tag
        if tag == "script":
            assert (dict(attrs).get("src") or "").endswith("/static/keys.js"), attrs
        for name, value in attrs:
            assert not name.startswith("on"), (tag, name)
            assert not (value or "").strip().lower().startswith(("javascript:", "data:")), value
    assert "{{7*7}}" in html  # shown as text, never evaluated


def hostile_principal(org: str) -> Callable[[Any], Principal]:
    def authorize(request: Any) -> Principal:
        return Principal("{{7*7}}<script>alert(5)</script>@example.com", admin_orgs=[org, "org_2"])

    return authorize


@pytest.mark.parametrize("kind", ["starlette", "flask"])
@pytest.mark.parametrize("org", ["org_1", '"><svg onload=alert(4)>{{7*7}}'])
def test_the_pages_render_hostile_data_as_text(kind: str, org: str) -> None:
    api = Harness(kind, authorize=hostile_principal(org))
    api.manager.publish_scope(org, TOKEN_XSS, XSS)
    api.manager.put_role(org, TOKEN_XSS, [TOKEN_XSS])
    seg = quote(org, safe="")
    created = api.call("POST", f"/api/orgs/{seg}/keys", json={
        "name": XSS, "description": XSS, "scopes": [TOKEN_XSS], "roles": [TOKEN_XSS],
    })  # fmt: skip
    assert created.status == 201, created.body
    key = created.json()["key"]["id"]
    api.call("POST", f"/api/orgs/{seg}/keys/{key}/disable")
    for path in ("/", f"/orgs/{seg}", f"/orgs/{seg}/keys/{key}", f"/orgs/{seg}?q={quote(XSS)}"):
        answer = api.call("GET", path)
        assert answer.status == 200, (path, answer.status)
        assert answer.headers["content-type"].startswith("text/html")
        assert "script-src 'self'" in answer.headers["content-security-policy"]
        assert_inert(answer.body.decode())


def test_keys_js_writes_no_markup_and_forgets_the_token() -> None:
    script = (resources.files("scout_auth.manage") / "static" / "keys.js").read_text()
    for sink in ("innerHTML", "outerHTML", "insertAdjacentHTML", "document.write", "eval(",
                 "new Function", "setTimeout(\"", "srcdoc"):  # fmt: skip
        assert sink not in script, sink
    close = script[script.index('tokenDialog.addEventListener("close"') :]
    close = close[: close.index("});")]
    assert '$("#token-value").value = ""' in close
    assert '$("#token-export").value = ""' in close


def test_the_page_never_carries_a_token(api: Harness) -> None:
    api.create(scopes=["drive:read"])
    html = api.call("GET", "/orgs/org_1").body.decode()
    assert re.search(r"scout_sk_[a-z0-9]+_[A-Za-z0-9]{20,}", html) is None
    assert '<textarea id="token-value" class="secret" rows="2" readonly' in html
    assert re.search(r'id="token-value"[^>]*>\s*</textarea>', html)


def test_a_viewer_page_has_no_controls(api: Harness) -> None:
    api.create(scopes=["drive:read"])
    html = api.call("GET", "/orgs/org_1", user="viewer").body.decode()
    for control in ("create-open", "token-dialog", "js-rotate", "js-delete", "js-enable"):
        assert control not in html, control


# ---- 6. Header injection ---------------------------------------------------


@pytest.mark.parametrize("kind", ["starlette", "flask"])
def test_crlf_in_an_org_id_stays_inside_location(kind: str) -> None:
    evil = "org\r\nSet-Cookie: pwned=1"

    def authorize(request: Any) -> Principal:
        return Principal("alice@example.com", admin_orgs=[evil])

    api = Harness(kind, authorize=authorize)
    answer = api.call("GET", "/")
    assert answer.status == 303
    assert "set-cookie" not in answer.headers
    assert "\r" not in answer.headers["location"]
    assert "\n" not in answer.headers["location"]
    assert answer.headers["location"].endswith("/orgs/org%0D%0ASet-Cookie%3A%20pwned%3D1")


@pytest.mark.parametrize(
    "path",
    ["/orgs/org_1%0d%0aSet-Cookie:%20x=1", "/orgs/org_1%0aLocation:%20http://evil",
     "/orgs/%0d%0a/keys/x", f"{ORG}/keys/x%0d%0aSet-Cookie:%20x=1"],
)  # fmt: skip
@pytest.mark.parametrize("kind", ["starlette", "flask"])
def test_crlf_in_a_path_is_404_and_never_a_header(kind: str, path: str) -> None:
    api = Harness(kind, login_url="https://app.example/login?x=1")
    for user in (None, "admin"):
        answer = api.call("GET", path, user=user)
        assert answer.status == 404, (path, user, answer.status)
        assert "set-cookie" not in answer.headers
        assert "location" not in answer.headers


@pytest.mark.parametrize("kind", ["starlette", "flask"])
def test_the_login_redirect_stays_on_the_host(kind: str) -> None:
    api = Harness(kind, login_url="/login")
    for path in (
        "/orgs/%2F%2Fevil.example",
        "/orgs/http:%2F%2Fevil.example",
        "/orgs/@evil.example",
    ):
        answer = api.call("GET", path, user=None)
        if answer.status == 303:
            location = answer.headers["location"]
            assert location.startswith("/login?next=/settings/api-keys/orgs/"), location
            assert "//" not in location.split("next=", 1)[1], location


# ---- 7. Odd input: an answer, never a 500 -----------------------------------

BODIES: list[tuple[str, bytes]] = [
    ("int past the digit limit", b'{"name": "x sync", "expires_in_days": ' + b"9" * 5000 + b"}"),
    ("huge int", b'{"name": "x sync", "expires_in_days": 99999999999999999999999}'),
    ("float for int", b'{"name": "x sync", "expires_in_days": 30.0}'),
    ("1e400", b'{"name": "x sync", "expires_in_days": 1e400}'),
    ("NaN", b'{"name": "x sync", "expires_in_days": NaN}'),
    ("Infinity", b'{"name": "x sync", "expires_in_days": Infinity}'),
    ("-Infinity in a list", b'{"name": "x sync", "scopes": [-Infinity]}'),
    ("bool for int", b'{"name": "x sync", "expires_in_days": true}'),
    ("string for int", b'{"name": "x sync", "expires_in_days": "30"}'),
    ("duplicate keys", b'{"name": "x sync", "name": ["a"]}'),
    ("deep nesting", b'{"name": ' + b"[" * 30000 + b"]" * 30000 + b"}"),
    ("deep object nesting", b'{"a":' * 10000 + b"1" + b"}" * 10000),
    ("top-level array", b"[]"),
    ("top-level string", b'"x"'),
    ("top-level null", b"null"),
    ("not UTF-8", b'{"name": "\xff\xfe"}'),
    ("UTF-16 with BOM", '{"name": "x sync", "scopes": []}'.encode("utf-16")),
    ("NUL in name", b'{"name": "x\\u0000y"}'),
    ("NUL in description", b'{"name": "x sync", "description": "a\\u0000b"}'),
    ("C1 control in name", b'{"name": "x\\u0085y"}'),
    ("surrogate in description", b'{"name": "x sync", "description": "a\\ud800b"}'),
    ("surrogate in a scope", b'{"name": "x sync", "scopes": ["a\\ud800"]}'),
    ("surrogate in a role", b'{"name": "x sync", "roles": ["a\\udfff"]}'),
    ("surrogate in allowed_ips", b'{"name": "x sync", "allowed_ips": ["\\ud800"]}'),
    ("bad CIDR", b'{"name": "x sync", "allowed_ips": ["10.0.0.0/33"]}'),
    ("expiry not a date", b'{"name": "x sync", "expires_at": "tomorrow"}'),
    ("expiry naive", b'{"name": "x sync", "expires_at": "2999-01-01T00:00:00"}'),
    ("expiry year 1, +14:00", b'{"name": "x sync", "expires_at": "0001-01-01T00:00:00+14:00"}'),
    ("expiry max, +14:00", b'{"name": "x sync", "expires_at": "9999-12-31T23:59:59+14:00"}'),
    ("both expiries", b'{"name": "x sync", "expires_at": null, "expires_in_days": 3}'),
    ("a 64 KiB name", b'{"name": "' + b"a" * 60000 + b'"}'),
    ("many scopes", b'{"name": "x sync", "scopes": [' + b",".join([b'"s"'] * 5000) + b"]}"),
]


@pytest.mark.parametrize("case", BODIES, ids=lambda c: c[0])
def test_odd_bodies_get_a_4xx(api: Harness, case: Any) -> None:
    _, body = case
    answer = safe_call(api, "POST", f"{ORG}/keys", body=body,
                       headers={"content-type": "application/json"})  # fmt: skip
    assert answer.status < 500, answer.body[:300]
    if answer.status >= 400:
        assert answer.headers["content-type"] == "application/problem+json"
    # Whatever got in, the list and the page still answer.
    assert safe_call(api, "GET", f"{ORG}/keys").status == 200
    assert safe_call(api, "GET", "/orgs/org_1").status == 200


def test_a_lone_surrogate_name_cannot_break_the_page(api: Harness) -> None:
    created = safe_call(api, "POST", f"{ORG}/keys", body=b'{"name": "billing \\ud800 sync"}',
                        headers={"content-type": "application/json"})  # fmt: skip
    assert created.status < 500
    assert safe_call(api, "GET", "/orgs/org_1").status == 200


@pytest.mark.parametrize("how", ["create", "PATCH"])
def test_an_expiry_past_year_9999_in_utc_is_refused(api: Harness, how: str) -> None:
    late = "9999-12-31T23:59:59-12:00"
    if how == "create":
        answer = safe_call(api, "POST", f"{ORG}/keys", json={"name": "x sync", "expires_at": late})
    else:
        key = api.create(scopes=[])["key"]["id"]
        answer = safe_call(api, "PATCH", f"{ORG}/keys/{key}", json={"expires_at": late})
    assert answer.status == 422
    assert safe_call(api, "GET", f"{ORG}/keys").status == 200
    assert safe_call(api, "GET", "/orgs/org_1").status == 200


def _b64(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


QUERIES = [
    "limit=-1", "limit=0", "limit=201", "limit=99999999999999999999", "limit=1e3",
    "limit=%EF%BC%91",
    "limit=1.5", "limit=%00", "limit=", "cursor=" + _b64(b"x|y"), "cursor=" + _b64(b"|"),
    "cursor=" + _b64(b"2020-01-01T00:00:00|k"), "cursor=" + _b64(b"\xff\xfe|k"),
    "cursor=" + _b64(b"0001-01-01T00:00:00+14:00|k"),
    "cursor=" + _b64(b"9999-12-31T23:59:59-12:00|k"),
    "cursor=%%%", "cursor=" + "A" * 600, "status=nope", "status=active,,,disabled",
    "status=" + ",".join(["active"] * 30), "q=" + "x" * 5000, "q=%ff%fe", "q=%00",
    "&".join(f"p{i}=1" for i in range(60)), "a" * 60_000,  # httpx refuses URLs past 64 KiB
]  # fmt: skip


@pytest.mark.parametrize("query", QUERIES, ids=lambda q: q[:40])
@pytest.mark.parametrize("where", [f"{ORG}/keys", "/orgs/org_1"])
def test_odd_list_queries_get_a_4xx(api: Harness, query: str, where: str) -> None:
    api.create(scopes=[])
    answer = safe_call(api, "GET", f"{where}?{query}")
    assert answer.status < 500, (query, answer.body[:200])


AUDIT_QUERIES = [
    "since=0001-01-01T00:00:00%2B14:00", "until=9999-12-31T23:59:59-12:00", "since=now",
    "since=2020-01-01T00:00:00", "limit=0", "limit=1001", "cursor=abc", "cursor=" + _b64(b"x|y"),
    "cursor=" + "A" * 600, "actor=" + "a" * 300, "key_id=" + "k" * 300, "action=nope",
    "action=" + ",".join(["created"] * 30), "key_id=%00", "since=2020-01-01T00:00:00 00:00",
]  # fmt: skip


@pytest.mark.parametrize("query", AUDIT_QUERIES, ids=lambda q: q[:40])
def test_odd_audit_queries_get_a_4xx(api: Harness, query: str) -> None:
    api.create(scopes=[])
    answer = safe_call(api, "GET", f"{ORG}/audit?{query}")
    assert answer.status < 500, (query, answer.body[:200])


PATHS: list[tuple[str, str, object]] = [
    ("GET", f"{ORG}/keys/" + "k" * 300, None), ("GET", f"{ORG}/keys/%C3%A9t%C3%A9", None),
    ("GET", f"{ORG}/keys/%00", None), ("GET", f"{ORG}/keys/..", None),
    ("PUT", f"{ORG}/roles/a%20b", {"scopes": []}),
    ("PUT", f"{ORG}/roles/r%C3%B4le", {"scopes": []}),
    ("PUT", f"{ORG}/roles/ok", {"scopes": ["a b"]}), ("PUT", f"{ORG}/roles/ok", {}),
    ("PUT", f"{ORG}/roles/ok", {"scopes": None}), ("PUT", f"{ORG}/scopes/*", {}),
    ("PUT", f"{ORG}/scopes/drive:*", {}), ("PUT", f"{ORG}/scopes/a%22b", {}),
    ("DELETE", f"{ORG}/roles/nope", None), ("DELETE", f"{ORG}/scopes/nope", None),
    ("POST", f"{ORG}/keys/nope/rotate", {"grace_seconds": -1}),
    ("POST", f"{ORG}/keys/nope/rotate", {"grace_seconds": 2592001}),
    ("POST", f"{ORG}/keys/nope/rotate", {"grace_seconds": 1.5}),
    ("POST", f"{ORG}/legacy/enable", None), ("PATCH", f"{ORG}/keys/nope", {"enabled": "yes"}),
]  # fmt: skip


@pytest.mark.parametrize(("method", "path", "body"), PATHS, ids=lambda v: str(v)[:40])
def test_odd_paths_and_names_get_a_4xx(api: Harness, method: str, path: str, body: Any) -> None:
    answer = safe_call(api, method, path, json=body)
    assert 400 <= answer.status < 500, (path, answer.status, answer.body[:200])


# ---- 8. Rate limit ---------------------------------------------------------


@pytest.mark.parametrize("kind", ["starlette", "flask"])
def test_rotation_and_machine_keys_share_the_orgs_creation_budget(kind: str) -> None:
    api = Harness(kind, create_per_minute=3, clock=lambda: 1_000_000.0)
    token, _ = bot(api)
    key = api.manager.create_key("org_1", "crm export", scopes=["drive:read"]).key.key_id
    assert api.call("POST", f"{ORG}/keys", json={"name": "a sync", "scopes": []}).status == 201
    assert api.call("POST", f"{ORG}/keys", json={"name": "b sync", "scopes": []},
                    **as_key(token)).status == 201  # fmt: skip
    assert api.call("POST", f"{ORG}/keys/{key}/rotate", json={}).status == 201
    count = len(api.manager.list_keys("org_1"))
    for method, path, body, how in [
        ("POST", f"{ORG}/keys", {"name": "c sync", "scopes": []}, {}),
        ("POST", f"{ORG}/keys", {"name": "c sync", "scopes": []}, as_key(token)),
        ("POST", f"{ORG}/keys/{api.manager.list_keys('org_1')[-1].key_id}/rotate", {}, {}),
    ]:
        answer = api.call(method, path, json=body, **how)
        assert (answer.status, answer.code) == (429, "rate_limited"), path
        assert int(answer.headers["retry-after"]) >= 1
    assert len(api.manager.list_keys("org_1")) == count
    # Another org has its own budget (per org, by design): org_2's admin still creates.
    other = api.call("POST", "/api/orgs/org_2/keys", json={"name": "x sync", "scopes": []},
                     user="other")  # fmt: skip
    assert other.status == 201


# ---- 9. Flask and Starlette answer the same attack the same way --------------

SAME: list[tuple[str, str]] = [
    ("TRACE", f"{ORG}/keys"), ("PROPFIND", f"{ORG}/keys"), ("QUERY", f"{ORG}/keys"),
    ("GET", f"{ORG}//keys/x"), ("GET", f"{ORG}/keys/"), ("GET", f"{ORG}//keys"),
    ("OPTIONS", f"{ORG}/keys"), ("GET", "/static/../_common.py"),
]  # fmt: skip


def _answer(kind: str, method: str, path: str) -> tuple[int, str | None, str | None]:
    api = Harness(kind)
    answer = safe_call(api, method, path)
    return answer.status, answer.headers.get("content-type"), answer.headers.get("cache-control")


@pytest.mark.parametrize(("method", "path"), SAME[4:], ids=lambda v: str(v))
def test_both_mountings_answer_odd_requests_alike(method: str, path: str) -> None:
    assert _answer("starlette", method, path) == _answer("flask", method, path)


@pytest.mark.parametrize(("method", "path"), SAME[:4], ids=lambda v: str(v))
def test_flask_answers_unusual_methods_and_slashes_like_starlette(method: str, path: str) -> None:
    assert _answer("starlette", method, path) == _answer("flask", method, path)


def test_a_method_no_mounting_lists_is_werkzeugs_own_405() -> None:
    # Documented limit: werkzeug routes by method before any view runs.
    assert _answer("flask", "FOO", f"{ORG}/keys")[0] == 405
    assert _answer("starlette", "FOO", f"{ORG}/keys")[0] == 405
    # And a path whose first segment after the mount is empty: werkzeug's 404.
    assert _answer("flask", "GET", "//api/orgs/org_1/keys")[0] == 404
    assert _answer("starlette", "GET", "//api/orgs/org_1/keys")[0] == 404
