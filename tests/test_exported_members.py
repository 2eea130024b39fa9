"""The public face: every public module's ``__all__``, locked by hand and derived.

The hand locks below say what the faces export, so that a change to the API
is a change to this file. The derived check (as httpx's) says that
``__all__`` tells the truth about each public module (every module whose
dotted path has no ``_`` component):

* every name a module *defines* at its top level (``def``, ``class``, an
  assignment) and does not mark private with a leading ``_`` is in its
  ``__all__``: a forgotten export fails. Exempt: a module's ``logger`` and
  its ``TypeVar`` / ``ParamSpec`` objects, which are typing machinery.
* a *face* (:data:`FACES`: a module that only gathers names from private
  modules) imports only to re-export: every public name it imports is in
  ``__all__`` too. A re-export counts as the face's own name. Other modules
  may import what they use without exporting it (under its own name).
* every name in ``__all__`` exists, and ``from module import *`` gives
  exactly ``__all__``.
"""

from __future__ import annotations

import ast
import importlib
import inspect
import pkgutil
import re
from datetime import timedelta
from types import ModuleType
from typing import ParamSpec, TypeVar

import pytest

import scout_auth
from scout_auth import audit, exceptions, signing, stores, testing
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
        "KeyReport",
        "KeyStore",
        "KeyUpdate",
        "KeyVault",
        "LegacyPepper",
        "LegacyRecord",
        "LegacyStatus",
        "LifetimePolicy",
        "NewKey",
        "NonceCache",
        "OrgContext",
        "OrgCredential",
        "OrgPublicKey",
        "RewrapReport",
        "RoleRecord",
        "ScopeInfo",
        "SealedSeed",
        "SignaturePolicy",
        "VerifiedRequest",
        "Verifier",
        "WeakKeyNameWarning",
        "__version__",
        "exceptions",
        "explain_signature",
        "generate_key_id",
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
        "KeyNotRecoverable",
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
        "VaultError",
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
    # A key that cannot be revealed is a refused operation, not a missing key.
    assert issubclass(exceptions.KeyNotRecoverable, exceptions.InvalidKeyOperation)
    assert not issubclass(exceptions.VaultError, AuthError | ValueError)


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


STORES_EXPORTED = sorted(
    [
        "KEEP",
        "InMemoryKeyStore",
        "KeyEvent",
        "KeyStore",
        "KeyUpdate",
        "Listener",
        "StoreEventsMixin",
    ]
)


def test_stores_all_is_locked_and_documented():
    assert sorted(stores.__all__) == STORES_EXPORTED
    for name in set(STORES_EXPORTED) - {"KEEP", "Listener"}:
        assert own_docstring(getattr(stores, name)), f"scout_auth.stores.{name} has no docstring"


SIGNING_EXPORTED = sorted(
    [
        "DEFAULT_MAX_BODY_SIZE",
        "SUPPORTED_DIGEST_ALGORITHMS",
        "BasePlan",
        "BodyGuard",
        "ComponentId",
        "HttpRequest",
        "InMemoryNonceCache",
        "NonceCache",
        "RequestSignature",
        "SignaturePolicy",
        "base_plan",
        "build_base",
        "check_nonce",
        "content_digest",
        "parse_request_signature",
        "sign_request",
        "signature_base",
        "verify_ed25519",
    ]
)


def test_signing_all_is_locked_and_documented():
    assert sorted(signing.__all__) == SIGNING_EXPORTED
    for name in set(SIGNING_EXPORTED) - {"DEFAULT_MAX_BODY_SIZE", "SUPPORTED_DIGEST_ALGORITHMS"}:
        assert own_docstring(getattr(signing, name)), f"scout_auth.signing.{name} has no docstring"
    assert signing.DEFAULT_MAX_BODY_SIZE == 10 * 1024 * 1024
    assert frozenset({"sha-256", "sha-512"}) == signing.SUPPORTED_DIGEST_ALGORITHMS
    assert signing.HttpRequest is scout_auth.HttpRequest  # one class, two doors


TESTING_EXPORTED = sorted(
    [
        "CONTRACT_LEGACY_PEPPER",
        "AuditContract",
        "CatalogueContract",
        "KeysContract",
        "LegacyDigestContract",
        "PropagationContract",
        "ReferenceContract",
        "ReferenceMachine",
        "RolesUsageContract",
        "StoreContract",
        "VaultContract",
    ]
)


def test_testing_all_is_locked_and_documented():
    assert sorted(testing.__all__) == TESTING_EXPORTED
    for name in set(TESTING_EXPORTED) - {"CONTRACT_LEGACY_PEPPER"}:
        assert own_docstring(getattr(testing, name)), f"scout_auth.testing.{name} has no docstring"
    contracts = {"KeysContract", "ReferenceContract", "AuditContract", "RolesUsageContract"}
    assert {c.__name__ for c in testing.StoreContract.__mro__} >= contracts | {
        "LegacyDigestContract",
        "CatalogueContract",
        "VaultContract",
    }


