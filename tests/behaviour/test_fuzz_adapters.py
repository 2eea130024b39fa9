"""Fuzz every adapter with arbitrary methods, paths, header bytes and bodies.

Each property runs against the Starlette middleware, FastAPI over it, the
Flask extension and the bare WSGI middleware — with the apps of
tests/apps.py and with catch-all apps whose only protection is the adapter
(:data:`~tests.behaviour.harness.TARGETS`), driven by raw ASGI / WSGI calls
(:mod:`tests.behaviour.harness`). The properties:

* no valid credential: never a 5xx (nor an exception, nor a hang), never a
  2xx/3xx except on an exempt route;
* a valid key with ``scopes=[]``: never a 5xx, never a 2xx on a route a
  ``rules=`` entry asks a scope for — whatever the method's case, ``HEAD``
  for a ``GET`` rule, the mount point or the spelling of the path;
* a genuinely signed request with one covered byte changed (a header, the
  body, the method, the path, the query): 400/401/403/413, never 2xx or 5xx.

Bounded and reproducible (:data:`~tests.behaviour.strategies.suite_settings`);
``scripts/fuzz`` runs the same properties for longer before a release.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from hypothesis import given

from tests.behaviour import harness
from tests.behaviour.harness import PROPERTIES, TARGETS, call, signed_request, world
from tests.behaviour.strategies import RawRequest, suite_settings

TARGET_IDS = [f"{adapter}-{kind}" for adapter, kind in TARGETS]


@pytest.fixture(scope="module", autouse=True)
def _portal() -> Iterator[None]:
    with harness.portal():
        yield


def bearer(token: str) -> tuple[bytes, bytes]:
    return (b"authorization", b"Bearer " + token.encode())


# -- the harness can say yes: otherwise every property would pass vacuously --


@pytest.mark.parametrize(("adapter", "kind"), TARGETS, ids=TARGET_IDS)
def test_a_valid_key_gets_through(adapter: str, kind: str) -> None:
    req = RawRequest(raw_path=b"/whoami", headers=(bearer(world.empty),))
    assert call(adapter, kind, req).status == 200


@pytest.mark.parametrize(("adapter", "kind"), TARGETS, ids=TARGET_IDS)
@pytest.mark.parametrize(
    ("method", "path"),
    [
        pytest.param("GET", b"/write", id="get-write"),
        pytest.param("POST", b"/write", id="post-write"),
        pytest.param("GET", b"/read", id="get-read"),
    ],
)
def test_a_key_without_scopes_is_refused_by_the_rules(
    adapter: str, kind: str, method: str, path: bytes
) -> None:
    req = RawRequest(method=method, raw_path=path, headers=(bearer(world.empty),))
    assert call(adapter, kind, req).status == 403


@pytest.mark.parametrize(("adapter", "kind"), TARGETS, ids=TARGET_IDS)
def test_an_unchanged_signed_request_gets_through(adapter: str, kind: str) -> None:
    outcome = call(adapter, kind, signed_request(world.signer, b'{"file": "q3.pdf"}'))
    assert outcome.status == 200, outcome.describe()


@pytest.mark.parametrize(("adapter", "kind"), TARGETS, ids=TARGET_IDS)
def test_no_credential_is_refused(adapter: str, kind: str) -> None:
    assert call(adapter, kind, RawRequest(raw_path=b"/whoami")).status == 401
    assert call(adapter, kind, RawRequest(raw_path=b"/health")).status == 200


# -- the properties ------------------------------------------------------------


def _property(name: str) -> Any:
    strategy, run = PROPERTIES[name]

    @pytest.mark.parametrize(("adapter", "kind"), TARGETS, ids=TARGET_IDS)
    @suite_settings
    @given(value=strategy)
    def test(adapter: str, kind: str, value: Any) -> None:
        run(adapter, kind, value)

    test.__doc__ = run.__doc__
    return test


test_fuzz_unauthenticated = _property("unauthenticated")
test_fuzz_scoped_key = _property("scoped")
test_fuzz_signed_garbage = _property("signed_garbage")
