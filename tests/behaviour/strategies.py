"""Hypothesis strategies for fuzzing every adapter with what a server could hand it.

A :class:`RawRequest` is the request *as bytes on the wire*: method, raw
(still percent-encoded) path, query, repeated header fields with any byte in
their names and values, the body in chunks, the mount point (``root_path`` /
``SCRIPT_NAME``) and the peer address. :mod:`tests.behaviour.harness` turns
one into an ASGI scope or a PEP 3333 environ itself, so the adapters see
values that ``httpx`` or werkzeug's test client would refuse to build.

Two runs use these strategies:

* ``tests/behaviour/test_fuzz_adapters.py`` — in the suite: bounded
  (:data:`SUITE_EXAMPLES` examples per property and adapter), derandomized
  and without the example database, so CI runs the same inputs each time.
* ``scripts/fuzz`` (``python -m tests.behaviour.fuzz_long --minutes 10``) —
  before a release: the same properties with random seeds, many more
  examples and no deadline, until the time is up; it prints a summary of
  every distinct falsifying example it found.
"""

from __future__ import annotations

import base64
import string
from dataclasses import dataclass, field, replace
from urllib.parse import quote

from hypothesis import HealthCheck, settings
from hypothesis import strategies as st

__all__ = [
    "HEAVY_HEADERS",
    "MUTATION_TARGETS",
    "SUITE_EXAMPLES",
    "Mutation",
    "RawRequest",
    "bodies",
    "equivalent",
    "garbage_authorization",
    "header_fields",
    "methods",
    "mutate",
    "mutations",
    "raw_paths",
    "raw_requests",
    "root_paths",
    "rule_methods",
    "rule_paths",
    "suite_settings",
]

#: Examples per property and adapter in the suite (the whole file stays well under 30 s).
SUITE_EXAMPLES = 150

#: Settings of the in-suite run: reproducible (derandomized, no database), no deadline.
suite_settings = settings(
    max_examples=SUITE_EXAMPLES,
    deadline=None,
    derandomize=True,
    database=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)


@dataclass(frozen=True)
class RawRequest:
    """One request as a server receives it (see the module docstring)."""

    method: str = "GET"
    raw_path: bytes = b"/"
    query: bytes = b""
    headers: tuple[tuple[bytes, bytes], ...] = ()
    body: bytes = b""
    #: How the body is cut into ``http.request`` messages (sizes; the rest is the last chunk).
    chunks: tuple[int, ...] = ()
    #: The mount point: ASGI ``root_path``, WSGI ``SCRIPT_NAME``.
    root_path: str = ""
    client: tuple[str, int] | None = ("127.0.0.1", 50000)
    host: bytes = b"testserver"
    extra: dict[str, str] = field(default_factory=dict, compare=False)

    def with_headers(self, *fields: tuple[bytes, bytes]) -> RawRequest:
        """The same request with ``fields`` in front of its header fields."""
        return replace(self, headers=(*fields, *self.headers))


# -- methods ---------------------------------------------------------------

_KNOWN_METHODS = [
    "GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS", "TRACE", "CONNECT",
    "PROPFIND", "QUERY", "get", "head", "post", "options", "Get", "hEAD", "GET ",
    " GET", "", "G\x00T", "GÉT", "*",
]  # fmt: skip

#: Methods: the registered ones, their case variants, and any latin-1 text.
methods = st.one_of(
    st.sampled_from(_KNOWN_METHODS),
    st.text(alphabet=st.characters(min_codepoint=0, max_codepoint=255), max_size=12),
)

# -- paths -----------------------------------------------------------------

_SEGMENTS = [
    "", ".", "..", "%2e", "%2E%2e", "%2f", "%2F", "%00", "%0a", "%0A", "%0d", "%09", "%20",
    "%ff", "%c3%a9", "%e2%80%ae", "%25", "%", "%zz", "é", ";", ";x=1", "*", "\\", "..;",
    "health", "public", "info", "read", "write", "whoami", "echo", "READ", "Write", "x",
]  # fmt: skip
_ROUTES = ["/health", "/public/info", "/read", "/write", "/whoami", "/echo", "/writer"]


