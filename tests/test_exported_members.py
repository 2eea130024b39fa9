"""The public face: ``scout_auth.__all__`` and ``scout_auth.exceptions.__all__``, locked."""

from __future__ import annotations

import inspect
import re
from datetime import timedelta

import pytest

import scout_auth
from scout_auth import audit, exceptions
from scout_auth.exceptions import AuthError, ScoutAuthError

EXPORTED = sorted(
    [
        "DEFAULT_ROTATION_GRACE",
        "TOKEN_PREFIX",
        "TOKEN_REGEX",
        "AsyncKeyManager",
        "AsyncVerifier",
        "BodyGuard",
        "CredentialKind",
        "HttpRequest",
        "InMemoryKeyStore",
        "InMemoryNonceCache",
        "KeyEvent",
        "KeyList",
        "KeyManager",
        "KeyRecord",
        "KeyStore",
        "KeyUpdate",
        "LegacyPepper",
        "LegacyRecord",
        "LegacyStatus",
        "NewKey",
        "NonceCache",
        "OrgContext",
        "OrgCredential",
        "OrgPublicKey",
        "RoleRecord",
        "SignaturePolicy",
        "VerifiedRequest",
        "Verifier",
        "WeakKeyNameWarning",
        "__version__",
        "exceptions",
        "explain_signature",
    ]
)

# Data cannot carry a docstring at run time; these are checked by value instead.
DATA = {"DEFAULT_ROTATION_GRACE", "TOKEN_PREFIX", "TOKEN_REGEX", "__version__"}

EXCEPTIONS_EXPORTED = sorted(
    [
        "AuthError",
        "BodyTooLarge",
        "ConfigurationError",
        "DigestError",
        "DigestInvalid",
        "DigestMismatch",
        "InsufficientScope",
        "InvalidKeyOperation",
        "InvalidRequest",
        "InvalidToken",
        "IpNotAllowed",
        "KeyDisabled",
        "KeyExpired",
        "KeyNotFound",
        "LegacyBusy",
        "LegacyDisabled",
        "MissingCredentials",
        "NonceQuotaExceeded",
        "NonceRequired",
        "ReplayDetected",
        "ScoutAuthError",
        "SignatureError",
        "SignatureExpired",
        "SignatureInvalid",
        "SignatureMissingComponent",
        "SignatureNotYetValid",
        "StoreError",
        "StoreUnavailable",
        "UnsupportedAlgorithm",
        "WrongAuthority",
    ]
)

# The wire contract: changing a code or status breaks clients.
AUTH_ERRORS = {
    "InvalidRequest": (400, "invalid_request"),
    "MissingCredentials": (401, "missing_credentials"),
    "InvalidToken": (401, "invalid_token"),
    "KeyDisabled": (401, "key_disabled"),
    "KeyExpired": (401, "key_expired"),
    "InsufficientScope": (403, "insufficient_scope"),
    "IpNotAllowed": (403, "ip_not_allowed"),
    "LegacyDisabled": (401, "legacy_disabled"),
    "StoreUnavailable": (503, "store_unavailable"),
    "LegacyBusy": (503, "legacy_busy"),
    "SignatureInvalid": (401, "signature_invalid"),
    "SignatureMissingComponent": (401, "signature_missing_component"),
    "SignatureExpired": (401, "signature_expired"),
    "SignatureNotYetValid": (401, "signature_not_yet_valid"),
    "NonceRequired": (401, "nonce_required"),
    "ReplayDetected": (401, "replay_detected"),
    "NonceQuotaExceeded": (429, "nonce_quota_exceeded"),
    "UnsupportedAlgorithm": (401, "unsupported_algorithm"),
    "DigestInvalid": (401, "digest_invalid"),
    "DigestMismatch": (401, "digest_mismatch"),
    "BodyTooLarge": (413, "body_too_large"),
    "WrongAuthority": (401, "wrong_authority"),
}
ALLOWED_STATUSES = {400, 401, 403, 413, 429, 503}


def own_docstring(obj: object) -> str:
    """The object's own docstring (not inherited, not dataclass-generated)."""
    doc = obj.__dict__.get("__doc__") if inspect.isclass(obj) else obj.__doc__
    doc = (doc or "").strip()
    if inspect.isclass(obj) and doc.startswith(f"{obj.__name__}("):
        return ""  # @dataclass writes the signature when there is no docstring
    return doc


def test_all_is_locked():
    assert sorted(scout_auth.__all__) == EXPORTED
    assert len(set(scout_auth.__all__)) == len(scout_auth.__all__)


@pytest.mark.parametrize("name", sorted(set(EXPORTED) - DATA))
def test_every_public_name_is_importable_and_documented(name):
    obj = getattr(scout_auth, name)
    assert inspect.isclass(obj) or inspect.ismodule(obj) or callable(obj)
    assert own_docstring(obj), f"scout_auth.{name} has no docstring"


