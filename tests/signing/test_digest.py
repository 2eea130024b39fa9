"""RFC 9530 Content-Digest: known answers, streaming, and malformed headers."""

from __future__ import annotations

import contextlib
import itertools
from unittest import mock

import http_sf
import pytest
from hypothesis import given
from hypothesis import strategies as st

from scout_auth._signing import digest as _digest
from scout_auth._signing.digest import DigestChecker, content_digest
from scout_auth.exceptions import DigestInvalid, DigestMismatch

HELLO = b'{"hello": "world"}'
HELLO_NL = b'{"hello": "world"}\n'

# RFC 9530 §2 example value (content '{"hello": "world"}' plus a newline).
RFC9530_SHA512 = (
    "sha-512=:YMAam51Jz/jOATT6/zvHrLVgOYTGFy1d6GJiOHTohq4yP+pgk4vf2aCs"
    "yRZOtw8MjkM7iw7yZ/WkppmM44T3qg==:"
)
# RFC 9421 Appendix B.2 test-request, content '{"hello": "world"}'.
RFC9421_SHA512 = (
    "sha-512=:WZDPaVn/7XgHaAy8pmojAkGWoRx2UFChF41A2svX+TaPm+AbwAgB"
    "WnrIiYllu7BNNyealdVLvRwEmTHWXvJwew==:"
)
HELLO_SHA256 = "sha-256=:X48E9qOokqqrvdts8nOJRJN3OWDUoyWxBf7kbu9DBPE=:"
EMPTY_SHA256 = "sha-256=:47DEQpj8HBSa+/TImW+5JCeuQeRkm5NMpJWZG3hSuFU=:"


@pytest.mark.parametrize(
    ("body", "algorithms", "expected"),
    [
        pytest.param(HELLO_NL, ("sha-512",), RFC9530_SHA512, id="rfc9530-s2-sha512"),
        pytest.param(HELLO, ("sha-512",), RFC9421_SHA512, id="rfc9421-b2-test-request"),
        pytest.param(HELLO, ("sha-256",), HELLO_SHA256, id="sha256-default-alg"),
        pytest.param(b"", ("sha-256",), EMPTY_SHA256, id="empty-body"),
        pytest.param(
            HELLO, ("sha-256", "sha-512"), f"{HELLO_SHA256}, {RFC9421_SHA512}", id="two-algorithms"
        ),
    ],
)
def test_content_digest_known_answers(body, algorithms, expected):
    assert content_digest(body, algorithms) == expected
    checker = DigestChecker.from_header(expected)
    checker.update(body)
    checker.verify()


def test_default_algorithm_is_sha256():
    assert content_digest(HELLO) == HELLO_SHA256


@pytest.mark.parametrize(
    "algorithms",
    [pytest.param((), id="none"), pytest.param(("md5",), id="deprecated-md5")],
)
def test_content_digest_rejects_bad_algorithms(algorithms):
    with pytest.raises(ValueError, match="algorithm"):
        content_digest(HELLO, algorithms)


@given(body=st.binary(max_size=2048), cuts=st.lists(st.integers(0, 2048), max_size=8))
def test_streaming_in_any_chunking_matches_one_shot(body, cuts):
    checker = DigestChecker.from_header(content_digest(body, ("sha-256", "sha-512")))
    bounds = sorted({0, len(body), *(c for c in cuts if c <= len(body))})
    for start, end in itertools.pairwise(bounds):
        checker.update(body[start:end])
    checker.verify()


@pytest.mark.parametrize(
    ("header", "chunks"),
    [
        pytest.param(HELLO_SHA256, [HELLO[:-1]], id="truncated-body"),
        pytest.param(HELLO_SHA256, [HELLO, b"x"], id="extra-byte"),
        pytest.param(HELLO_SHA256, [HELLO.upper()], id="changed-body"),
        pytest.param(f"{HELLO_SHA256}, sha-512=:{'A' * 86}==:", [HELLO], id="one-of-two-wrong"),
        pytest.param(EMPTY_SHA256, [HELLO], id="digest-of-empty-body"),
    ],
)
def test_mismatch_is_rejected(header, chunks):
    checker = DigestChecker.from_header(header)
    for chunk in chunks:
        checker.update(chunk)
    with pytest.raises(DigestMismatch) as info:
        checker.verify()
    assert info.value.code == "digest_mismatch"
    assert info.value.status == 401