def _segment() -> st.SearchStrategy[str]:
    return st.one_of(
        st.sampled_from(_SEGMENTS),
        st.text(alphabet=string.ascii_letters + string.digits + "-._~%", max_size=6),
    )


def _joined(parts: list[str]) -> bytes:
    return ("/" + "/".join(parts)).encode("utf-8")


def _decorate(route: str, suffix: str) -> bytes:
    return (route + suffix).encode("utf-8")


#: Raw request targets: known routes with a twist, segment soups, raw bytes.
raw_paths = st.one_of(
    st.sampled_from(_ROUTES).map(str.encode),
    st.builds(
        _decorate,
        st.sampled_from(_ROUTES),
        st.sampled_from(
            [
                "/",
                "//",
                "/..",
                "/../whoami",
                "%0a",
                "%0Ax",
                "%0d%0a",
                "\n",
                "%00",
                "\x00",
                ";",
                ".",
                "%2f",
                "/%2e%2e/write",
                "é",
                "%c3%a9",
                "?",
                "#",
                " ",
                "%20",
                "*",
                "x",
            ]
        ),
    ),
    st.lists(_segment(), min_size=1, max_size=6).map(_joined),
    st.builds(lambda b: b"/" + b, st.binary(max_size=24)),
    st.binary(max_size=16),  # not even a leading slash ("*", "", absolute forms)
    st.sampled_from(
        [
            b"/public/../whoami",
            b"//whoami",
            b"/./read",
            b"/read/",
            b"/health/..",
            b"/public%2f..%2fwhoami",
            b"/write%0a",
            b"/read%00",
            b"*",
        ]
    ),
)

#: Methods and paths aimed at the routes the fuzz apps' ``rules=`` protect.
rule_methods = st.sampled_from(
    ["GET", "HEAD", "POST", "PUT", "OPTIONS", "DELETE", "get", "head", "Get", "hEaD", "post"]
)
rule_paths = st.one_of(
    st.sampled_from([b"/read", b"/write", b"/write/x", b"/writer", b"/read/", b"/write/"]),
    st.sampled_from([b"/read", b"/write"]),
    st.builds(
        _decorate,
        st.sampled_from(["/read", "/write"]),
        st.sampled_from(
            [
                "%0a",
                "%0A",
                "%0d",
                "%0d%0a",
                "\n",
                "%00",
                "%09",
                "%20",
                ";",
                ".",
                "/",
                "//",
                "%2f",
                "é",
                "#",
                "?",
            ]
        ),
    ),
)

#: Where the app is mounted (ASGI ``root_path`` / WSGI ``SCRIPT_NAME``).
root_paths = st.sampled_from(["", "", "", "/api", "/v1/svc", "/public", "/health"])

# -- headers ---------------------------------------------------------------

#: Header names whose garbage reaches the most parsing code.
HEAVY_HEADERS = [
    b"authorization", b"signature-input", b"signature", b"content-digest", b"content-length",
    b"transfer-encoding", b"forwarded", b"x-forwarded-for", b"x-forwarded-proto",
    b"x-forwarded-host", b"host", b"content-type", b"x-api-key", b"expect", b"cookie",
    b"connection", b"te", b"accept-signature",
]  # fmt: skip

_B64 = st.binary(max_size=48).map(base64.b64encode)


def _digits() -> st.SearchStrategy[bytes]:
    return st.sampled_from(
        [b"0", b"-1", b"1e9", b"99999999999999999999999", b"1700000000", b"", b"0x10", b"\xb9"]
    )


def _huge() -> st.SearchStrategy[bytes]:
    # A long value built from one drawn byte: 16 KiB without drawing 16 KiB.
    return st.builds(lambda b, n: bytes([b]) * n, st.integers(0, 255), st.integers(1, 16384))


