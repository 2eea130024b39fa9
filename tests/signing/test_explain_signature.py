"""explain_signature and ``scout-auth explain-signature``: the base the server rebuilt, no secret.

The report must show the very bytes the verifier checks (it runs the
verifier's own parser), keep showing them when the policy refuses, and never
print a token, a seed or a covered credential field.
"""

from __future__ import annotations

import base64
import io
import time

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from scout_auth import HttpRequest, InMemoryKeyStore, KeyManager, OrgCredential, explain_signature
from scout_auth._core.tokens import parse_token
from scout_auth._signing.digest import content_digest
from scout_auth._signing.explain import _ANY, parse_http_request
from scout_auth._signing.signature import parse_request_signature, sign_request
from scout_auth.cli import main

NOW = 1_767_000_000.0
BODY = b'{"name": "q3.pdf"}'


@pytest.fixture
def new_key():
    return KeyManager(InMemoryKeyStore()).create_key("org_explain", "peer client")


def signed(
    new_key,
    *,
    extra: list[tuple[str, str]] = (),  # type: ignore[assignment]
    components: list[str] | None = None,
    nonce: str | bool | None = None,
    body: bytes = BODY,
    now: float = NOW,
) -> tuple[HttpRequest, str]:
    """A signed request as the server sees it, and the same request as raw HTTP/1.1."""
    headers = [("host", "api.example.com"), ("content-type", "application/json"), *extra]
    if body:
        headers += [("content-length", str(len(body))), ("content-digest", content_digest(body))]
    unsigned = HttpRequest("POST", "https", "api.example.com", "/files", "a=1", headers)
    covered = components or ["@method", "@authority", "@target-uri"] + (
        ["content-digest"] if body else []
    )
    added = sign_request(
        unsigned,
        key_id=new_key.key.key_id,
        private_seed=parse_token(new_key.token).seed,  # type: ignore[union-attr]
        now=now,
        components=covered,
        nonce=nonce,  # type: ignore[arg-type]
    )
    all_headers = headers + list(added.items())
    request = HttpRequest("POST", "https", "api.example.com", "/files", "a=1", all_headers)
    raw = "POST /files?a=1 HTTP/1.1\r\n" + "".join(f"{k}: {v}\r\n" for k, v in all_headers)
    return request, raw + "\r\n" + body.decode()


def base_of(text: str) -> bytes:
    """The base block of a report, un-indented."""
    lines = text.split("\n")
    start = next(i for i, line in enumerate(lines) if line.startswith("signature base")) + 1
    end = next(i for i in range(start, len(lines)) if not lines[i].startswith("  "))
    return "\n".join(line[2:] for line in lines[start:end]).encode()


def assert_no_secret(new_key, text: str) -> None:
    seed = parse_token(new_key.token).seed  # type: ignore[union-attr]
    for form in (new_key.token, new_key.token[-49:-6], seed.hex(), base64.b64encode(seed).decode()):
        assert form not in text


# -- what the report says ----------------------------------------------------


def test_an_accepted_signature_shows_the_verifiers_own_base(new_key):
    request, _ = signed(new_key)
    text = explain_signature(request, now=NOW, body=BODY, public_key=new_key.key.public_key)
    sig = parse_request_signature(request, now=NOW)
    assert base_of(text) == sig.base
    assert f"signature 'sig1' by key id {new_key.key.key_id!r}" in text
    assert "policy: accepted" in text
    assert "verification: the signature verifies with this key" in text
    assert f"content-digest: matches the {len(BODY)} body bytes" in text
    assert base64.b64encode(sig.signature).decode() in text  # not a secret
    assert f"nonce:   {sig.nonce!r}" in text
    assert "covers:  @method @authority @target-uri content-digest" in text
    assert text.endswith("\n")
    assert_no_secret(new_key, text)


def test_a_raw_request_gives_the_same_report(new_key):
    request, raw = signed(new_key)
    from_raw = explain_signature(raw, now=NOW, public_key=new_key.key.public_key)
    from_request = explain_signature(request, now=NOW, body=BODY, public_key=new_key.key.public_key)
    assert from_raw == from_request
    assert explain_signature(raw.encode("latin-1"), now=NOW) == explain_signature(raw, now=NOW)


@pytest.mark.parametrize(
    ("make", "code"),
    [
        pytest.param(lambda k: signed(k, now=NOW - 3600)[0], "signature_expired", id="expired"),
        pytest.param(
            lambda k: signed(k, now=NOW + 60)[0], "signature_not_yet_valid", id="from-the-future"
        ),
        pytest.param(
            lambda k: signed(k, components=["@method", "@authority", "@target-uri"])[0],
            "signature_missing_component",
            id="digest-not-covered",
        ),
    ],
)
def test_a_refused_signature_still_shows_its_base_and_verifies(new_key, make, code):
    request = make(new_key)
    text = explain_signature(request, now=NOW, public_key=new_key.key.public_key)
    assert f"policy: refused, 401 {code}" in text
    # The bytes the client signed, so it can compare; and they do verify.
    assert "verification: the signature verifies with this key" in text
    assert base_of(text) == parse_request_signature(request, _ANY, now=0.0).base


