"""read_verified_body: where a signed WSGI body is kept, and that every path still checks it."""

from __future__ import annotations

import io
import tempfile

import pytest

from scout_auth.exceptions import BodyTooLarge, DigestMismatch
from scout_auth.signing import BodyGuard, content_digest
from scout_auth.wsgi import read_verified_body

BODY = b'{"items": [1, 2, 3]}'
BIG = b"x" * (1024 * 1024 + 1)  # one byte past what is kept in memory


def environ(body: bytes, *, length: bool = True) -> dict[str, object]:
    env: dict[str, object] = {"wsgi.input": io.BytesIO(body)}
    if length:
        env["CONTENT_LENGTH"] = str(len(body))
    else:
        env["wsgi.input_terminated"] = True
    return env


def guard(body: bytes, max_size: int = 10 * 1024 * 1024) -> BodyGuard:
    return BodyGuard(content_digest(body), max_size=max_size)


def test_a_declared_body_that_fits_in_memory_is_a_bytesio():
    env = environ(BODY)
    read_verified_body(env, guard(BODY))
    stream = env["wsgi.input"]
    assert type(stream) is io.BytesIO
    assert stream.read() == BODY
    assert env["CONTENT_LENGTH"] == str(len(BODY))


@pytest.mark.parametrize("length", [True, False], ids=["declared", "chunked"])
def test_a_tampered_body_is_refused_and_never_handed_over(length):
    env = environ(BODY + b" ", length=length)
    original = env["wsgi.input"]
    with pytest.raises(DigestMismatch):
        read_verified_body(env, guard(BODY))
    assert env["wsgi.input"] is original


def test_a_body_without_a_length_still_spools():
    env = environ(BODY, length=False)
    read_verified_body(env, guard(BODY))
    stream = env["wsgi.input"]
    assert isinstance(stream, tempfile.SpooledTemporaryFile)
    assert stream.read() == BODY
    assert env["CONTENT_LENGTH"] == str(len(BODY))


def test_a_body_past_one_mib_spools():
    env = environ(BIG)
    read_verified_body(env, guard(BIG))
    stream = env["wsgi.input"]
    assert isinstance(stream, tempfile.SpooledTemporaryFile)
    assert stream.read() == BIG


def test_a_declared_length_over_the_limit_is_refused_before_reading():
    env = environ(BODY)
    with pytest.raises(BodyTooLarge):
        read_verified_body(env, guard(BODY, max_size=len(BODY) - 1))
    assert env["wsgi.input"].tell() == 0  # type: ignore[attr-defined]