def _sf_garbage() -> st.SearchStrategy[bytes]:
    parts = st.sampled_from(
        [b"sig1=", b"(", b")", b'"@method"', b'"@authority"', b'"@target-uri"', b'"@path"',
         b'"@query-param";name="a"', b'"content-digest"', b';created=', b';expires=', b';keyid=',
         b';alg="ed25519"', b';nonce="n"', b";tag=", b":", b"=", b",", b" ", b'"', b"\\", b"?1",
         b"sha-256=:", b"sha-512=:", b"*", b"\xe9", b"\x00", b"%"]
    )  # fmt: skip
    return st.lists(st.one_of(parts, _digits(), _B64), max_size=12).map(b"".join)


#: ``Authorization`` values that must never authenticate.
garbage_authorization = st.one_of(
    st.sampled_from([b"Basic \xe9", b"Basic Zm9v\xff", b"Bearer \xe9", b"Basic  ", b"Basic =",
                     b"Bearer scout_sk_\xe9", b"\xe9", b"Basic \x00", b"Basic YTpi\r\n"]),
    st.builds(lambda s, r: s + r, st.sampled_from([b"Bearer ", b"bearer ", b"Basic ", b"basic ",
              b"BASIC\t", b"Bearer  ", b"Digest ", b"", b"Bearer scout_sk_", b"Basic \xe9"]),
              st.binary(max_size=64)),
    st.builds(lambda r: b"Basic " + base64.b64encode(r), st.binary(max_size=48)),
    st.builds(lambda org, secret: b"Basic " + base64.b64encode(org + b":" + secret),
              st.sampled_from([b"org_legacy", b"org_a", b"", b"\xff"]), st.binary(max_size=24)),
    st.builds(lambda r: b"Bearer scout_sk_" + r,
              st.text(alphabet=string.ascii_letters + string.digits + "_", max_size=80)
              .map(str.encode)),
)  # fmt: skip


_FORWARDED = st.sampled_from(
    [b"for=10.1.2.3", b"10.1.2.3", b'for="[::1]:80"', b"for=_hidden", b"unknown",
     b"1.2.3.4, 10.1.2.3", b"for=10.1.2.3;proto=https;host=evil", b"[", b"\xff", b",",
     b"for=", b"10.1.2.3:99999", b"::ffff:10.1.2.3", b"999.1.1.1"]
)  # fmt: skip
_ANY_VALUE = st.one_of(st.binary(max_size=64), _huge())
# Built once: a strategy made per draw would be validated per draw (slow).
_VALUES: dict[bytes, st.SearchStrategy[bytes]] = {
    b"authorization": garbage_authorization,
    b"content-length": st.one_of(_digits(), st.binary(max_size=8)),
    b"forwarded": _FORWARDED,
    b"x-forwarded-for": _FORWARDED,
    **dict.fromkeys(
        [b"signature-input", b"signature", b"content-digest", b"accept-signature"],
        st.one_of(_sf_garbage(), st.binary(max_size=64), _huge()),
    ),
}


_NAMES = st.one_of(st.sampled_from(HEAVY_HEADERS), st.binary(max_size=16).map(bytes.lower))


@st.composite
def _header_field(draw: st.DrawFn) -> tuple[bytes, bytes]:
    name = draw(_NAMES)
    return name, draw(_VALUES.get(name, _ANY_VALUE))


#: Header fields (repeats allowed, names lower-cased as ASGI delivers them).
header_fields = st.lists(_header_field(), max_size=8).map(tuple)

#: Bodies: empty, small, or larger than the fuzz apps' ``max_body_size``.
bodies = st.one_of(
    st.just(b""),
    st.binary(max_size=256),
    st.builds(lambda b, n: bytes([b]) * n, st.integers(0, 255), st.integers(1, 4096)),
)

_CLIENTS = st.sampled_from(
    [("127.0.0.1", 50000), ("203.0.113.9", 1), None, ("::1", 0), ("not-an-ip", 0), ("", 0)]
)