def test_a_wrong_key_or_a_changed_request_fails_verification(new_key):
    request, _ = signed(new_key)
    other = Ed25519PrivateKey.generate().public_key()
    assert "verification: FAILS" in explain_signature(request, now=NOW, public_key=other)
    tampered = HttpRequest(
        "POST", "https", "api.example.com", "/files", "a=2", request.headers
    )  # the query the client did not sign
    text = explain_signature(tampered, now=NOW, public_key=new_key.key.public_key)
    assert "verification: FAILS" in text
    assert '"@target-uri": https://api.example.com/files?a=2' in text


def test_public_key_forms(new_key):
    request, _ = signed(new_key)
    public = OrgCredential.from_token(new_key.token).public_key
    asked: list[str] = []

    def look_up(key_id: str) -> bytes | None:
        asked.append(key_id)
        return bytes(new_key.key.public_key)

    ok = "verification: the signature verifies with this key"
    assert ok in explain_signature(request, now=NOW, public_key=public)
    assert ok in explain_signature(request, now=NOW, public_key=look_up)
    assert asked == [new_key.key.key_id]
    unknown = explain_signature(request, now=NOW, public_key=lambda kid: None)
    assert f"verification: no public key for key id {new_key.key.key_id!r}" in unknown
    assert "not checked (no public key given)" in explain_signature(request, now=NOW)
    assert "not a valid Ed25519 key" in explain_signature(request, now=NOW, public_key=b"short")


def test_a_body_that_does_not_match_its_digest_is_reported(new_key):
    request, _ = signed(new_key)
    text = explain_signature(request, now=NOW, body=b'{"name": "evil.pdf"}')
    assert "content-digest: digest_mismatch" in text


@pytest.mark.parametrize(
    ("headers", "says"),
    [
        pytest.param([], "not signed: no Signature-Input or Signature header", id="unsigned"),
        pytest.param(
            [("signature-input", "sig1=("), ("signature", "sig1=:AA==:")],
            "refused before a signature base could be built: signature_invalid: "
            "Signature-Input is not a valid Structured Fields Dictionary",
            id="malformed",
        ),
        pytest.param(
            [("signature-input", 'sig1=();created=1;keyid="k"')],
            "refused before a signature base could be built: signature_invalid: "
            "Signature-Input and Signature must be sent together",
            id="half",
        ),
    ],
)
def test_requests_without_a_usable_signature(headers, says):
    request = HttpRequest("GET", "https", "api.example.com", "/", "", [("host", "x"), *headers])
    assert explain_signature(request, now=NOW) == says + "\n"


# -- never a secret ----------------------------------------------------------


def test_covered_credential_fields_and_tokens_are_not_shown(new_key):
    other = KeyManager(InMemoryKeyStore()).create_key("org_explain", "another")
    request, _ = signed(
        new_key,
        extra=[("authorization", f"Bearer {new_key.token}"), ("x-debug", f"t={other.token}")],
        components=["@method", "@authority", "@target-uri", "authorization", "x-debug"],
        body=b"",
    )
    text = explain_signature(request, now=NOW, public_key=new_key.key.public_key)
    assert f'"authorization": <a credential, {len("Bearer " + new_key.token)} characters' in text
    assert f'"x-debug": t=scout_sk_{other.key.key_id}_…' in text
    # Still checked against the real bytes: redaction is only in the report.
    assert "verification: the signature verifies with this key" in text
    assert_no_secret(new_key, text)
    assert_no_secret(other, text)


def test_a_token_in_the_keyid_is_cut(new_key):
    request = HttpRequest(
        "GET",
        "https",
        "api.example.com",
        "/",
        "",
        [
            ("host", "api.example.com"),
            (
                "signature-input",
                f'sig1=("@method");created={int(NOW)};keyid="{new_key.token}";nonce="n"',
            ),
            ("signature", "sig1=:" + base64.b64encode(bytes(64)).decode() + ":"),
        ],
    )
    text = explain_signature(request, now=NOW)
    assert_no_secret(new_key, text)
    assert f"scout_sk_{new_key.key.key_id}_…" in text


# -- the multi-line hint -----------------------------------------------------


def test_a_covered_field_on_several_lines_gets_a_hint(new_key):
    request, _ = signed(
        new_key,
        extra=[("x-tags", "a"), ("x-tags", "b")],
        components=["@method", "@authority", "@target-uri", "x-tags", "content-digest"],
    )
    text = explain_signature(request, now=NOW)
    assert '"x-tags": a, b' in text
    assert "hint: 'x-tags' arrived on 2 field lines" in text
    assert "WSGI" in text


# -- reading raw requests ----------------------------------------------------


