"""RFC 9421 HTTP Message Signatures for requests, Ed25519 only. Sans-I/O.

Theory of operation
-------------------
Verifying is split in two so the caller can fetch the key in between (the
verifier drives this as a generator; nothing here blocks)::

    sig = parse_request_signature(request, policy, now=time.time())
    key = yield KeyNeeded(sig.key_id)          # the caller's I/O
    verify_ed25519(key.public_key, sig.signature, sig.base)
    # then: replay check on (sig.key_id, sig.nonce), see _nonce

:func:`parse_request_signature` does every check that needs no key, cheapest
first: parse ``Signature-Input`` / ``Signature`` (RFC 9421 §4), pick the
signature (rule below), validate the parameters, apply the
:class:`SignaturePolicy` (algorithm, freshness, nonce, required components),
then build the signature base (§2.5, in ``components``).

Which signature? A request may carry several (§4.3: proxies add their own).
The verifier never tries "whichever verifies": either the caller names the
label it trusts (``label="sig1"``; other labels are ignored), or exactly one
signature must be present, with the same single label in both headers.
Anything else is :class:`~scout_auth.exceptions.SignatureInvalid`.

Signing (:func:`sign_request`) is the client mirror: build the base from the
same code, sign, serialize both headers with ``http_sf``.
"""

from __future__ import annotations

import functools
import secrets
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Literal

import http_sf
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

from ..exceptions import (
    MissingCredentials,
    NonceRequired,
    SignatureExpired,
    SignatureInvalid,
    SignatureMissingComponent,
    SignatureNotYetValid,
    UnsupportedAlgorithm,
)
from .components import (
    BasePlan,
    ComponentId,
    HttpRequest,
    base_plan,
    build_base,
    component_from_parts,
    serialize_signature_params,
    signature_base,
)
from .policy import DEFAULT_POLICY, ED25519, SignaturePolicy
from .sf import match_byte_sequence_member, match_signature_input

__all__ = [
    "DEFAULT_POLICY",
    "RequestSignature",
    "SignaturePolicy",
    "parse_request_signature",
    "sign_request",
    "verify_ed25519",
]

_ED25519_SIGNATURE_SIZE = 64
# RFC 9421 §2.3 signature parameters and their Structured Fields types.
_PARAM_TYPES: dict[str, type] = {
    "created": int,
    "expires": int,
    "keyid": str,
    "nonce": str,
    "alg": str,
    "tag": str,
}
# Bounds on attacker-chosen strings that end up in caches and logs.
_MAX_KEYID = 256
_MAX_NONCE = 128


@dataclass(frozen=True, slots=True)
class RequestSignature:
    """A parsed, policy-checked signature, **not yet cryptographically verified**.

    Pass ``signature`` and ``base`` to :func:`verify_ed25519` with the public
    key of ``key_id``.

    Attributes:
        label: The signature's label in both headers.
        key_id: The ``keyid`` parameter.
        created: ``created`` (seconds since the epoch).
        expires: ``expires``, or ``None``.
        nonce: ``nonce``, or ``None`` when the policy allows its absence.
        alg: ``alg``, or ``None`` when absent.
        tag: ``tag``, or ``None``.
        components: Covered component identifiers, e.g. ``@method`` or
            ``@query-param;name="id"``, in signed order.
        base: The signature base (RFC 9421 §2.5).
        signature: The raw signature bytes.
        fresh_until: Time after which this signature is rejected as expired
            anyway; remember its nonce until then (see ``_nonce``).
    """

    label: str
    key_id: str
    created: int
    expires: int | None
    nonce: str | None
    alg: str | None
    tag: str | None
    components: tuple[str, ...]
    base: bytes = field(repr=False)
    signature: bytes = field(repr=False)
    fresh_until: float

    def replay_ttl(self, now: float) -> float:
        """Seconds to remember this signature's nonce (at least one)."""
        return max(self.fresh_until - now, 1.0)


def _reject_duplicates(key: str, context: str) -> None:
    # RFC 9651 would keep the last duplicate; two values for one label (or one
    # parameter) in a security header are an attack or a bug, so refuse.
    raise http_sf.StructuredFieldError(f"duplicate {context} key {key!r}")


