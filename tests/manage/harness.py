"""Both mountings of the management API over one store, driven the same way.

``Harness.call`` sends one request to the Starlette app (``ManagementApp``
under a ``Mount``) or the Flask app (``management_blueprint`` under a
``url_prefix``) and returns status, headers and body bytes, so a test reads
the same on both and the same-bytes test can compare them.
"""

from __future__ import annotations

import json as jsonlib
import secrets
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import flask
from argon2 import PasswordHasher
from starlette.applications import Starlette
from starlette.routing import Mount
from starlette.testclient import TestClient

from scout_auth import AsyncKeyManager, InMemoryKeyStore, KeyManager, KeyVault
from scout_auth.client import SigningAuth
from scout_auth.manage import CSRF_HEADER, ManagementApp, Principal, management_blueprint

MOUNT = "/settings/api-keys"
BASE = "http://testserver"

#: The test users: header ``x-test-user`` names one (the host's "session").
USERS = {
    "admin": Principal("alice@example.com", admin_orgs=["org_1"]),
    "viewer": Principal("victor@example.com", viewer_orgs=["org_1"]),
    "other": Principal("olga@example.com", admin_orgs=["org_2"]),
    "multi": Principal("mo@example.com", admin_orgs=["org_1"], viewer_orgs=["org_2"]),
}


def authorize(request: Any) -> Principal | None:
    return USERS.get(request.headers.get("x-test-user", ""))


async def aauthorize(request: Any) -> Principal | None:
    return authorize(request)


@dataclass
class Answer:
    status: int
    headers: dict[str, str]
    body: bytes

    def json(self) -> Any:
        return jsonlib.loads(self.body)

    @property
    def code(self) -> str | None:
        return self.json().get("code") if self.body else None


class Harness:
    """One mounting (``kind`` is ``starlette`` or ``flask``) over ``store``."""

    def __init__(
        self,
        kind: str,
        store: InMemoryKeyStore | None = None,
        *,
        vault: KeyVault | bool | None = True,
        manager_options: Mapping[str, Any] | None = None,
        **options: Any,
    ) -> None:
        self.kind = kind
        # A key vault by default (recoverable keys, Reveal); vault=False: none.
        self.vault = (
            KeyVault({"test-kek": secrets.token_bytes(32)}) if vault is True else vault or None
        )
        self.store = store if store is not None else InMemoryKeyStore()
        self.sink = self.store.audit_sink()
        if kind == "starlette":
            options.setdefault("authorize", aauthorize)
            manager = AsyncKeyManager(
                self.store, audit=self.sink, vault=self.vault, **(manager_options or {})
            )
            app = ManagementApp(manager, **options)
            self.client: Any = TestClient(Starlette(routes=[Mount(MOUNT, app=app)]), base_url=BASE)
        else:
            options.setdefault("authorize", authorize)
            flask_app = flask.Flask(__name__)
            sync = KeyManager(
                self.store, audit=self.sink, vault=self.vault, **(manager_options or {})
            )
            blueprint = management_blueprint(sync, **options)
            flask_app.register_blueprint(blueprint, url_prefix=MOUNT)
            self.client = flask_app.test_client()
        # Seeding only: a cheap argon2 (the API never imports legacy secrets).
        cheap = PasswordHasher(time_cost=1, memory_cost=8, parallelism=1)
        self.manager = KeyManager(
            self.store, audit=self.sink, password_hasher=cheap, vault=self.vault
        )

    def call(
        self,
        method: str,
        path: str,
        *,
        user: str | None = "admin",
        json: object = None,
        body: bytes | None = None,
        headers: Mapping[str, str] | None = None,
        csrf: bool = True,
        token: str | None = None,
        signed: bool = False,
    ) -> Answer:
        """``method`` ``MOUNT + path`` as ``user`` (with the page's CSRF header unless told)."""
        sent: dict[str, str] = {}
        if user is not None:
            sent["x-test-user"] = user
        if csrf:
            sent[CSRF_HEADER] = "1"
        if json is not None:
            body = jsonlib.dumps(json).encode()
            sent["content-type"] = "application/json"
        sent.update(headers or {})
        if token is not None and not signed:
            sent["authorization"] = f"Bearer {token}"
        url = MOUNT + path
        if signed:
            assert token is not None
            sent.update(
                SigningAuth(token).signature_headers(
                    method, BASE + url, list(sent.items()), body or b""
                )
            )
        if self.kind == "starlette":
            r = self.client.request(method, url, content=body, headers=sent, follow_redirects=False)
            return Answer(r.status_code, {k.lower(): v for k, v in r.headers.items()}, r.content)
        r = self.client.open(url, method=method, data=body, headers=sent, base_url=BASE)
        return Answer(r.status_code, {k.lower(): v for k, v in r.headers.items()}, r.get_data())

    def create(self, name: str = "billing-sync prod", **fields: Any) -> dict[str, Any]:
        """Create a key through the API as the admin; the response body."""
        answer = self.call("POST", "/api/orgs/org_1/keys", json={"name": name, **fields})
        assert answer.status == 201, answer.body
        data: dict[str, Any] = answer.json()
        return data
