"""The Node.js example of docs/signing.md, run against real scout_auth servers.

``examples/node/sign.mjs`` signs with the npm package ``http-message-signatures``
(pinned in ``examples/node/package-lock.json``), loads the private JWK with
``node:crypto`` and computes ``Content-Digest`` there too. Each test runs it
against a real server on a free loopback port: Starlette under uvicorn and a
WSGI app under werkzeug's server. Node's own JWK and PEM import checks our
key exports, independently of pyca/cryptography.

Without ``node``/``npm`` (or the registry) the suite skips on a laptop; with
``CI=true`` it fails instead (``.ci/run`` installs Node.js when missing).
"""

from __future__ import annotations

import base64
import hashlib
import json
import os
import shutil
import subprocess
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
import pytest

from scout_auth import (
    AsyncVerifier,
    InMemoryKeyStore,
    KeyManager,
    OrgCredential,
    OrgPublicKey,
    Verifier,
    explain_signature,
)
from tests.apps import starlette_app, wsgi_app
from tests.conftest import unavailable
from tests.live_servers import uvicorn_server, werkzeug_server

ROOT = Path(__file__).resolve().parents[2]
EXAMPLE = ROOT / "examples" / "node"
SCRIPT = EXAMPLE / "sign.mjs"
BODY = '{"hello": "world", "n": 1}'


