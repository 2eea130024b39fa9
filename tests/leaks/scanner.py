"""A fake secret scanner with real ECDSA P-256 keys, and both mountings of the receiver."""

from __future__ import annotations

import base64
import json
import threading
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import flask
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from starlette.applications import Starlette
from starlette.routing import Mount
from starlette.testclient import TestClient

from scout_auth import AsyncKeyManager, KeyManager, KeyRecord
from scout_auth.leaks import (
    LeakReceiverApp,
    LeakReport,
    ScannerKeys,
    hmac_signature,
    leak_receiver_blueprint,
)

MOUNT = "/hooks/secret-scanning"
HMAC_SECRET = b"s" * 40


class Scanner:
    """A scanner's signing keys and its published key document."""

    def __init__(self, count: int = 2) -> None:
        self.keys = {
            f"{i:064x}": ec.generate_private_key(ec.SECP256R1()) for i in range(1, count + 1)
        }

    def document(self) -> dict[str, Any]:
        entries = []
        for index, (key_id, key) in enumerate(self.keys.items()):
            pem = key.public_key().public_bytes(
                serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
            )
            entries.append(
                {"key_identifier": key_id, "key": pem.decode(), "is_current": index == 0}
            )
        return {"public_keys": entries}

    @property
    def current(self) -> str:
        return next(iter(self.keys))

    def sign(
        self, body: bytes, key_id: str | None = None, *, with_key: str | None = None
    ) -> dict[str, str]:
        """The headers GitHub sends: ``with_key`` signs under ``key_id``'s name (a wrong key)."""
        key_id = key_id or self.current
        signer = self.keys[with_key or key_id]
        signature = signer.sign(body, ec.ECDSA(hashes.SHA256()))
        return {
            "Github-Public-Key-Identifier": key_id,
            "Github-Public-Key-Signature": base64.b64encode(signature).decode(),
            "content-type": "application/json",
        }


def report(
    *tokens: str, url: str = "https://github.com/acme/app/blob/main/.env", source: str = "content"
) -> bytes:
    return json.dumps(
        [{"token": t, "type": "scout_api_key", "url": url, "source": source} for t in tokens]
    ).encode()


def hmac_headers(body: bytes) -> dict[str, str]:
    return {"X-Scanner-Signature-256": hmac_signature(HMAC_SECRET, body)}


@dataclass
class Answer:
    status: int
    headers: Mapping[str, str]
    body: bytes

    def json(self) -> Any:
        return json.loads(self.body)


class Calls:
    """An ``on_leak`` that records its calls and can be waited for."""

    def __init__(self, fail: bool = False) -> None:
        self.calls: list[tuple[KeyRecord, LeakReport, str]] = []
        self.fail = fail
        self.event = threading.Event()

    def __call__(self, key: KeyRecord, report: LeakReport) -> None:
        self.calls.append((key, report, threading.current_thread().name))
        self.event.set()
        if self.fail:
            raise RuntimeError("the mail server is down")


class Receiver:
    """One mounting (``starlette`` or ``flask``) of the receiver over ``store``."""

    def __init__(self, kind: str, store: Any, scanner: Scanner, **options: Any) -> None:
        self.kind = kind
        self.store = store
        options.setdefault("scanner_keys", ScannerKeys.from_document(scanner.document()))
        options.setdefault("hmac_secret", HMAC_SECRET)
        audit = options.pop("audit", None)
        if kind == "starlette":
            self.manager: Any = AsyncKeyManager(store, audit=audit)
            app = Starlette(routes=[Mount(MOUNT, app=LeakReceiverApp(self.manager, **options))])
            self.client: Any = TestClient(app, base_url="http://testserver")
        else:
            self.manager = KeyManager(store, audit=audit)
            flask_app = flask.Flask(__name__)
            flask_app.register_blueprint(
                leak_receiver_blueprint(self.manager, **options), url_prefix=MOUNT
            )
            self.client = flask_app.test_client()

    def post(
        self, body: bytes, headers: Mapping[str, str], method: str = "POST", path: str = ""
    ) -> Answer:
        if self.kind == "starlette":
            r = self.client.request(method, MOUNT + path, content=body, headers=dict(headers))
            return Answer(r.status_code, r.headers, r.content)
        r = self.client.open(MOUNT + path, method=method, data=body, headers=dict(headers))
        return Answer(r.status_code, r.headers, r.data)


def labels(answer: Answer) -> Sequence[str]:
    return [item["label"] for item in answer.json()]
