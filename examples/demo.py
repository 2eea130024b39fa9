"""End-to-end demo: real apps on loopback, real HTTP, the whole key story.

Starts the example Starlette app under uvicorn (with the Settings → API
Keys page beside it, ``examples/keys_app.py``) and the example Flask app
under werkzeug's server, both on 127.0.0.1 and both protected by scout_auth
over one shared key store, then walks an org's key lifecycle over real HTTP
with httpx, printing every step, including a key made through the keys
page's own API calls. Exits non-zero if any answer is not the expected one.

    python -m examples.demo            # the walk, then exit
    python -m examples.demo --serve    # the walk, then keep the keys page open
"""

from __future__ import annotations

import argparse
import base64
import logging
import socket
import sys
import threading
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from datetime import timedelta
from urllib.parse import quote

import httpx
import requests
import uvicorn
from werkzeug.serving import make_server

from examples import flask_app, keys_app
from scout_auth import InMemoryKeyStore, KeyManager
from scout_auth.client import SigningAuth
from scout_auth.manage import CSRF_HEADER

failures = 0


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def org_for(name: str) -> str:
    return f"org_acme_{name}"


@contextmanager
def serve_starlette(store: InMemoryKeyStore, port: int = 0) -> Iterator[str]:
    """The Starlette example API with the keys page, signed in as admin of its org."""
    port = port or free_port()
    app = keys_app.create_app(store, org_id=org_for("starlette"))
    config = uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning")
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 10
    while not server.started:
        if time.monotonic() > deadline:
            raise RuntimeError("uvicorn did not start")
        time.sleep(0.02)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(5)


@contextmanager
def serve_flask(store: InMemoryKeyStore) -> Iterator[str]:
    server = make_server("127.0.0.1", 0, flask_app.create_app(store), threaded=True)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_port}"
    finally:
        server.shutdown()
        thread.join(5)


def step(
    http: httpx.Client,
    label: str,
    method: str,
    path: str,
    *,
    auth: str | None,
    expect: int,
    expect_code: str | None = None,
) -> None:
    global failures
    headers = {"authorization": auth} if auth else {}
    r = http.request(method, path, headers=headers, content=b"hello" if method == "POST" else None)
    code = (
        r.json().get("code")
        if r.headers.get("content-type") == "application/problem+json"
        else None
    )
    ok = r.status_code == expect and (expect_code is None or code == expect_code)
    failures += not ok
    shown = f"{r.status_code}" + (f" {code}" if code else "")
    want = f"{expect}" + (f" {expect_code}" if expect_code else "")
    mark = "ok " if ok else "BAD"
    print(f"  {mark}  {label:<46} {method:<4} {path:<8} -> {shown:<24} (want {want})")


def forge(token: str) -> str:
    """The token with its last character changed (always a different token)."""
    return token[:-1] + ("x" if token[-1] != "x" else "y")


def bearer(token: str) -> str:
    return f"Bearer {token}"


def walk(name: str, base_url: str, store: InMemoryKeyStore) -> None:
    manager = KeyManager(store)
    org = org_for(name)
    print(f"\n== {name} app at {base_url} (org {org})")
    sync = manager.create_key(org, "billing-sync prod", scopes=["files:read", "files:write"])
    report = manager.create_key(org, "reporting dashboard", scopes=["files:read"])
    kid = sync.key.key_id
    print(f"  created keys {kid} ({sync.key.name}) and {report.key.key_id} ({report.key.name})")
    print(f"  the token is shown once: {sync.token[:29]}… (public key stored, secret not)")
    with httpx.Client(base_url=base_url, timeout=10) as http:
        step(http, "health check needs no key", "GET", "/health", auth=None, expect=200)
        step(
            http,
            "no key",
            "GET",
            "/files",
            auth=None,
            expect=401,
            expect_code="missing_credentials",
        )
        step(http, "bearer call", "GET", "/files", auth=bearer(sync.token), expect=200)
        step(http, "write with files:write", "POST", "/files", auth=bearer(sync.token), expect=201)
        manager.disable_key(kid)
        step(
            http,
            "after disable",
            "GET",
            "/files",
            auth=bearer(sync.token),
            expect=401,
            expect_code="key_disabled",
        )
        manager.enable_key(kid)
        step(http, "after enable", "GET", "/files", auth=bearer(sync.token), expect=200)
        rotated = manager.rotate_key(kid, grace=timedelta(hours=1))
        print(f"  rotated {kid} -> {rotated.key.key_id} (old key valid for 1 h)")
        step(http, "old key during grace", "GET", "/files", auth=bearer(sync.token), expect=200)
        step(http, "new key", "GET", "/files", auth=bearer(rotated.token), expect=200)
        manager.rename_key(rotated.key.key_id, "billing-sync prod (2026-11)")
        step(
            http,
            "renamed key still works",
            "GET",
            "/whoami",
            auth=bearer(rotated.token),
            expect=200,
        )
        manager.delete_key(rotated.key.key_id)
        step(
            http,
            "after delete",
            "GET",
            "/files",
            auth=bearer(rotated.token),
            expect=401,
            expect_code="invalid_token",
        )
        step(http, "read-only key reads", "GET", "/files", auth=bearer(report.token), expect=200)
        step(
            http,
            "read-only key writes",
            "POST",
            "/files",
            auth=bearer(report.token),
            expect=403,
            expect_code="insufficient_scope",
        )
        step(
            http,
            "forged token",
            "GET",
            "/files",
            auth=bearer(forge(sync.token)),
            expect=401,
            expect_code="invalid_token",
        )
        legacy_steps(http, manager, org)
    signed_steps(base_url, manager, org)


