"""Checks of an OpenAPI 3.1 document and of real answers against it (management API, receiver).

Answers the tests captured (status, lower-case headers, body) are held to
what a response object of the document says: the status is documented,
required headers are sent, the media type is listed and the body validates
against its schema (formats included, ``$ref`` resolved inside the document).
"""

from __future__ import annotations

import json
from collections.abc import Iterator, Mapping
from typing import Any

import jsonschema_rs
from schemathesis.specs.openapi.definitions import OPENAPI_31


def meta_errors(doc: Mapping[str, Any]) -> list[str]:
    """What is wrong with ``doc`` by the OAS 3.1 meta-schema, and each component schema by
    JSON Schema 2020-12 itself (``[]``: nothing)."""
    errors = [str(e) for e in jsonschema_rs.Draft202012Validator(OPENAPI_31).iter_errors(doc)]
    for name, schema in doc.get("components", {}).get("schemas", {}).items():
        if not jsonschema_rs.meta.is_valid(schema):
            errors.append(f"components/schemas/{name} is not a JSON Schema")
    return errors


def _refs(node: object) -> Iterator[str]:
    if isinstance(node, dict):
        if "$ref" in node:
            yield node["$ref"]
        for value in node.values():
            yield from _refs(value)
    elif isinstance(node, list):
        for value in node:
            yield from _refs(value)


def dangling_refs(doc: Mapping[str, Any]) -> list[str]:
    """The ``$ref`` pointers of ``doc`` that name no object in it."""
    dangling = []
    for pointer in sorted(set(_refs(doc))):
        node: Any = doc
        try:
            for part in pointer.removeprefix("#/").split("/"):
                node = node[part]
        except (KeyError, TypeError):
            node = None
        if not isinstance(node, dict):
            dangling.append(pointer)
    return dangling


def resolve(doc: Mapping[str, Any], node: dict[str, Any]) -> dict[str, Any]:
    """``node``, its ``$ref`` (and theirs) followed inside ``doc``."""
    while "$ref" in node:
        target: Any = doc
        for part in node["$ref"].removeprefix("#/").split("/"):
            target = target[part]
        node = target
    return node


def validator(doc: Mapping[str, Any], schema: dict[str, Any]) -> jsonschema_rs.Validator:
    """A validator of ``schema`` placed inside ``doc``'s components, so its ``$ref``s resolve."""
    root = {
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "components": doc["components"],
        **schema,
    }
    return jsonschema_rs.validator_for(root, validate_formats=True)


def check_answer(
    doc: Mapping[str, Any],
    responses: Mapping[str, Any],
    status: int,
    headers: Mapping[str, str],
    body: bytes,
    what: object = None,
) -> None:
    """Assert an answer is what ``responses`` (of ``doc``) say of its ``status``.

    ``headers`` have lower-case names; ``what`` names the answer in failures.
    """
    assert str(status) in responses, (what, status, body)
    spec = resolve(doc, responses[str(status)])
    for name, header in spec.get("headers", {}).items():
        if header.get("required"):
            assert name.lower() in headers, (what, status, name)
    content = spec.get("content")
    if content is None:
        assert body == b""
        assert "content-type" not in headers
        return
    media = headers["content-type"].split(";", 1)[0]
    assert media in content, (what, status, media)
    errors = [
        str(e) for e in validator(doc, content[media]["schema"]).iter_errors(json.loads(body))
    ]
    assert errors == [], (what, status, body)