def _parse_dictionary(value: str, header: str) -> http_sf.DictionaryType:
    try:
        parsed = http_sf.parse(
            value.encode("ascii"), tltype="dictionary", on_duplicate_key=_reject_duplicates
        )
    except (UnicodeEncodeError, http_sf.StructuredFieldError):
        raise SignatureInvalid(f"{header} is not a valid Structured Fields Dictionary") from None
    assert isinstance(parsed, dict)
    return parsed


def _choose_label(
    inputs: Mapping[str, object], signatures: Mapping[str, object], label: str | None
) -> str:
    if label is not None:
        if label not in inputs or label not in signatures:
            raise SignatureInvalid(f"no signature labelled {label!r}")
        return label
    if len(inputs) != 1 or len(signatures) != 1:
        raise SignatureInvalid("several signatures present and no label chosen")
    (only,) = inputs
    if only not in signatures:
        raise SignatureInvalid("Signature-Input and Signature labels differ")
    return only


def _parse_params(raw: Mapping[str, object]) -> dict[str, int | str]:
    params: dict[str, int | str] = {}
    for name, value in raw.items():
        # RFC 9421 §2.3: created/expires are Integers, the others Strings.
        # type() rather than isinstance: a Boolean is not an Integer, a Token
        # is not a String.
        expected = _PARAM_TYPES.get(name)
        if expected is None:
            raise SignatureInvalid(f"unsupported signature parameter {name!r}")
        if type(value) is not expected:
            raise SignatureInvalid(f"signature parameter {name!r} has the wrong type")
        params[name] = value  # type: ignore[assignment]  # an int or a str: checked
    return params


@dataclass(frozen=True, slots=True)
class _Covered:
    # A Signature-Input inner list, validated once: what the policy and the
    # base need of it.
    components: tuple[ComponentId, ...]
    names: tuple[str, ...]  # RequestSignature.components
    name_set: frozenset[str]
    plan: BasePlan


@functools.lru_cache(maxsize=256)
def _covered(items: tuple[tuple[str, str | None], ...]) -> _Covered:
    # Cached: a client covers the same components in every request. Bounded;
    # an invalid identifier raises every time (exceptions are not cached).
    components = tuple([component_from_parts(name, param) for name, param in items])
    names = tuple([c.name if c.param_name is None else str(c) for c in components])
    return _Covered(components, names, frozenset(names), base_plan(components))