def test_public_data_values():
    assert scout_auth.TOKEN_PREFIX == "scout_sk_"
    assert scout_auth.TOKEN_REGEX.startswith(r"\b" + scout_auth.TOKEN_PREFIX)
    assert timedelta(hours=24) == scout_auth.DEFAULT_ROTATION_GRACE
    assert re.fullmatch(r"\d+\.\d+\.\d+\S*", scout_auth.__version__)


def test_star_import_gives_exactly_all():
    namespace: dict[str, object] = {}
    exec("from scout_auth import *", namespace)  # noqa: S102 - a fixed literal
    assert sorted(k for k in namespace if k != "__builtins__") == EXPORTED


def test_exceptions_all_is_locked():
    assert sorted(exceptions.__all__) == EXCEPTIONS_EXPORTED
    for name in exceptions.__all__:
        cls = getattr(exceptions, name)
        assert issubclass(cls, ScoutAuthError)
        assert own_docstring(cls), f"exceptions.{name} has no docstring"


def test_every_exception_class_in_the_module_is_exported():
    defined = {
        name
        for name, obj in vars(exceptions).items()
        if inspect.isclass(obj)
        and issubclass(obj, BaseException)
        and obj.__module__ == exceptions.__name__
    }
    assert defined == set(EXCEPTIONS_EXPORTED)


def _subclasses(cls: type[AuthError]) -> set[type[AuthError]]:
    found: set[type[AuthError]] = set()
    for sub in cls.__subclasses__():
        if sub.__module__.startswith("scout_auth"):
            found |= {sub} | _subclasses(sub)
    return found


#: Groups for ``except``; never raised, so they carry AuthError's own code.
GROUPS = {"SignatureError", "DigestError"}


def test_auth_errors_have_distinct_stable_codes_and_http_statuses():
    subclasses = {c for c in _subclasses(AuthError) if c.__name__ not in GROUPS}
    got = {cls.__name__: (cls.status, cls.code) for cls in subclasses}
    assert got == AUTH_ERRORS
    codes = [code for _, code in got.values()]
    assert len(set(codes)) == len(codes)
    assert AuthError.code not in codes
    for cls in subclasses:
        assert cls.status in ALLOWED_STATUSES
        assert cls.title
        assert cls.code.isidentifier()
        assert cls.code == cls.code.lower()


@pytest.mark.parametrize("name", sorted(AUTH_ERRORS))
def test_auth_errors_carry_their_code_when_raised(name):
    cls = getattr(exceptions, name)
    if name == "InsufficientScope":
        exc = cls(["drive:read"], ["drive:read"])
    elif name == "SignatureMissingComponent":
        exc = cls("@method")
    else:
        exc = cls()
    assert (exc.status, exc.code) == AUTH_ERRORS[name]
    assert exc.detail
    assert name in repr(exc)
    assert AUTH_ERRORS[name][1] in repr(exc)


def test_signature_and_digest_errors_are_caught_as_groups():
    signature = {
        "SignatureInvalid",
        "WrongAuthority",
        "SignatureMissingComponent",
        "SignatureExpired",
        "SignatureNotYetValid",
        "NonceRequired",
        "ReplayDetected",
        "NonceQuotaExceeded",
        "UnsupportedAlgorithm",
    }
    assert {c.__name__ for c in _subclasses(exceptions.SignatureError)} == signature
    assert {c.__name__ for c in _subclasses(exceptions.DigestError)} == {
        "DigestInvalid",
        "DigestMismatch",
    }
    for group in GROUPS:
        assert getattr(exceptions, group).code == AuthError.code


def test_a_store_outage_in_management_is_no_authentication_failure():
    assert issubclass(exceptions.StoreUnavailable, exceptions.StoreError)
    assert not issubclass(exceptions.StoreError, AuthError)
    error = exceptions.StoreError()
    assert (error.status, error.code, error.retry_after) == (503, "store_unavailable", 1)


def test_management_errors_are_also_builtin_errors():
    assert issubclass(exceptions.KeyNotFound, LookupError)
    assert issubclass(exceptions.InvalidKeyOperation, ValueError)
    assert not issubclass(exceptions.KeyNotFound, AuthError)
    assert not issubclass(exceptions.InvalidKeyOperation, AuthError)


AUDIT_EXPORTED = sorted(
    [
        "DEFAULT_PAGE_SIZE",
        "MAX_PAGE_SIZE",
        "AuditAction",
        "AuditBuffer",
        "AuditEvent",
        "AuditPage",
        "AuditSink",
        "DropPolicy",
        "InMemoryAuditSink",
        "LoggingAuditSink",
        "denial_event",
    ]
)


def test_audit_all_is_locked_and_documented():
    assert sorted(audit.__all__) == AUDIT_EXPORTED
    for name in set(AUDIT_EXPORTED) - {"DEFAULT_PAGE_SIZE", "MAX_PAGE_SIZE", "DropPolicy"}:
        assert own_docstring(getattr(audit, name)), f"scout_auth.audit.{name} has no docstring"
    assert (audit.DEFAULT_PAGE_SIZE, audit.MAX_PAGE_SIZE) == (50, 1000)