_QUERIES = st.one_of(
    st.just(b""),
    st.binary(max_size=24).map(lambda q: quote(q).encode()),
    # Raw, but printable ASCII: Starlette itself (not scout_auth) fails on
    # a query that is not UTF-8 (datastructures.URL).
    st.binary(max_size=24).map(lambda q: bytes(0x21 + b % 94 for b in q)),
)
_CHUNK_SIZES = st.lists(st.integers(0, 4096), max_size=3).map(tuple)


@st.composite
def raw_requests(draw: st.DrawFn) -> RawRequest:
    """Any request a server could pass on, with no valid credential in it."""
    return RawRequest(
        method=draw(methods),
        raw_path=draw(raw_paths),
        query=draw(_QUERIES),
        headers=draw(header_fields),
        body=draw(bodies),
        chunks=draw(_CHUNK_SIZES),
        root_path=draw(root_paths),
        client=draw(_CLIENTS),
    )


# -- near-valid signed requests ---------------------------------------------

#: What a mutation of a genuinely signed request changes (all of it is covered).
MUTATION_TARGETS = [
    "signature-input", "signature", "content-digest", "content-type", "host",
    "body", "method", "path", "query",
]  # fmt: skip


@dataclass(frozen=True)
class Mutation:
    """Change one thing of a signed request: replace a byte, or cut the value short."""

    target: str
    op: str  # "replace" | "truncate"
    index: int
    byte: int


#: One change to a signed request (applied by :func:`mutate`).
mutations = st.builds(
    Mutation,
    target=st.sampled_from(MUTATION_TARGETS),
    op=st.sampled_from(["replace", "replace", "truncate"]),
    index=st.integers(0, 10_000),
    byte=st.integers(0, 255),
)


def _change(value: bytes, m: Mutation) -> bytes | None:
    if not value:
        return None
    i = m.index % len(value)
    if m.op == "truncate":
        return value[:i]
    if value[i] == m.byte:
        return None
    return value[:i] + bytes([m.byte]) + value[i + 1 :]


def _b64_items(value: bytes) -> list[bytes] | None:
    # The byte sequences of an RFC 8941 dictionary ``k=:b64:`` (None if not that shape).
    out = []
    for item in value.split(b","):
        _, sep, rest = item.strip().partition(b"=:")
        if not sep or not rest.endswith(b":"):
            return None
        try:
            out.append(base64.b64decode(rest[:-1], validate=True))
        except ValueError:
            return None
    return out


def equivalent(target: str, before: bytes, after: bytes) -> bool:
    """Whether a mutation kept the meaning (a case change of the host, base64 pad bits)."""
    if target == "host":
        # RFC 9421 §2.2.3: @authority is lower-cased. An empty Host means "the
        # server's own name" (WSGI: SERVER_NAME), which is the signed one.
        return not after or before.lower() == after.lower()
    if target in ("signature", "content-digest"):
        decoded = _b64_items(after)
        return decoded is not None and decoded == _b64_items(before)
    if target in ("content-type", "signature-input"):
        return before.strip(b" \t") == after.strip(b" \t")  # RFC 9110 §5.5: OWS trimmed
    return False


def mutate(req: RawRequest, m: Mutation) -> RawRequest | None:
    """``req`` with ``m`` applied, or ``None`` when the change is a no-op or keeps the meaning."""
    if m.target == "body":
        after = _change(req.body, m)
        return None if after is None else replace(req, body=after)
    if m.target == "method":
        method = _change(req.method.encode("latin-1"), m)
        return None if method is None else replace(req, method=method.decode("latin-1"))
    if m.target == "path":
        path = _change(req.raw_path, m)
        return None if path is None else replace(req, raw_path=path)
    if m.target == "query":
        query = _change(req.query, m)
        return None if query is None else replace(req, query=query)
    if m.target == "host":
        host = _change(req.host, m)
        if host is None or equivalent("host", req.host, host):
            return None
        return replace(req, host=host)
    name = m.target.encode()
    headers = list(req.headers)
    for i, (key, value) in enumerate(headers):
        if key == name:
            after = _change(value, m)
            if after is None or equivalent(m.target, value, after):
                return None
            headers[i] = (key, after)
            return replace(req, headers=tuple(headers))
    return None
