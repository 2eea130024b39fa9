"""scout_auth: authentication middleware for organization API keys.

Org Credentials are Ed25519 key pairs: the client holds the private key (a
``scout_sk_…`` bearer token), the server stores the public key only.

Quick start::

    from scout_auth import InMemoryKeyStore, KeyManager, Verifier

    store = InMemoryKeyStore()
    new = KeyManager(store).create_key("org_1", "billing-sync prod")
    ctx = Verifier(store).verify_token(new.token)
    assert ctx.org_id == "org_1"

Viewing a key again is opt-in: :class:`KeyVault` (docs/vault.md).

Key material (PEM, JWK) for other platforms: :class:`OrgCredential` (from a
token) and :class:`OrgPublicKey` (from a stored record). A peer's signature
that fails: :func:`explain_signature` shows the base the server rebuilt.

Middlewares live in :mod:`scout_auth.starlette`, :mod:`scout_auth.wsgi` and
:mod:`scout_auth.flask`.
"""

from __future__ import annotations

from . import exceptions
from ._core.keys import OrgCredential, OrgPublicKey
from ._core.lifecycle import DEFAULT_ROTATION_GRACE, WeakKeyNameWarning
from ._core.pepper import LegacyPepper
from ._core.policy import LifetimePolicy
from ._core.records import (
    CredentialKind,
    KeyList,
    KeyRecord,
    LegacyRecord,
    LegacyStatus,
    NewKey,
    OrgContext,
    RoleRecord,
    ScopeInfo,
    SealedSeed,
)
from ._core.report import KeyReport
from ._core.tokens import TOKEN_PREFIX, TOKEN_REGEX, generate_key_id
from ._core.vault import KeyVault, RewrapReport
from ._drivers.manager import AsyncKeyManager, KeyManager
from ._drivers.verifier import AsyncVerifier, VerifiedRequest, Verifier
from ._signing.body import BodyGuard
from ._signing.components import HttpRequest
from ._signing.explain import explain_signature
from ._signing.nonce import InMemoryNonceCache, NonceCache
from ._signing.policy import SignaturePolicy
from .stores import InMemoryKeyStore, KeyEvent, KeyStore, KeyUpdate

__version__ = "0.1.0"

__all__ = [
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