def test_parse_http_request_forms():
    request, body = parse_http_request(
        "\r\nPUT /a%2Fb?x=1 HTTP/1.1\r\nHost: API.example.com:8443\r\n"
        "X-Folded: one\r\n two\r\n\r\nhi",
        scheme="http",
    )
    assert (request.method, request.scheme, request.authority) == (
        "PUT",
        "http",
        "API.example.com:8443",
    )
    assert (request.path, request.query, body) == ("/a%2Fb", "x=1", b"hi")
    assert request.field("x-folded") == "one two"  # obs-fold, RFC 9112 §5.2

    absolute, _ = parse_http_request("GET https://api.example.com/p?q HTTP/1.1\nAccept: */*\n\n")
    assert (absolute.scheme, absolute.authority, absolute.path, absolute.query) == (
        "https",
        "api.example.com",
        "/p",
        "q",
    )
    headers_only, body = parse_http_request(
        "Signature: sig1=:AA==:\nContent-Type: text/plain\n",
        method="DELETE",
        url="https://api.example.com/files/7",
    )
    assert (headers_only.method, headers_only.authority, headers_only.path) == (
        "DELETE",
        "api.example.com",
        "/files/7",
    )
    assert body == b""


@pytest.mark.parametrize(
    ("raw", "kwargs", "message"),
    [
        pytest.param("Accept: */*\n", {}, "no request line", id="headers-without-url"),
        pytest.param("GET / HTTP/1.1\nsecret-looking-line\n", {}, "line 2", id="not-a-field"),
        pytest.param("GET / HTTP/1.1\n", {}, "Host", id="no-host"),
        pytest.param(" folded\n", {"method": "GET", "url": "https://h/"}, "line 1", id="fold"),
        pytest.param("Accept: */*\n", {"method": "GET", "url": "/relative"}, "absolute", id="url"),
    ],
)
def test_parse_http_request_errors_name_lines_not_values(raw, kwargs, message):
    with pytest.raises(ValueError, match=message) as caught:
        parse_http_request(raw, **kwargs)
    assert "secret-looking" not in str(caught.value)


# -- the CLI -----------------------------------------------------------------


def run(capsys, monkeypatch, raw: str, *argv: str) -> tuple[int, str, str]:
    monkeypatch.setattr("sys.stdin", io.StringIO(raw))
    code = main(list(argv))
    out = capsys.readouterr()
    return code, out.out, out.err


def test_cli_explains_a_raw_request(new_key, capsys, monkeypatch):
    request, raw = signed(new_key)
    code, out, _ = run(capsys, monkeypatch, raw, "explain-signature", "--at", str(NOW))
    assert code == 0
    assert out == explain_signature(request, now=NOW, body=BODY)
    assert "verification: not checked" in out


def test_cli_judges_freshness_now_by_default(new_key, capsys, monkeypatch):
    _, raw = signed(new_key)  # signed at NOW, long before the test runs... or after
    code, out, _ = run(capsys, monkeypatch, raw, "explain-signature")
    assert code == 0
    expected = "signature_expired" if time.time() > NOW + 300 else "signature_not_yet_valid"
    assert f"policy: refused, 401 {expected}" in out


def test_cli_verifies_with_the_stored_key(tmp_path, capsys, monkeypatch):
    from scout_auth.stores.sql import SQLKeyStore

    url = f"sqlite:///{tmp_path / 'keys.db'}"
    assert main(["--store", url, "migrate"]) == 0
    store = SQLKeyStore(url)
    try:
        new = KeyManager(store).create_key("org_explain", "peer client")
    finally:
        store.close()
    capsys.readouterr()
    _, raw = signed(new)
    argv = ["--store", url, "explain-signature", "--at", str(NOW)]
    code, out, _ = run(capsys, monkeypatch, raw, *argv)
    assert code == 0
    assert "verification: the signature verifies with this key" in out
    assert_no_secret(new, out)

    stranger = KeyManager(InMemoryKeyStore()).create_key("org_explain", "not stored")
    _, raw = signed(stranger)
    code, out, _ = run(capsys, monkeypatch, raw, *argv)
    assert code == 0
    assert f"verification: no public key for key id {stranger.key.key_id!r}" in out


def test_cli_reads_header_lines_with_method_and_url(new_key, capsys, monkeypatch):
    request, raw = signed(new_key, body=b"")
    headers_only = raw.split("\r\n", 1)[1]
    code, out, _ = run(
        capsys,
        monkeypatch,
        headers_only,
        "explain-signature",
        "--method",
        "POST",
        "--url",
        "https://api.example.com/files?a=1",
        "--at",
        str(NOW),
    )
    assert code == 0
    assert "policy: accepted" in out
    assert base_of(out) == parse_request_signature(request, now=NOW).base


def test_cli_refuses_unreadable_input_in_one_line(new_key, capsys, monkeypatch):
    code, out, err = run(capsys, monkeypatch, f"{new_key.token}\n", "explain-signature")
    assert code == 1
    assert not out
    assert err.startswith("scout-auth: ")
    assert err.count("\n") == 1
    assert_no_secret(new_key, err)