def parse_request_signature(
    request: HttpRequest,
    policy: SignaturePolicy = DEFAULT_POLICY,
    *,
    now: float,
    label: str | None = None,
    signature_input: str | None = None,
    signature: str | None = None,
    has_body: bool | None = None,
) -> RequestSignature:
    """Parse and policy-check a request's signature; build its signature base.

    Args:
        request: The request as the server received it.
        policy: The rules to enforce.
        now: The current time, seconds since the epoch.
        label: The label to verify; ``None`` means exactly one signature
            must be present.
        signature_input: The ``Signature-Input`` value; read from
            ``request.headers`` (lines joined with ``", "``) when ``None``.
        signature: The ``Signature`` value; likewise.
        has_body: Whether the request has content; inferred from
            ``Content-Length`` / ``Transfer-Encoding`` when ``None``.

    Returns:
        The parsed signature. It is **not verified** until
        :func:`verify_ed25519` returns.

    Raises:
        MissingCredentials: Neither header is present.
        SignatureInvalid: Malformed headers, no usable label, bad parameters,
            or a covered component that cannot be rebuilt.
        UnsupportedAlgorithm: ``alg`` is not accepted by the policy.
        SignatureNotYetValid: ``created`` is beyond ``now + max_skew``.
        SignatureExpired: ``created`` is older than ``max_age`` or ``expires``
            has passed.
        NonceRequired: The policy needs a nonce and there is none.
        SignatureMissingComponent: A required component is not covered.
    """
    # Every line of the field, joined with ", " (RFC 9110 §5.3).
    if signature_input is None:
        signature_input = request._raw_field("signature-input")
    if signature is None:
        signature = request._raw_field("signature")
    if signature_input is None and signature is None:
        raise MissingCredentials("No Signature-Input or Signature header")
    if signature_input is None or signature is None:
        raise SignatureInvalid("Signature-Input and Signature must be sent together")

    # The strict fast path (``_sf``) reads only canonical one-member headers,
    # whose meaning is exactly what http_sf would return; anything else goes
    # to http_sf unchanged.
    canonical = match_signature_input(signature_input)
    fast_signature = match_byte_sequence_member(signature)
    if canonical is not None and fast_signature is not None:
        # _choose_label() for two one-member Dictionaries.
        chosen = canonical[0]
        if label is not None and (label != chosen or label != fast_signature[0]):
            raise SignatureInvalid(f"no signature labelled {label!r}")
        if chosen != fast_signature[0]:
            raise SignatureInvalid("Signature-Input and Signature labels differ")
        sig_member: object = (fast_signature[1], {})
    else:
        inputs: Mapping[str, object] = (
            {canonical[0]: canonical}
            if canonical is not None
            else _parse_dictionary(signature_input, "Signature-Input")
        )
        signatures: Mapping[str, object] = (
            {fast_signature[0]: (fast_signature[1], {})}
            if fast_signature is not None
            else _parse_dictionary(signature, "Signature")
        )
        chosen = _choose_label(inputs, signatures, label)
        sig_member = signatures[chosen]

    signature_params: str | None = None
    if canonical is not None:
        _, items, raw_params, signature_params = canonical
        covered = _covered(tuple(items))
        params = _parse_params(raw_params)
    else:
        # RFC 9421 §4.1: each Signature-Input member is an Inner List with parameters.
        member = inputs[chosen]
        if not (isinstance(member, tuple) and isinstance(member[0], list)):
            raise SignatureInvalid("Signature-Input member is not an Inner List")
        validated = [ComponentId.from_sf(item) for item in member[0]]
        covered = _covered(tuple([(c.name, c.param_name) for c in validated]))
        params = _parse_params(member[1])
    # RFC 9421 §4.2: each Signature member is a Byte Sequence.
    if not (isinstance(sig_member, tuple) and isinstance(sig_member[0], bytes)):
        raise SignatureInvalid("Signature member is not a Byte Sequence")
    if len(sig_member[0]) != _ED25519_SIGNATURE_SIZE:
        raise SignatureInvalid("Ed25519 signatures are 64 bytes")

    alg = params.get("alg")
    if alg is None and not policy.allow_missing_alg:
        raise UnsupportedAlgorithm("The alg parameter is required")
    if alg is not None and alg not in policy.algorithms:
        raise UnsupportedAlgorithm("Only the ed25519 algorithm is accepted")

    key_id = params.get("keyid")
    if not isinstance(key_id, str) or not 0 < len(key_id) <= _MAX_KEYID:
        raise SignatureInvalid("A keyid parameter is required")

    created = params.get("created")
    if not isinstance(created, int):
        raise SignatureInvalid("A created parameter is required")
    expires = params.get("expires")
    assert expires is None or isinstance(expires, int)
    # RFC 9421 §3.2.1 / §7.2.2: reject signatures from the future and stale ones.
    if created > now + policy.max_skew:
        raise SignatureNotYetValid()
    if now - created > policy.max_age:
        raise SignatureExpired()
    if expires is not None:
        if expires < created:
            raise SignatureInvalid("expires precedes created")
        if now >= expires:
            raise SignatureExpired()

    nonce = params.get("nonce")
    assert nonce is None or isinstance(nonce, str)
    if nonce is None and policy.require_nonce:
        raise NonceRequired()
    if nonce is not None and not 0 < len(nonce) <= _MAX_NONCE:
        raise SignatureInvalid(f"nonce must be 1 to {_MAX_NONCE} characters")

    if has_body is None:
        has_body = request.has_body()
    missing = policy.missing_components(covered.name_set, has_body=has_body)
    if missing:
        subs = dict(policy.alternatives).get(missing[0])
        alt = f" (or {' and '.join(subs)})" if subs else ""
        raise SignatureMissingComponent(missing[0], f"Signature must cover {missing[0]}{alt}")

    if signature_params is None:
        # Never fails: http_sf read these as Strings and Integers.
        signature_params = serialize_signature_params(covered.components, params)
    tag = params.get("tag")
    assert tag is None or isinstance(tag, str)
    fresh_until = float(created) + policy.max_age
    if expires is not None:
        fresh_until = min(fresh_until, float(expires))
    # Positional, in field order: eleven keyword arguments cost a quarter
    # more than the frozen __init__ itself.
    return RequestSignature(
        chosen,  # label
        key_id,
        created,
        expires,
        nonce,
        alg if isinstance(alg, str) else None,
        tag,
        covered.names,  # components
        build_base(request, covered.plan, signature_params),  # base
        sig_member[0],  # signature
        fresh_until,
    )


