"""Client auth helpers: what they put on the wire verifies with the server core."""

from __future__ import annotations

import subprocess
import sys
import time

import httpx
import pytest
import requests

from scout_auth import InMemoryKeyStore, KeyManager
from scout_auth._signing.components import HttpRequest
from scout_auth._signing.digest import DigestChecker
from scout_auth._signing.signature import parse_request_signature, verify_ed25519
from scout_auth.client import ENV_VAR, BearerAuth, SigningAuth


@pytest.fixture
def new_key():
    return KeyManager(InMemoryKeyStore()).create_key("org_a", "ci deploys")


def server_view(method: str, url: httpx.URL, headers: list[tuple[str, str]]) -> HttpRequest:
    raw = url.raw_path.decode()
    path, _, query = raw.partition("?")
    host = next(v for k, v in headers if k.lower() == "host")
    return HttpRequest(method, url.scheme, host, path, query, headers)


def check_signed(new_key, method, url, headers, body):
    request = server_view(method, httpx.URL(url), headers)
    sig = parse_request_signature(request, now=time.time())
    assert sig.key_id == new_key.key.key_id
    verify_ed25519(new_key.key.public_key, sig.signature, sig.base)
    if body:
        checker = DigestChecker.from_header(request.field("content-digest") or "")
        checker.update(body)
        checker.verify()
    return sig


URLS = [
    pytest.param("https://api.example.com/files", id="plain"),
    pytest.param("https://API.example.com:8443/a%2Fb/c?x=1&y=%20z", id="port-encoded-query"),
    pytest.param("http://127.0.0.1:8000/?", id="empty-query"),
]


@pytest.mark.parametrize("url", URLS)
@pytest.mark.parametrize("body", [b"", b'{"name": "q3.pdf"}'], ids=["no-body", "body"])
def test_httpx_sync_signing_verifies(new_key, url, body):
    seen = []

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        return httpx.Response(200)

    client = httpx.Client(transport=httpx.MockTransport(handler), auth=SigningAuth(new_key.token))
    client.post(url, content=body)
    r = seen[0]
    assert "authorization" not in r.headers
    assert new_key.token.split("_")[3][:20] not in str(r.headers)  # no part of the seed
    check_signed(new_key, "POST", str(r.url), r.headers.multi_items(), body)


@pytest.mark.anyio
async def test_httpx_async_signing_verifies(new_key):
    seen = []

    async def handler(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        return httpx.Response(200)

    auth = SigningAuth(new_key.token)
    async with httpx.AsyncClient(transport=httpx.MockTransport(handler), auth=auth) as client:
        await client.put("https://api.example.com/files/1", content=b"new content")
    r = seen[0]
    check_signed(new_key, "PUT", str(r.url), r.headers.multi_items(), b"new content")


@pytest.mark.parametrize("url", URLS)
def test_requests_signing_verifies(new_key, url):
    prepared = requests.Request("POST", url, data=b"payload").prepare()
    prepared = SigningAuth(new_key.token)(prepared)
    headers = [*prepared.headers.items(), ("host", httpx.URL(url).netloc.decode())]
    check_signed(new_key, "POST", prepared.url, headers, b"payload")


def test_each_request_gets_a_fresh_nonce(new_key):
    auth = SigningAuth(new_key.token)
    a = auth.signature_headers("GET", "https://h/x", [("host", "h")], b"")
    b = auth.signature_headers("GET", "https://h/x", [("host", "h")], b"")
    assert a["Signature-Input"] != b["Signature-Input"]


def test_extra_covered_components(new_key):
    auth = SigningAuth(new_key.token, components=["content-type"])
    headers = [("host", "h"), ("content-type", "application/json")]
    added = auth.signature_headers("POST", "https://h/x", headers, b"{}")
    assert '"content-type"' in added["Signature-Input"]
    sig = check_signed(
        new_key, "POST", "https://h/x", headers + [(k.lower(), v) for k, v in added.items()], b"{}"
    )
    assert "content-type" in sig.components


def test_bearer_auth_sets_the_header(new_key):
    seen: list[httpx.Request] = []

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        return httpx.Response(200)

    transport = httpx.MockTransport(handler)
    httpx.Client(transport=transport, auth=BearerAuth(new_key.token)).get("https://h/x")
    assert seen[0].headers["authorization"] == f"Bearer {new_key.token}"
    prepared = BearerAuth(new_key.token)(requests.Request("GET", "https://h/x").prepare())
    assert prepared.headers["Authorization"] == f"Bearer {new_key.token}"


def test_token_from_the_environment(new_key, monkeypatch):
    monkeypatch.setenv(ENV_VAR, new_key.token)
    assert repr(BearerAuth()) == f"BearerAuth(key_id={new_key.key.key_id!r})"
    assert repr(SigningAuth()) == f"SigningAuth(key_id={new_key.key.key_id!r})"


@pytest.mark.parametrize("cls", [BearerAuth, SigningAuth])
def test_missing_or_malformed_token_fails_early_without_echo(cls, monkeypatch):
    monkeypatch.delenv(ENV_VAR, raising=False)
    with pytest.raises(ValueError, match=ENV_VAR):
        cls()
    with pytest.raises(ValueError, match="well-formed") as excinfo:
        cls("scout_sk_not_really_a_token_secretpart")
    assert "secretpart" not in str(excinfo.value)


def test_requests_stream_body_is_refused(new_key):
    prepared = requests.Request("POST", "https://h/x", data=iter([b"a", b"b"])).prepare()
    with pytest.raises(TypeError):
        SigningAuth(new_key.token)(prepared)


# -- either client library alone (issue 12) -------------------------------------

_BLOCK = """
import sys

class Block:
    def find_spec(self, name, path=None, target=None):
        if name.split(".")[0] in {blocked!r}:
            raise ImportError("blocked: " + name)
        return None

sys.meta_path.insert(0, Block())
"""

_USE = {
    # httpx alone: an httpx.Auth whose flow adds the header.
    "requests": """
import httpx
request = httpx.Request("GET", "https://api.test/x")
assert next(auth.auth_flow(request)).headers["authorization"] == "Bearer " + token
signed = next(signing.auth_flow(httpx.Request("POST", "https://api.test/x", content=b"hi")))
assert "signature" in signed.headers and "content-digest" in signed.headers
""",
    # requests alone: a requests AuthBase that prepares the header.
    "httpx": """
import requests
prepared = requests.Request("GET", "https://api.test/x").prepare()
assert auth(prepared).headers["Authorization"] == "Bearer " + token
signed = signing(requests.Request("POST", "https://api.test/x", data=b"hi").prepare())
assert "Signature" in signed.headers and "Content-Digest" in signed.headers
""",
}

_CLIENT = """
from scout_auth import InMemoryKeyStore, KeyManager
from scout_auth.client import BearerAuth, SigningAuth

token = KeyManager(InMemoryKeyStore()).create_key("org_1", "alone").token
auth = BearerAuth(token)
signing = SigningAuth(token)
"""


def _python(code: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(  # noqa: S603 - our own interpreter and code
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=False
    )


@pytest.mark.parametrize("blocked", ["requests", "httpx"])
def test_the_client_imports_with_either_library_alone(blocked):
    check = f"assert {blocked!r} not in sys.modules\nprint('ok')\n"
    done = _python(_BLOCK.format(blocked=(blocked,)) + _CLIENT + _USE[blocked] + check)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "ok"


def test_the_client_without_either_library_says_what_to_install():
    done = _python(_BLOCK.format(blocked=("httpx", "requests")) + "import scout_auth.client\n")
    assert done.returncode != 0
    assert "needs httpx or requests" in done.stderr