def test_unknown_algorithms_are_ignored():
    checker = DigestChecker.from_header(f"md5=:AAAAAAAAAAAAAAAAAAAAAA==:, {HELLO_SHA256}")
    assert checker.algorithms == ("sha-256",)
    checker.update(HELLO)
    checker.verify()


@pytest.mark.parametrize(
    "header",
    [
        pytest.param("", id="empty"),
        pytest.param("sha-256", id="bare-key"),
        pytest.param("sha-256=X48E9qOokqqrvdts8nOJRJN3OWDUoyWxBf7kbu9DBPE=", id="token-not-bytes"),
        pytest.param('sha-256="X48E9qOokqqrvdts8nOJRJN3OWDUoyWxBf7kbu9DBPE="', id="string"),
        pytest.param("sha-256=:X48E9qOokqqrvdts8nOJRJN3OWDUoyWxBf7kbu9DBPE=", id="unterminated"),
        pytest.param("sha-256=:AAAA:", id="wrong-length"),
        pytest.param("sha-256=(:AAAA:)", id="inner-list"),
        pytest.param("md5=:AAAAAAAAAAAAAAAAAAAAAA==:", id="only-unsupported"),
        pytest.param("SHA-256=:X48E9qOokqqrvdts8nOJRJN3OWDUoyWxBf7kbu9DBPE=:", id="uppercase-key"),
        pytest.param(f"{HELLO_SHA256}, {EMPTY_SHA256}", id="duplicate-algorithm"),
        pytest.param(f"{HELLO_SHA256},", id="trailing-comma"),
        pytest.param("sha-256=:é:", id="non-ascii"),
    ],
)
def test_malformed_header_is_rejected(header):
    with pytest.raises(DigestInvalid) as info:
        DigestChecker.from_header(header)
    assert info.value.code == "digest_invalid"


def test_checker_is_single_use():
    checker = DigestChecker.from_header(EMPTY_SHA256)
    checker.verify()
    with pytest.raises(RuntimeError):
        checker.verify()
    with pytest.raises(RuntimeError):
        checker.update(b"late")


def test_repr_does_not_leak_digests():
    assert "X48E9" not in repr(DigestChecker.from_header(HELLO_SHA256))


def _checker_outcome(header: str, *, fast: bool) -> object:
    with contextlib.ExitStack() as stack:
        if not fast:
            stack.enter_context(
                mock.patch.object(_digest, "match_byte_sequence_member", return_value=None)
            )
        try:
            checker = DigestChecker.from_header(header)
        except DigestInvalid as exc:
            return exc.detail
        return checker._expected


_DIGEST_HEADERS = st.builds(
    lambda name, raw: f"{name}={http_sf.ser((raw, {}))}",
    st.sampled_from(["sha-256", "sha-512", "md5", "x"]),
    st.binary(min_size=32, max_size=32) | st.binary(min_size=64, max_size=64) | st.binary(),
)


@given(
    _DIGEST_HEADERS,
    st.lists(
        st.tuples(st.integers(0, 120), st.sampled_from([" ", "=", ":", ",", ";a", "A", "-", "é"])),
        max_size=2,
    ),
)
def test_fast_path_agrees_with_http_sf(header, edits):
    # The canonical one-member header is read by the strict fast path (_sf);
    # it must mean exactly what http_sf reads, near-misses included.
    for position, chunk in edits:
        i = position % (len(header) + 1)
        header = header[:i] + chunk + header[i:]
    assert _checker_outcome(header, fast=True) == _checker_outcome(header, fast=False)