def legacy_steps(http: httpx.Client, manager: KeyManager, org: str) -> None:
    """An unmigrated client sends its old secret as a bearer token: 200 -> migrate -> 401."""
    secret = "legacy-secret-from-old-system"
    manager.import_legacy_key(org, secret)
    basic = base64.b64encode(f"{org}:{secret}".encode()).decode()
    step(
        http,
        "unchanged legacy client (Bearer <legacy>)",
        "GET",
        "/files",
        auth=bearer(secret),
        expect=200,
    )
    step(
        http,
        "legacy secret as Basic org:secret",
        "GET",
        "/files",
        auth=f"Basic {basic}",
        expect=200,
    )
    status = manager.legacy_status(org)
    print(f"  legacy status: exists={status.exists} enabled={status.enabled}")
    # Migrate: the integration gets an Org Credential and switches to it.
    migrated = manager.create_key(org, "old integration (migrated)", scopes=["files:*"])
    step(
        http,
        "the same client with its new Org Credential",
        "GET",
        "/files",
        auth=bearer(migrated.token),
        expect=200,
    )
    manager.disable_legacy(org)
    step(
        http,
        "legacy secret once legacy is switched off",
        "GET",
        "/files",
        auth=bearer(secret),
        expect=401,
        expect_code="legacy_disabled",
    )
    manager.delete_legacy_key(org)
    step(
        http,
        "legacy secret after migration (deleted)",
        "GET",
        "/files",
        auth=bearer(secret),
        expect=401,
        expect_code="invalid_token",
    )
    step(
        http,
        "the migrated client keeps working",
        "GET",
        "/files",
        auth=bearer(migrated.token),
        expect=200,
    )


def check(
    label: str, r: httpx.Response | requests.Response, expect: int, code: str | None = None
) -> None:
    """Print one step of the signed part and count failures."""
    global failures
    got = (
        r.json().get("code")
        if r.headers.get("content-type") == "application/problem+json"
        else None
    )
    ok = r.status_code == expect and (code is None or got == code)
    failures += not ok
    shown = f"{r.status_code}" + (f" {got}" if got else "")
    want = f"{expect}" + (f" {code}" if code else "")
    print(f"  {'ok ' if ok else 'BAD'}  {label:<60} -> {shown:<24} (want {want})")


def signed_steps(base_url: str, manager: KeyManager, org: str) -> None:
    """The same API called with signed requests (RFC 9421): the key never travels."""
    signer = manager.create_key(org, "partner integration (signed)", scopes=["files:*"])
    auth = SigningAuth(signer.token)
    print(f"  signing key {signer.key.key_id}: requests carry keyid + signature, not the token")
    with httpx.Client(base_url=base_url, timeout=10, auth=auth) as http:
        check(
            "httpx signed POST (Content-Digest + signature)",
            http.post("/files", content=b"report"),
            201,
        )
    r = requests.post(f"{base_url}/files", data=b"report", auth=auth, timeout=10)
    check("requests signed POST", r, 201)
    # Capture one signed request and send it twice: the nonce makes it single-use.
    host = httpx.URL(base_url).netloc.decode()
    headers = auth.signature_headers("POST", f"{base_url}/files", [("host", host)], b"report")
    with httpx.Client(base_url=base_url, timeout=10) as raw:
        check(
            "captured signed request, first use",
            raw.post("/files", headers=headers, content=b"report"),
            201,
        )
        check(
            "the same request replayed",
            raw.post("/files", headers=headers, content=b"report"),
            401,
            "replay_detected",
        )
        fresh = auth.signature_headers("POST", f"{base_url}/files", [("host", host)], b"report")
        check(
            "body swapped under a valid signature",
            raw.post("/files", headers=fresh, content=b"tamper"),
            401,
            "digest_mismatch",
        )
    manager.disable_key(signer.key.key_id)
    with httpx.Client(base_url=base_url, timeout=10, auth=auth) as http:
        check("signed request after disable", http.get("/files"), 401, "key_disabled")


