"""RFC 9421 signature bases: component identifiers, component values, the base itself.

Theory of operation
-------------------
A signature covers an ordered list of *components* (RFC 9421 §2). Each is
named by a *component identifier*, a Structured Fields String with optional
parameters: either a lower-cased HTTP field name (``"content-type"``, §2.1)
or a *derived component* computed from the request line (``"@method"``,
§2.2). The *signature base* (§2.5) is one line per component::

    "<identifier>": <value>\\n

followed by ``"@signature-params": <serialized inner list and parameters>``
with no trailing newline. Signer and verifier build it independently from
their view of the request; if a single byte differs, the signature fails.

This module is pure: it turns a :class:`HttpRequest` (plain data) and a list
of :class:`ComponentId` into bytes, and knows nothing about keys, clocks or
policies (see ``signature``). Anything it cannot derive unambiguously is an
error, never a guess: a missing field, an unknown derived component, an
identifier parameter it does not implement (``sf``, ``key``, ``bs``, ``req``,
``tr``), a repeated ``@query-param``, or a control character that could forge
an extra line in the base.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from types import MappingProxyType
from urllib.parse import unquote

import http_sf
from http_sf.types import ParamsType

from ..exceptions import SignatureInvalid
from .sf import ser_inner_list, ser_string

__all__ = [
    "DERIVED_COMPONENTS",
    "BasePlan",
    "ComponentId",
    "HttpRequest",
    "authority_value",
    "base_plan",
    "build_base",
    "component_from_parts",
    "component_value",
    "serialize_signature_params",
    "signature_base",
]

# RFC 9110 §5.6.2 token: field names and methods.
_TOKEN_RE = re.compile(r"[!#$%&'*+\-.^_`|~0-9A-Za-z]+")
_FIELD_NAME_RE = re.compile(r"[!#$%&'*+\-.^_`|~0-9a-z]+")
_SCHEME_RE = re.compile(r"[a-z][a-z0-9+\-.]*")
# Visible ASCII plus SP and HTAB: anything else (CR, LF, NUL, obs-text) in a
# component value could smuggle a line into the base or be read differently by
# the other side (RFC 9421 §2.5: the base is US-ASCII).
_SAFE_VALUE_RE = re.compile(r"[\t\x20-\x7e]*")
# RFC 9112 §5.2 obs-fold: CRLF followed by whitespace, replaced by one SP (§2.1 step 3).
_OBS_FOLD_RE = re.compile(r"\r\n[ \t]+")
_DEFAULT_PORTS = MappingProxyType({"http": "80", "https": "443"})
# Characters that would make an authority more than host[:port] (RFC 3986 §3.2).
_NOT_IN_AUTHORITY = frozenset("/?#@\\")
# WHATWG URL "application/x-www-form-urlencoded percent-encode set": every byte
# except these is percent-encoded; used for @query-param (RFC 9421 §2.2.8).
_FORM_SAFE = frozenset(b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789*-._")


def _is_safe(value: str) -> bool:
    # For ASCII text isprintable() is exactly %x20-7E: the usual answer
    # without the regex engine, which is asked only about tabs and worse.
    return (value.isascii() and value.isprintable()) or bool(_SAFE_VALUE_RE.fullmatch(value))


def _check_value(what: str, value: str) -> str:
    if not _is_safe(value):
        raise SignatureInvalid(f"{what} contains characters a signature base cannot hold")
    return value


@dataclass(frozen=True, slots=True)
class HttpRequest:
    """The parts of an HTTP request a signature can cover. Plain data, no I/O.

    Attributes:
        method: The request method, exactly as sent (case-sensitive).
        scheme: ``"http"`` or ``"https"`` as the *client* saw it (behind a
            TLS-terminating proxy, the original scheme).
        authority: Host and optional port (``Host`` or ``:authority``).
        path: The absolute path, still percent-encoded (``"/a%2Fb"``).
        query: The raw query string without the ``?``; ``""`` when absent.
        headers: ``(name, value)`` pairs in message order; names in any case,
            repeated names allowed (they are combined, RFC 9421 §2.1).
    """

    method: str
    scheme: str
    authority: str
    path: str
    query: str = ""
    headers: Sequence[tuple[str, str]] = ()
    # Lower-cased name -> values, built on first use: a base looks up several
    # fields, and each look-up would otherwise lower-case every header name.
    _index: dict[str, list[str]] | None = field(default=None, init=False, repr=False, compare=False)
    # Derived component values (pure functions of the fields above), filled by
    # component_value(): @target-uri reuses @scheme and @authority.
    _derived: dict[str, str] | None = field(default=None, init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "headers", tuple((n, v) for n, v in self.headers))

    @classmethod
    def _indexed(
        cls,
        method: str,
        scheme: str,
        authority: str,
        path: str,
        query: str,
        headers: tuple[tuple[str, str], ...],
        index: dict[str, list[str]],
    ) -> HttpRequest:
        # For the adapters, which already hold the headers as a tuple of pairs
        # and their index (lower-cased name -> values in order, exactly what
        # _fields() would build): no second pass over the headers per request.
        request = cls.__new__(cls)
        setattr_ = object.__setattr__
        setattr_(request, "method", method)
        setattr_(request, "scheme", scheme)
        setattr_(request, "authority", authority)
        setattr_(request, "path", path)
        setattr_(request, "query", query)
        setattr_(request, "headers", headers)
        setattr_(request, "_index", index)
        setattr_(request, "_derived", None)
        return request

    def _fields(self) -> dict[str, list[str]]:
        index = self._index
        if index is None:
            headers = self.headers
            index = {key.lower(): [value] for key, value in headers}
            if len(index) != len(headers):
                # A repeated name (in any case): gather every line, in order.
                index = {}
                for key, value in headers:
                    index.setdefault(key.lower(), []).append(value)
            object.__setattr__(self, "_index", index)
        return index

    def field_values(self, name: str) -> list[str]:
        """All values of the field ``name`` (case-insensitive), in order."""
        return list(self._fields().get(name.lower(), ()))

    def field(self, name: str) -> str | None:
        """The combined value of field ``name`` (RFC 9421 §2.1), or ``None`` if absent.

        Raises:
            SignatureInvalid: If a value holds a character a base cannot carry.
        """
        name = name.lower()
        values = (self._index if self._index is not None else self._fields()).get(name)
        if values is not None and len(values) == 1:
            value = values[0]
            # One printable ASCII line (no CR, so no obs-fold; no tab): all
            # _field() would do is strip its spaces.
            if value.isascii() and value.isprintable():
                return value.strip(" ")
        return self._field(name)

    def _field(self, name: str) -> str | None:
        # field() for a name already lower-cased.
        values = (self._index if self._index is not None else self._fields()).get(name)
        if not values:
            return None
        # RFC 9421 §2.1: strip each value, unfold obs-fold, join with ", ".
        if len(values) == 1:
            value = values[0]
            combined = (_OBS_FOLD_RE.sub(" ", value) if "\r" in value else value).strip(" \t")
        else:
            combined = ", ".join(
                [
                    (_OBS_FOLD_RE.sub(" ", value) if "\r" in value else value).strip(" \t")
                    for value in values
                ]
            )
        if not (combined.isascii() and combined.isprintable()) and not _SAFE_VALUE_RE.fullmatch(
            combined
        ):
            raise SignatureInvalid(
                f"field {name!r} contains characters a signature base cannot hold"
            )
        return combined

    def _raw_field(self, name: str) -> str | None:
        # The field's lines joined with ", ", untouched (name lower-cased).
        values = (self._index if self._index is not None else self._fields()).get(name)
        if not values:
            return None
        return values[0] if len(values) == 1 else ", ".join(values)

    def has_body(self) -> bool:
        """Whether the headers announce content (non-zero length, or chunked)."""
        index = self._fields()
        if "transfer-encoding" in index:
            return True
        lengths = index.get("content-length")
        if not lengths:
            return False
        if len(lengths) == 1:  # the usual one line, without a comprehension
            return lengths[0].strip() not in ("", "0")
        return any([v.strip() not in ("", "0") for v in lengths])


@dataclass(frozen=True, slots=True)
class ComponentId:
    """One component identifier (RFC 9421 §2).

    Attributes:
        name: ``"@method"``-style derived name or a lower-cased field name.
        param_name: The ``name`` parameter, only for ``@query-param``.
    """

    name: str
    param_name: str | None = None
    # serialize() fills this once; a value object, so caching is invisible.
    _serialized: str | None = field(default=None, init=False, repr=False, compare=False)

    @classmethod
    def parse(cls, text: str) -> ComponentId:
        """Read a component from ``"@method"``, ``"content-type"`` or the SF form.

        ``'"@query-param";name="Pet"'`` (the Structured Fields serialization)
        is also accepted.

        Raises:
            SignatureInvalid: If it is malformed or unsupported.
        """
        if not text.startswith('"'):
            return cls.from_sf((text, {}))
        try:
            item = http_sf.parse(text.encode("ascii"), tltype="item")
        except (UnicodeEncodeError, http_sf.StructuredFieldError):
            raise SignatureInvalid("malformed component identifier") from None
        return cls.from_sf(item)

    @classmethod
    def from_sf(cls, item: object) -> ComponentId:
        """Validate one parsed inner-list member of ``Signature-Input``.

        Raises:
            SignatureInvalid: If it is not a String, names an unknown derived
                component, is not a lower-case field name, or carries a
                parameter this implementation does not support.
        """
        if not (isinstance(item, tuple) and len(item) == 2 and isinstance(item[1], dict)):
            raise SignatureInvalid("malformed component identifier")
        name, params = item
        # RFC 9421 §2: identifiers are sf-strings (a Token would be a different value).
        if type(name) is not str:
            raise SignatureInvalid("component identifiers must be Strings")
        if name == "@query-param":
            # RFC 9421 §2.2.8: exactly one, REQUIRED, String parameter "name".
            param = params.get("name")
            if set(params) != {"name"} or type(param) is not str:
                raise SignatureInvalid('@query-param needs exactly one String "name" parameter')
            return cls(name, param)
        if params:
            raise SignatureInvalid(f"unsupported parameter on component {name!r}")
        if name.startswith("@"):
            if name not in DERIVED_COMPONENTS:
                raise SignatureInvalid(f"unsupported derived component {name!r}")
        elif not _FIELD_NAME_RE.fullmatch(name):
            # RFC 9421 §2.1: field component names are lower-cased.
            raise SignatureInvalid("component names must be lower-case field names")
        return cls(name)

    def to_sf(self) -> tuple[str, ParamsType]:
        """The Structured Fields item for this identifier."""
        return (self.name, {} if self.param_name is None else {"name": self.param_name})

    def serialize(self) -> str:
        """The identifier as it appears in the base, e.g. ``"@query-param";name="Pet"``.

        Raises:
            ValueError: If the name or parameter holds a character a String cannot.
        """
        serialized = self._serialized
        if serialized is None:
            serialized = ser_string(self.name)
            if self.param_name is not None:
                serialized += f";name={ser_string(self.param_name)}"
            object.__setattr__(self, "_serialized", serialized)
        return serialized

    def __str__(self) -> str:
        if self.param_name is None:
            return self.name
        return f"{self.name};name={ser_string(self.param_name)}"


@functools.lru_cache(maxsize=1024)
def component_from_parts(name: str, param_name: str | None) -> ComponentId:
    """:meth:`ComponentId.from_sf` for a String with no parameter or one String ``name``.

    Cached: the same few identifiers arrive with every request. Bounded, and
    an invalid identifier raises every time (exceptions are not cached).

    Raises:
        SignatureInvalid: As :meth:`ComponentId.from_sf`.
    """
    return ComponentId.from_sf((name, {} if param_name is None else {"name": param_name}))


# The request line's parts repeat from request to request (one host, a scheme,
# a few methods): their normal forms are pure functions of short strings, so
# they are cached. Bounded; errors are raised every time (never cached).
@functools.lru_cache(maxsize=256)
def _authority_parts(authority: str) -> tuple[str, str, bool]:
    # RFC 9421 §2.2.3 → RFC 9110 §4.2.3: host lower-cased (the port is
    # dropped later if it is the scheme's default). Returns host, port, and
    # whether the host may appear in a base (the port is digits).
    authority = authority.lower()
    if not authority or not _NOT_IN_AUTHORITY.isdisjoint(authority) or not authority.isascii():
        raise SignatureInvalid("malformed authority")
    if authority.startswith("["):
        host, sep, rest = authority.partition("]")
        host, port = host + sep, rest.removeprefix(":")
        if rest and not rest.startswith(":"):
            raise SignatureInvalid("malformed authority")
    else:
        host, _, port = authority.partition(":")
    if not host or (port and not port.isdigit()):
        raise SignatureInvalid("malformed authority")
    return host, port, _is_safe(host)


@functools.lru_cache(maxsize=64)
def _normal_scheme(scheme: str) -> str:
    # RFC 9421 §2.2.4: lower-cased.
    scheme = scheme.lower()
    if not _SCHEME_RE.fullmatch(scheme):
        raise SignatureInvalid("malformed scheme")
    return scheme


@functools.lru_cache(maxsize=64)
def _checked_method(method: str) -> str:
    # RFC 9421 §2.2.1: the method is case-sensitive and MUST NOT be normalized.
    if not _TOKEN_RE.fullmatch(method):
        raise SignatureInvalid("malformed method")
    return method


def _authority(request: HttpRequest) -> str:
    host, port, safe = _authority_parts(request.authority)
    # The scheme is consulted only when there is a port to compare.
    if port and port != _DEFAULT_PORTS.get(_normal_scheme(request.scheme)):
        host = f"{host}:{port}"
    return host if safe else _check_value("authority", host)


def authority_value(request: HttpRequest) -> str:
    """The request's ``@authority`` (RFC 9421 §2.2.3): lower-case host, default port dropped.

    Raises:
        SignatureInvalid: The authority is malformed.
    """
    return _authority(request)


def _scheme(request: HttpRequest) -> str:
    return _normal_scheme(request.scheme)


def _method(request: HttpRequest) -> str:
    return _checked_method(request.method)


def _path(request: HttpRequest) -> str:
    # RFC 9421 §2.2.6: still percent-encoded; an empty path becomes "/".
    path = request.path or "/"
    if not path.startswith("/") or "?" in path or "#" in path:
        raise SignatureInvalid("malformed path")
    return _check_value("path", path)


def _raw_query(request: HttpRequest) -> str:
    if "#" in request.query:
        raise SignatureInvalid("malformed query")
    return _check_value("query", request.query)


def _query(request: HttpRequest) -> str:
    # RFC 9421 §2.2.7: with the leading "?"; "?" alone when there is no query.
    return "?" + _raw_query(request)


def _request_target(request: HttpRequest) -> str:
    # RFC 9421 §2.2.5: origin-form, path plus "?query" when there is one.
    path, query = request.path, request.query
    target = f"{path}?{query}" if query else path
    # All of _path's and _raw_query's checks at once, when all pass.
    if (
        path.startswith("/")
        and "?" not in path
        and "#" not in target
        and target.isascii()
        and target.isprintable()
    ):
        return target
    query = _raw_query(request)
    return _path(request) + (f"?{query}" if query else "")


def _target_uri(request: HttpRequest) -> str:
    # RFC 9421 §2.2.2 / RFC 9110 §7.1: the absolute target URI.
    return f"{_normal_scheme(request.scheme)}://{_authority(request)}{_request_target(request)}"


#: Derived components (RFC 9421 §2.2) and how each is computed from a request.
#: ``@query-param`` is handled apart because it takes a parameter; ``@status``
#: (responses only) and ``@signature-params`` (never a covered component) are
#: deliberately absent.
_DERIVE: dict[str, Callable[[HttpRequest], str]] = {
    "@method": _method,
    "@target-uri": _target_uri,
    "@authority": _authority,
    "@scheme": _scheme,
    "@request-target": _request_target,
    "@path": _path,
    "@query": _query,
}
DERIVED_COMPONENTS: Mapping[str, Callable[[HttpRequest], str]] = MappingProxyType(_DERIVE)


def _derive(request: HttpRequest, name: str) -> str:
    # Once per request: the request is immutable, so are its derived values.
    # Errors are not remembered; they are raised again on the next call.
    cache = request._derived
    if cache is None:
        cache = {}
        object.__setattr__(request, "_derived", cache)
    value = cache.get(name)
    if value is None:
        value = cache[name] = _DERIVE[name](request)
    return value


def _form_encode(text: str) -> str:
    return "".join(chr(b) if b in _FORM_SAFE else f"%{b:02X}" for b in text.encode("utf-8"))


def _query_param(request: HttpRequest, wanted: str) -> str:
    # RFC 9421 §2.2.8: parse as application/x-www-form-urlencoded (WHATWG URL
    # §5.1: split on "&", skip empty, "+" is a space, percent-decode as UTF-8),
    # then re-encode name and value with "percent-encode after encoding".
    found: list[str] = []
    for pair in _raw_query(request).split("&"):
        if not pair:
            continue
        name, _, value = pair.partition("=")
        decoded_name = unquote(name.replace("+", " "), errors="replace")
        if _form_encode(decoded_name) == wanted:
            found.append(_form_encode(unquote(value.replace("+", " "), errors="replace")))
    if not found:
        raise SignatureInvalid(f"covered query parameter {wanted!r} is missing")
    if len(found) > 1:
        # RFC 9421 §2.2.8: a repeated parameter MUST NOT be signed by name.
        raise SignatureInvalid(f"query parameter {wanted!r} occurs more than once")
    return found[0]


def component_value(request: HttpRequest, component: ComponentId) -> str:
    """The canonical value of one component of ``request``.

    Raises:
        SignatureInvalid: If the component is absent or cannot be derived.
    """
    if component.name == "@query-param":
        assert component.param_name is not None
        return _query_param(request, component.param_name)
    if component.name in _DERIVE:
        return _derive(request, component.name)
    value = request.field(component.name)
    if value is None:
        # RFC 9421 §2.5: a covered component that is absent is an error.
        raise SignatureInvalid(f"covered field {component.name!r} is missing")
    return value


def serialize_signature_params(
    components: Iterable[ComponentId], params: Mapping[str, int | str]
) -> str:
    """Serialize the ``@signature-params`` value (RFC 9421 §2.3).

    The inner list of identifiers with the signature parameters, exactly as
    it appears after ``label=`` in ``Signature-Input``.

    Raises:
        ValueError: If an identifier or parameter cannot be serialized.
    """
    return ser_inner_list([c.serialize() for c in components], params)


@dataclass(frozen=True, slots=True)
class BasePlan:
    """The request-independent part of a signature base, worked out once.

    Attributes:
        lines: ``('"<identifier>": ', component)`` for each component up to
            ``stop``: the start of its base line, and what to derive.
        stop: The first component the base cannot get past, or ``None``: a
            repeat (RFC 9421 §1.1: covered components are an ordered *set*)
            or an identifier that cannot be serialized. Its error is raised
            where the base reaches it, after the values before it.
    """

    lines: tuple[tuple[str, ComponentId], ...]
    stop: ComponentId | None


def base_plan(components: Iterable[ComponentId]) -> BasePlan:
    """Serialize the identifiers and find the first repeat (see :class:`BasePlan`)."""
    seen: set[str] = set()
    lines: list[tuple[str, ComponentId]] = []
    for component in components:
        try:
            # Serializations are one-to-one with identifiers, and cached on them.
            serialized = component.serialize()
        except ValueError:
            return BasePlan(tuple(lines), component)
        if serialized in seen:
            return BasePlan(tuple(lines), component)
        seen.add(serialized)
        lines.append((f"{serialized}: ", component))
    return BasePlan(tuple(lines), None)


def build_base(request: HttpRequest, plan: BasePlan, signature_params: str) -> bytes:
    """The signature base (RFC 9421 §2.5) of ``request`` for a :class:`BasePlan`.

    ``signature_params`` is the ``@signature-params`` value (see
    :func:`signature_base`).

    Raises:
        SignatureInvalid: If a component repeats, is absent, or cannot be derived.
        ValueError: If an identifier cannot be serialized.
    """
    lines = []
    index = request._fields()
    for prefix, component in plan.lines:
        # component_value(), inlined: this loop runs for every covered component.
        name = component.name
        derive = _DERIVE.get(name)
        if derive is not None:
            # No per-request cache: each runs once per base (no repeats).
            value = derive(request)
        elif name == "@query-param":
            assert component.param_name is not None
            value = _query_param(request, component.param_name)
        else:
            values = index.get(name)
            if values is not None and len(values) == 1:
                value = values[0]
                # One printable ASCII line (no CR, so no obs-fold; no tab):
                # _field() would only strip its spaces.
                if value.isascii() and value.isprintable():
                    lines.append(f"{prefix}{value.strip(' ')}\n")
                    continue
            field_value = request._field(name)
            if field_value is None:
                # RFC 9421 §2.5: a covered component that is absent is an error.
                raise SignatureInvalid(f"covered field {name!r} is missing")
            value = field_value
        lines.append(f"{prefix}{value}\n")
    if plan.stop is not None:
        plan.stop.serialize()  # ValueError, if that is why the plan stopped
        raise SignatureInvalid(f"component {str(plan.stop)!r} is listed twice")
    lines.append(f'"@signature-params": {signature_params}')
    return "".join(lines).encode("ascii")


def signature_base(
    request: HttpRequest,
    components: Sequence[ComponentId],
    params: Mapping[str, int | str],
    *,
    signature_params: str | None = None,
) -> bytes:
    """Build the signature base (RFC 9421 §2.5) as US-ASCII bytes.

    Args:
        request: The request as seen by the signer or the verifier.
        components: The covered components, in order.
        params: The signature parameters (``created``, ``keyid``...), in order.
        signature_params: The serialization of ``components`` and ``params``
            when the caller already holds it: the member text of a
            ``Signature-Input`` that matched the strict canonical parser
            (``_sf.match_signature_input``) and nothing else. ``None``
            serializes them here.

    Raises:
        SignatureInvalid: If a component repeats, is absent, or cannot be derived.

    Example::

        base = signature_base(request, [ComponentId("@method")], {"created": 1618884473})
    """
    plan = base_plan(components)
    if signature_params is not None:
        return build_base(request, plan, signature_params)
    # Component errors first, as the base meets them; then the parameters'.
    base = build_base(request, plan, "")
    return base + serialize_signature_params(components, params).encode("ascii")
