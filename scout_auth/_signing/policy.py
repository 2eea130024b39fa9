"""What a server demands of an RFC 9421 signed request, as one frozen value.

The policy is data, checked once at construction; ``signature`` applies it.
RFC 9421 §1.4 leaves these choices to the application: which components must
be covered, how fresh a signature must be, which algorithms are acceptable.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field

from ..exceptions import SignatureInvalid
from .components import ComponentId

__all__ = ["DEFAULT_POLICY", "ED25519", "SignaturePolicy"]

#: The only signature algorithm (RFC 9421 §3.3.6, ``alg="ed25519"``).
ED25519 = "ed25519"

# What missing_components() takes as a set as it is (a constant: "frozenset |
# set" would build a union object on every call).
_SETS = (frozenset, set)


@dataclass(frozen=True, slots=True)
class SignaturePolicy:
    """What a server demands of a signed request. Validated once, at construction.

    Attributes:
        required_components: Components every signature must cover.
        alternatives: ``(component, substitutes)`` pairs: ``component`` is also
            satisfied when all of ``substitutes`` are covered. By default
            ``@path`` and ``@query`` together stand in for ``@target-uri``.
        body_components: Components required when the request has a body
            (``Content-Length`` > 0 or ``Transfer-Encoding``).
        max_age: Seconds a signature stays valid after ``created``.
        max_skew: Seconds ``created`` may lie in the future (clock skew).
        require_nonce: Whether a ``nonce`` parameter is mandatory (default
            ``False``: a signature without one is accepted once, its value
            remembered for the window as a nonce would be).
        algorithms: Accepted values of the ``alg`` parameter.
        allow_missing_alg: Accept signatures without ``alg``; the key type
            (Ed25519) then decides, as RFC 9421 §3.3 permits.

    Raises:
        ValueError: On a negative window, an unknown algorithm or a malformed
            component name.
    """

    required_components: tuple[str, ...] = ("@method", "@authority", "@target-uri")
    alternatives: tuple[tuple[str, tuple[str, ...]], ...] = (("@target-uri", ("@path", "@query")),)
    body_components: tuple[str, ...] = ("content-digest",)
    max_age: float = 300.0
    max_skew: float = 5.0
    require_nonce: bool = False
    algorithms: frozenset[str] = frozenset({ED25519})
    allow_missing_alg: bool = True
    # What missing_components() compares against, per has_body; derived from
    # the fields above in __post_init__ (so dataclasses.replace() keeps it right).
    _needed: tuple[frozenset[str], frozenset[str]] = field(
        default=(frozenset(), frozenset()), init=False, repr=False, compare=False
    )

    def __post_init__(self) -> None:
        if not self.max_age > 0 or not self.max_skew >= 0:
            raise ValueError("max_age must be > 0 and max_skew >= 0")
        if not self.algorithms or not self.algorithms <= {ED25519}:
            raise ValueError("only the 'ed25519' algorithm is supported")
        names = [*self.required_components, *self.body_components]
        names += [n for c, subs in self.alternatives for n in (c, *subs)]
        for name in names:
            try:
                ComponentId.parse(name)
            except SignatureInvalid:
                raise ValueError(f"unsupported component in policy: {name!r}") from None
        required = frozenset(self.required_components)
        object.__setattr__(self, "_needed", (required, required | set(self.body_components)))

    def missing_components(self, covered: Iterable[str], *, has_body: bool) -> list[str]:
        """The required components ``covered`` lacks, in policy order."""
        have = covered if isinstance(covered, _SETS) else set(covered)
        if self._needed[1 if has_body else 0] <= have:
            return []  # the usual case: one subset test
        needed = self.required_components
        if has_body:
            needed += self.body_components
        absent = [name for name in needed if name not in have]
        if not absent:
            return absent
        subs = dict(self.alternatives)
        return [name for name in absent if not (name in subs and set(subs[name]) <= have)]


#: The default policy: method, authority and target URI (or path + query),
#: content-digest with a body, 300 s window, 5 s skew; each signature (by
#: its nonce, or its value without one) accepted once.
DEFAULT_POLICY = SignaturePolicy()