@pytest.fixture(scope="module")
def node() -> str:
    """The ``node`` binary, with the example's pinned packages installed (``npm ci``)."""
    node, npm = shutil.which("node"), shutil.which("npm")
    if node is None or npm is None:
        unavailable("node and npm are not on the PATH")
    assert node is not None
    assert npm is not None
    version = subprocess.run(  # noqa: S603 - the node found on PATH
        [node, "--version"], capture_output=True, text=True, check=True
    )
    if int(version.stdout.strip().lstrip("v").split(".")[0]) < 20:
        unavailable(f"the example needs Node.js 20 or later, not {version.stdout.strip()}")
    installed = subprocess.run(  # noqa: S603 - npm ci of our own lock file
        [npm, "ci", "--no-audit", "--no-fund", "--loglevel=error"],
        cwd=EXAMPLE,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    if installed.returncode != 0:
        unavailable(f"npm ci failed in examples/node: {installed.stderr.strip()[-500:]}")
    return node


Server = Callable[[InMemoryKeyStore], Any]


def starlette_on_uvicorn(store: InMemoryKeyStore) -> Any:
    return uvicorn_server(starlette_app(AsyncVerifier(store)))


def wsgi_on_werkzeug(store: InMemoryKeyStore) -> Any:
    return werkzeug_server(wsgi_app(Verifier(store)))


SERVERS = [
    pytest.param(starlette_on_uvicorn, id="starlette-uvicorn"),
    pytest.param(wsgi_on_werkzeug, id="wsgi-werkzeug"),
]


def run_example(
    node: str, url: str, jwk: dict[str, str], body: str = BODY, *, dry_run: bool = False
) -> dict[str, Any]:
    env = {"PATH": os.environ.get("PATH", ""), "SCOUT_KEY_JWK": json.dumps(jwk)}
    done = subprocess.run(  # noqa: S603 - our example script
        [node, str(SCRIPT), *(["--dry-run"] if dry_run else []), url, body],
        cwd=EXAMPLE,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    result: dict[str, Any] = json.loads(done.stdout)
    return result


@pytest.mark.parametrize("serve", SERVERS)
def test_the_node_example_signs_a_request_the_server_accepts(node, serve):
    store = InMemoryKeyStore()
    new = KeyManager(store).create_key("org_node", "node example")
    jwk = OrgCredential.from_token(new.token).private_jwk()
    with serve(store) as base:
        result = run_example(node, f"{base}/echo", jwk)
    assert result["status"] == 200, result["body"]
    answer = json.loads(result["body"])
    assert answer["org"] == "org_node"
    assert answer["key"] == new.key.key_id
    assert answer["kind"] == "org_credential"
    assert answer["sha256"] == hashlib.sha256(BODY.encode()).hexdigest()
    headers = {k.lower(): v for k, v in result["request"]["headers"].items()}
    # What went on the wire: the package's label, our key id, a nonce, a digest
    # computed by node:crypto; no token anywhere.
    assert headers["content-digest"].startswith("sha-256=:")
    assert f'keyid="{new.key.key_id}"' in headers["signature-input"]
    assert ";nonce=" in headers["signature-input"]
    assert new.token not in json.dumps(result)


@pytest.mark.parametrize("serve", SERVERS)
def test_a_replayed_node_request_is_refused(node, serve):
    store = InMemoryKeyStore()
    new = KeyManager(store).create_key("org_node", "node example")
    jwk = OrgCredential.from_token(new.token).private_jwk()
    with serve(store) as base:
        result = run_example(node, f"{base}/echo", jwk)
        assert result["status"] == 200, result["body"]
        sent = result["request"]
        again = httpx.post(sent["url"], headers=sent["headers"], content=BODY.encode())
    assert again.status_code == 401
    assert "replay_detected" in again.text


@pytest.mark.parametrize("serve", SERVERS)
def test_a_node_request_with_another_body_is_refused(node, serve):
    store = InMemoryKeyStore()
    new = KeyManager(store).create_key("org_node", "node example")
    jwk = OrgCredential.from_token(new.token).private_jwk()
    with serve(store) as base:
        sent = run_example(node, f"{base}/echo", jwk, dry_run=True)["request"]
        forged = httpx.post(sent["url"], headers=sent["headers"], content=b'{"hello": "mallory"}')
    assert forged.status_code == 401
    assert "digest_mismatch" in forged.text


def test_explain_signature_reads_a_node_request(node):
    """The debugging helper rebuilds the base of a peer's request and verifies it."""
    store = InMemoryKeyStore()
    new = KeyManager(store).create_key("org_node", "node example")
    jwk = OrgCredential.from_token(new.token).private_jwk()
    sent = run_example(node, "https://api.example.com/echo?x=1", jwk, dry_run=True)["request"]
    raw = "POST /echo?x=1 HTTP/1.1\r\nHost: api.example.com\r\n"
    raw += "".join(f"{k}: {v}\r\n" for k, v in sent["headers"].items())
    raw += f"Content-Length: {len(BODY)}\r\n\r\n{BODY}"
    text = explain_signature(raw, public_key=new.key.public_key)
    assert "policy: accepted" in text
    assert '  "@target-uri": https://api.example.com/echo?x=1\n' in text
    assert "verification: the signature verifies with this key" in text
    assert f"content-digest: matches the {len(BODY)} body bytes" in text


def test_a_key_of_another_org_is_refused(node):
    store = InMemoryKeyStore()
    KeyManager(store).create_key("org_node", "node example")
    stranger = KeyManager(InMemoryKeyStore()).create_key("org_other", "elsewhere")
    with starlette_on_uvicorn(store) as base:
        result = run_example(
            node, f"{base}/echo", OrgCredential.from_token(stranger.token).private_jwk()
        )
    assert result["status"] == 401
    assert "signature_invalid" in result["body"]


# Node's key import, independent of pyca/cryptography: it loads our private PEM
# and JWK and signs; it loads our public PEM and JWK and verifies our signature.
_NODE_KEYS = r"""
const crypto = require("node:crypto");
const input = JSON.parse(require("node:fs").readFileSync(0, "utf8"));
const data = Buffer.from(input.data, "base64");
const out = {};
for (const [name, key] of [
  ["private_pem", crypto.createPrivateKey(input.private_pem)],
  ["private_jwk", crypto.createPrivateKey({ key: input.private_jwk, format: "jwk" })],
]) {
  out[name] = { type: key.asymmetricKeyType, sig: crypto.sign(null, data, key).toString("base64"),
                jwk: key.export({ format: "jwk" }) };
}
for (const [name, key] of [
  ["public_pem", crypto.createPublicKey(input.public_pem)],
  ["public_jwk", crypto.createPublicKey({ key: input.public_jwk, format: "jwk" })],
]) {
  out[name] = { type: key.asymmetricKeyType,
                ok: crypto.verify(null, data, key, Buffer.from(input.sig, "base64")) };
}
console.log(JSON.stringify(out));
"""


def test_node_loads_the_pem_and_jwk_exports(node):
    credential = OrgCredential.from_token(KeyManager(InMemoryKeyStore()).create_key("o", "n").token)
    public = OrgPublicKey.from_raw(credential.key_id, credential.public.raw)
    data = b"signature base bytes"
    payload = {
        "data": base64.b64encode(data).decode(),
        "sig": base64.b64encode(credential.private_key.sign(data)).decode(),
        "private_pem": credential.private_pem(),
        "private_jwk": credential.private_jwk(),
        "public_pem": public.to_pem(),
        "public_jwk": public.to_jwk(),
    }
    done = subprocess.run(  # noqa: S603 - a fixed script
        [node, "-e", _NODE_KEYS],
        input=json.dumps(payload),
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    out = json.loads(done.stdout)
    for name in ("private_pem", "private_jwk"):
        assert out[name]["type"] == "ed25519"
        credential.public_key.verify(base64.b64decode(out[name]["sig"]), data)
        # Node exports the same JWK members (it knows no kid).
        exported = out[name]["jwk"]
        assert exported == {k: v for k, v in credential.private_jwk().items() if k != "kid"}
    for name in ("public_pem", "public_jwk"):
        assert out[name] == {"type": "ed25519", "ok": True}


def test_docs_show_the_example_verbatim():
    """docs/signing.md quotes examples/node/sign.mjs whole, so the two cannot drift."""
    docs = (ROOT / "docs" / "signing.md").read_text()
    assert f"```js\n{SCRIPT.read_text()}```" in docs
    package = json.loads((EXAMPLE / "package.json").read_text())
    lock = json.loads((EXAMPLE / "package-lock.json").read_text())
    pinned = package["dependencies"]["http-message-signatures"]
    assert pinned[0].isdigit(), "pin an exact version"
    assert lock["packages"]["node_modules/http-message-signatures"]["version"] == pinned
    assert f"http-message-signatures@{pinned}" in docs