def page_steps(base_url: str, org: str) -> None:
    """A key made, switched off and deleted by the keys page's own API calls.

    The same requests the page's JavaScript sends: the demo login's cookie,
    JSON bodies and the CSRF header; the key is then used against the API.
    """
    api = f"{keys_app.KEYS_PAGE}/api/orgs/{quote(org, safe='')}"
    page_headers = {CSRF_HEADER: "1"}  # what the page sets on every change
    print(f"  the keys page's API at {api}: a key made, switched off and deleted there")
    with (
        httpx.Client(base_url=base_url, timeout=10) as browser,
        httpx.Client(base_url=base_url, timeout=10) as http,
    ):
        check("keys page: demo login (cookie)", browser.get(keys_app.LOGIN), 303)
        created = browser.post(
            f"{api}/keys",
            json={"name": "page-made export job", "scopes": ["files:read"], "expires_in_days": 30},
            headers=page_headers,
        )
        check("keys page: Create New Key (POST .../keys)", created, 201)
        if created.status_code != 201:
            return
        token = created.json()["token"]
        kid = created.json()["key"]["id"]
        step(http, "the page's key calls the API", "GET", "/files", auth=bearer(token), expect=200)
        off = browser.post(f"{api}/keys/{quote(kid, safe='')}/disable", headers=page_headers)
        check("keys page: switch the key off (POST .../disable)", off, 200)
        step(
            http,
            "the page's key once switched off",
            "GET",
            "/files",
            auth=bearer(token),
            expect=401,
            expect_code="key_disabled",
        )
        gone = browser.delete(f"{api}/keys/{quote(kid, safe='')}", headers=page_headers)
        check("keys page: delete the key (DELETE .../keys/{id})", gone, 204)
        step(
            http,
            "the page's key once deleted",
            "GET",
            "/files",
            auth=bearer(token),
            expect=401,
            expect_code="invalid_token",
        )
        refused = browser.post(f"{api}/keys", json={"name": "no csrf header"})
        check("keys page: a change without the CSRF header", refused, 403, "csrf_header_missing")


def main(argv: Sequence[str] = ()) -> int:
    parser = argparse.ArgumentParser(prog="python -m examples.demo", description=__doc__)
    parser.add_argument(
        "--serve", action="store_true", help="after the walk, keep the keys page open (Ctrl-C)"
    )
    parser.add_argument("--port", type=int, default=0, help="the Starlette app's port (--serve)")
    args = parser.parse_args(list(argv))
    store = InMemoryKeyStore()
    logging.getLogger("werkzeug").setLevel(logging.WARNING)
    with serve_starlette(store, args.port) as page_url:
        walk("starlette", page_url, store)
        page_steps(page_url, org_for("starlette"))
        with serve_flask(store) as base_url:
            walk("flask", base_url, store)
        print(
            "\nall steps answered as expected" if not failures else f"\n{failures} step(s) FAILED"
        )
        login = f"{page_url}{keys_app.LOGIN}"
        if not args.serve:
            print(f"\nkeys page: {login} (run with --serve to keep it open)")
            return 1 if failures else 0
        org = org_for("starlette")
        print(f"\nkeys page: open {login}")
        print(f"  signed in as admin of {org}; Ctrl-C to stop")
        print("  create a key there, copy its export line into a shell, then call the API:")
        print(f'    curl -i -H "Authorization: Bearer $SCOUT_API_KEY" {page_url}/files')
        print("  200 now; switch the key off in the page: 401 key_disabled; delete it: 401.")
        print("  what you do in the page shows up here, from the audit trail:")
        try:
            watch(store, org)
        except KeyboardInterrupt:
            print()
    return 1 if failures else 0


def watch(store: InMemoryKeyStore, org: str) -> None:
    """Print the org's new audit events as the page makes them (until Ctrl-C)."""
    sink = store.audit_sink()
    seen = {e.id for e in sink.query(org, limit=1000)}
    while True:
        time.sleep(0.5)
        fresh = [e for e in sink.query(org, limit=50) if e.id not in seen]
        for event in reversed(fresh):
            seen.add(event.id)
            print(f"  {event.at:%H:%M:%S} {event.action:<20} {event.key_name or ''} "
                  f"({event.key_id or '-'}) by {event.actor or '-'}")  # fmt: skip


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