# Key objects by raw public key: a client signs many requests with one key.
# Bounded; invalid keys raise ValueError each time (exceptions are not cached).
_public_key = functools.lru_cache(maxsize=4096)(Ed25519PublicKey.from_public_bytes)


def verify_ed25519(public_key: bytes, signature: bytes, base: bytes) -> None:
    """Check an Ed25519 signature (RFC 9421 §3.3.6) over a signature base.

    Args:
        public_key: The raw 32-byte public key of the signature's ``keyid``.
        signature: :attr:`RequestSignature.signature`.
        base: :attr:`RequestSignature.base`.

    Raises:
        SignatureInvalid: If the signature does not verify (or the key is not
            a valid Ed25519 key).
    """
    try:
        _public_key(bytes(public_key)).verify(signature, base)
    except InvalidSignature:
        raise SignatureInvalid("Signature verification failed") from None
    except ValueError:
        raise SignatureInvalid("Signature verification failed") from None


def _default_components(request: HttpRequest) -> list[str]:
    components = ["@method", "@authority", "@target-uri"]
    if request.field("content-digest") is not None:
        components.append("content-digest")
    elif request.has_body():
        raise ValueError("a request with a body needs a Content-Digest header (see _digest)")
    return components


def sign_request(
    request: HttpRequest,
    *,
    key_id: str,
    private_seed: bytes,
    now: float,
    components: Sequence[str | ComponentId] | None = None,
    created: int | None = None,
    expires: int | None = None,
    nonce: str | Literal[False] | None = None,
    alg: str | None = ED25519,
    tag: str | None = None,
    label: str = "sig1",
) -> dict[str, str]:
    """Sign ``request`` with an Ed25519 seed; return the two headers to add.

    Add ``Content-Digest`` (:func:`~scout_auth.signing.content_digest`) to ``request.headers``
    *before* signing when there is a body, so it can be covered.

    Args:
        request: The request about to be sent.
        key_id: The public key id (``keyid``).
        private_seed: The 32-byte Ed25519 private seed. Never serialized.
        now: The current time, seconds since the epoch.
        components: Covered components (``"@method"``, ``"content-digest"``,
            ``'"@query-param";name="id"'`` or :class:`ComponentId`). Default:
            ``@method``, ``@authority``, ``@target-uri``, plus
            ``content-digest`` when that header is present.
        created: ``created``; defaults to ``int(now)``.
        expires: ``expires``; omitted by default.
        nonce: ``nonce``; ``None`` draws 128 random bits, ``False`` omits it.
        alg: ``alg``; ``None`` omits it (the key type decides).
        tag: ``tag``; omitted by default.
        label: The Dictionary key for both headers.

    Returns:
        ``{"Signature-Input": ..., "Signature": ...}``.

    Raises:
        ValueError: Bad seed, label, parameter or component, or a covered
            component missing from ``request``.

    Example::

        headers = sign_request(request, key_id=key_id, private_seed=seed, now=time.time())
    """
    http_sf.ser({label: True})  # ValueError unless a valid Dictionary key
    try:
        ids = [
            c if isinstance(c, ComponentId) else ComponentId.parse(c)
            for c in (components if components is not None else _default_components(request))
        ]
    except SignatureInvalid as exc:
        raise ValueError(exc.detail) from None
    params: dict[str, int | str] = {"created": int(now) if created is None else created}
    if expires is not None:
        params["expires"] = expires
    params["keyid"] = key_id
    if nonce is None:
        params["nonce"] = secrets.token_urlsafe(16)
    elif nonce is not False:
        params["nonce"] = nonce
    if alg is not None:
        params["alg"] = alg
    if tag is not None:
        params["tag"] = tag
    key = Ed25519PrivateKey.from_private_bytes(private_seed)
    try:
        base = signature_base(request, ids, params)
    except SignatureInvalid as exc:
        raise ValueError(exc.detail) from None
    # Same serializer as the base's @signature-params line (RFC 9421 §4.1).
    sig_input = f"{label}={serialize_signature_params(ids, params)}"
    sig = http_sf.ser({label: (key.sign(base), {})})
    return {"Signature-Input": sig_input, "Signature": sig}
