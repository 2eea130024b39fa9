"""RFC 9421 message signatures and RFC 9530 digests, one step at a time.

:meth:`scout_auth.Verifier.verify_request` and :mod:`scout_auth.client` do
all of this for you, and more: only the verifier also checks the key itself
(enabled, not expired, the org, allowed IPs, scopes), caches it, counts usage
and audits refusals. Use the verifier unless you have a reason not to. This
face is for the rest: a client without httpx or requests, a test, a
benchmark that times each step. The steps are pure computation (no I/O), in
the order a server runs them; each raises an
:class:`~scout_auth.exceptions.AuthError` or returns, never ``False``::

    from scout_auth.signing import (
        DEFAULT_MAX_BODY_SIZE, BodyGuard, check_nonce, parse_request_signature,
        verify_ed25519,
    )

    now = time.time()
    sig = parse_request_signature(request, now=now)  # every check that needs no key
    key = store.get_key(sig.key_id)                  # your look-up...
    if key is None or not key.enabled:               # ...and your checks of the key
        raise SignatureInvalid("unknown key")
    verify_ed25519(key.public_key, sig.signature, sig.base)
    if sig.nonce is not None:                        # the default policy requires one
        check_nonce(nonce_cache, sig.key_id, sig.nonce, sig.replay_ttl(now))
    guard = BodyGuard(request.field("content-digest"), max_size=DEFAULT_MAX_BODY_SIZE)
    guard.feed(body, final=True)                     # or chunk by chunk

A client adds ``Content-Digest`` (:func:`content_digest`) to a request with a
body, then the two headers :func:`sign_request` returns. :func:`signature_base`
builds the base (RFC 9421 §2.5) of any component list; for one list used
again and again, :func:`base_plan` works its request-independent part out
once and :func:`build_base` applies it. See docs/signing.md
for the policy, the replay cache and what the body check guarantees.
"""

from ._signing.body import DEFAULT_MAX_BODY_SIZE, BodyGuard
from ._signing.components import (
    BasePlan,
    ComponentId,
    HttpRequest,
    base_plan,
    build_base,
    signature_base,
)
from ._signing.digest import SUPPORTED_DIGEST_ALGORITHMS, content_digest
from ._signing.nonce import InMemoryNonceCache, NonceCache, check_nonce
from ._signing.policy import SignaturePolicy
from ._signing.signature import (
    RequestSignature,
    parse_request_signature,
    sign_request,
    verify_ed25519,
)

__all__ = [
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