LEAKS_EXPORTED = sorted(
    [
        "DEFAULT_HMAC_HEADER",
        "DEFAULT_MAX_BODY",
        "DEFAULT_REPLAY_WINDOW",
        "GITHUB_KEY_ID_HEADER",
        "GITHUB_SIGNATURE_HEADER",
        "LEAK_POLICIES",
        "InMemoryReplayGuard",
        "KeyDocumentError",
        "KeySource",
        "LeakPolicy",
        "LeakReceiverApp",
        "LeakReport",
        "OnLeak",
        "RedisReplayGuard",
        "ReplayGuard",
        "ScannerKeys",
        "hmac_signature",
        "leak_receiver_blueprint",
        "parse_key_document",
    ]
)


def test_leaks_all_is_locked_and_documented():
    from scout_auth import leaks

    assert sorted(leaks.__all__) == LEAKS_EXPORTED
    for name in LEAKS_EXPORTED:
        value = getattr(leaks, name)
        if inspect.isclass(value) or inspect.isfunction(value):
            assert own_docstring(value), f"scout_auth.leaks.{name} has no docstring"


# -- derived: __all__ tells the truth ------------------------------------------

#: Modules that only gather names from private modules: they re-export
#: everything they import. (``scout_auth.stores.sql`` still defines its store
#: class itself, so it is checked as an ordinary module.)
FACES = {
    "scout_auth",
    "scout_auth.audit",
    "scout_auth.signing",
    "scout_auth.starlette",
    "scout_auth.stores",
    "scout_auth.stores.redis",
    "scout_auth.testing",
}

#: Dunder names a module exports on purpose.
EXPORTED_DUNDERS = {"__version__"}


def public_modules() -> list[str]:
    """Every module of the package whose dotted path has no ``_`` component."""
    found = ["scout_auth"]
    for info in pkgutil.walk_packages(scout_auth.__path__, "scout_auth."):
        if not any(part.startswith("_") for part in info.name.split(".")):
            found.append(info.name)
    return sorted(found)


def top_level_bindings(module: ModuleType) -> tuple[set[str], set[str]]:
    """``(defined, imported)``: names bound at the module's top level (inside a
    top-level ``if`` / ``try`` / ``with`` too), by definition or by import."""
    defined: set[str] = set()
    imported: set[str] = set()

    def visit(body: list[ast.stmt]) -> None:
        for node in body:
            if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef):
                defined.add(node.name)
            elif isinstance(node, ast.Assign | ast.AnnAssign | ast.AugAssign):
                targets = node.targets if isinstance(node, ast.Assign) else [node.target]
                for target in targets:
                    defined.update(n.id for n in ast.walk(target) if isinstance(n, ast.Name))
            elif isinstance(node, ast.ImportFrom) and node.module != "__future__":
                imported.update(alias.asname or alias.name for alias in node.names)
            elif isinstance(node, ast.Import):
                imported.update(alias.asname or alias.name.split(".")[0] for alias in node.names)
            elif isinstance(node, ast.If | ast.With):
                visit(node.body)
                visit(getattr(node, "orelse", []))
            elif isinstance(node, ast.Try):
                visit(node.body)
                for handler in node.handlers:
                    visit(handler.body)
                visit(node.orelse)
                visit(node.finalbody)

    visit(ast.parse(inspect.getsource(module)).body)
    return defined, imported


def _exempt(module: ModuleType, name: str) -> bool:
    value = getattr(module, name, None)
    return name == "logger" or isinstance(value, TypeVar | ParamSpec)


def _public(names: set[str]) -> set[str]:
    return {n for n in names if not n.startswith("_") or n in EXPORTED_DUNDERS}


def test_the_public_modules_are_the_ones_we_think():
    assert set(FACES) <= set(public_modules())
    assert "scout_auth.testing" in public_modules()


@pytest.mark.parametrize("name", public_modules())
def test_all_is_what_the_module_defines(name):
    module = importlib.import_module(name)
    exported = getattr(module, "__all__", None)
    assert exported is not None, f"{name} has no __all__"
    assert len(set(exported)) == len(exported), f"{name}.__all__ repeats a name"
    defined, imported = top_level_bindings(module)
    own = {n for n in _public(defined) if not _exempt(module, n)}
    expected = own | _public(imported) if name in FACES else own
    missing = expected - set(exported)
    assert not missing, f"{name} defines or re-exports {sorted(missing)} but does not export it"
    unbound = set(exported) - defined - imported
    assert not unbound, f"{name}.__all__ names {sorted(unbound)}, which it never binds"
    if name not in FACES:
        # What else it exports must be a re-export on purpose (e.g. stores.sql's tables).
        assert set(exported) - own <= imported


@pytest.mark.parametrize("name", public_modules())
def test_star_import_gives_exactly_all_everywhere(name):
    module = importlib.import_module(name)
    namespace: dict[str, object] = {}
    exec(f"from {name} import *", namespace)  # noqa: S102 - a module name of our own
    assert sorted(k for k in namespace if k != "__builtins__") == sorted(module.__all__)
