"""The ``scout-auth`` command line.

    scout-auth check [TOKEN]                 # offline format + checksum check (stdin without TOKEN)
    scout-auth regex                         # the secret-scanner regex for scout_sk_ tokens
    scout-auth version
    scout-auth export-key [--format pem|jwk] [--public]   # the token from stdin, as PEM or JWK
    scout-auth [--store URL] explain-signature [--scheme S] [--method M --url URL] [--at T]
                                             # a raw request on stdin: the base the server builds

    scout-auth --store URL migrate           # create / upgrade the SQL schema
    scout-auth --store URL create ORG NAME [--scope S ...] [--expires ISO-8601]
                                          [--description TEXT] [--recoverable]
    scout-auth --store URL list ORG          # keys, then the org's legacy secret if any
    scout-auth --store URL rename KEY_ID NAME
    scout-auth --store URL disable KEY_ID | enable KEY_ID | delete KEY_ID
    scout-auth --store URL rotate KEY_ID [--grace-hours H]
    scout-auth --store URL public-key KEY_ID [--format pem|jwk]  # for verifiers elsewhere
    scout-auth --store URL reveal KEY_ID     # a recoverable key's token, again (needs the vault)
    scout-auth --store URL legacy-import ORG # the secret is read from stdin, never argv
    scout-auth --store URL legacy-delete ORG
    scout-auth --store URL legacy-status ORG [--days N]
    scout-auth --store URL legacy-disable ORG | legacy-enable ORG
    scout-auth legacy-pepper new             # a fresh pepper for $SCOUT_AUTH_LEGACY_PEPPER
    scout-auth --store URL legacy-pepper status  # digests per pepper id; exit 1 if none fits
    scout-auth vault new-kek [--id ID]       # a fresh KEK entry for $SCOUT_AUTH_VAULT_KEKS
    scout-auth --store URL vault status      # recoverable keys per KEK id
    scout-auth --store URL vault rewrap      # re-wrap every data key under the current KEK

``--store`` (or ``$SCOUT_AUTH_STORE``) is a SQLAlchemy URL
(``sqlite:///keys.db``, ``postgresql+psycopg://…``, ``mysql+pymysql://…``)
or a Redis URL: ``redis://…``, ``rediss://…``, ``unix://…`` for one server,
``redis+cluster://host:port[,host:port…]/`` (``rediss+cluster://`` for TLS)
for a Redis Cluster. Changes made here reach every running instance through
the store's change feed, like any other change.

A token is printed once, by ``create`` and ``rotate``, and again by
``reveal`` for a key created ``--recoverable`` (with ``$SCOUT_AUTH_VAULT_KEKS``
set: docs/vault.md); ``check`` prints only the public key id. ``export-key``
prints the private key it was given on stdin (never argv: argv is in ``ps``
and shell history) in another format,
or with ``--public`` only its public half. Nothing else ever prints a secret:
``explain-signature`` shows covered credential fields by length only.
"""

from __future__ import annotations

import argparse
import dataclasses
import getpass
import json
import os
import sys
from collections.abc import Callable, Sequence
from datetime import datetime, timedelta
from typing import Any

from . import __version__
from ._core.keys import OrgCredential, OrgPublicKey
from ._core.pepper import (
    ENV_VAR,
    missing_pepper_error,
    new_pepper,
    resolve_pepper,
    unknown_pepper_error,
    unknown_peppers,
)
from ._core.records import KeyRecord, LegacyStatus
from ._core.store import KeyStore
from ._core.tokens import TOKEN_REGEX, parse_token
from ._core.vault import ENV_VAR as VAULT_ENV
from ._core.vault import KeyVault
from ._drivers.manager import KeyManager
from ._extras import missing_extra
from ._signing.explain import explain_signature, parse_http_request
from .exceptions import ScoutAuthError
from .stores._open import open_store as _open_store

__all__ = ["STORE_ENV", "main", "open_store"]

#: The environment variable ``--store`` defaults to.
STORE_ENV = "SCOUT_AUTH_STORE"


def open_store(url: str) -> KeyStore:
    """A key store for ``url`` (SQL or Redis), without a change-feed listener."""
    return _open_store(url, listen=False)


def _iso(value: datetime | None) -> str | None:
    return None if value is None else value.isoformat()


def _key_json(record: KeyRecord) -> dict[str, Any]:
    return {
        "key_id": record.key_id,
        "org_id": record.org_id,
        "name": record.name,
        "description": record.description,
        "created_by": record.created_by,
        "enabled": record.enabled,
        "created_at": record.created_at.isoformat(),
        "expires_at": _iso(record.expires_at),
        "scopes": None if record.scopes is None else sorted(record.scopes),
        "replaced_by": record.replaced_by,
        "roles": sorted(record.roles),
        "allowed_ips": None if record.allowed_ips is None else list(record.allowed_ips),
        "last_used_at": _iso(record.last_used_at),
        "last_used_address": record.last_used_address,
        "use_count": record.use_count,
        "recoverable": record.recoverable,
    }


def _legacy_json(status: LegacyStatus) -> dict[str, Any]:
    return {**dataclasses.asdict(status), "last_used_at": _iso(status.last_used_at)}


def _check(token: str | None) -> int:
    if token is None:
        token = sys.stdin.readline()
    parsed = parse_token(token.strip())
    if parsed is None:
        print("invalid: not a well-formed scout_sk_ token (format or checksum)", file=sys.stderr)
        return 1
    print(f"well-formed token for key id {parsed.key_id}")
    return 0


def _print_key(key: OrgPublicKey | OrgCredential, fmt: str) -> None:
    if isinstance(key, OrgPublicKey):
        text = key.to_pem() if fmt == "pem" else json.dumps(key.to_jwk())
    else:
        text = key.private_pem() if fmt == "pem" else json.dumps(key.private_jwk())
    print(text.rstrip("\n"))


def _read_token() -> str:
    # A terminal gets a prompt that does not echo; a pipe is read as is.
    if sys.stdin.isatty():
        return getpass.getpass("token: ")
    return sys.stdin.readline()


def _export_key(args: argparse.Namespace) -> int:
    if args.argv_token:
        print(
            "scout-auth: export-key reads the token from stdin, never from the command line "
            "(argv shows in ps and shell history); rotate a key whose token was typed there",
            file=sys.stderr,
        )
        return 2
    try:
        credential = OrgCredential.from_token(_read_token())
    except ValueError as exc:  # the message never quotes the token
        print(f"scout-auth: {exc} (the token is read from stdin)", file=sys.stderr)
        return 1
    _print_key(credential.public if args.public else credential, args.format)
    return 0


def _explain(args: argparse.Namespace, store: KeyStore | None) -> int:
    try:
        request, body = parse_http_request(
            sys.stdin.read(), scheme=args.scheme, method=args.method, url=args.url
        )
    except ValueError as exc:
        print(f"scout-auth: {exc}", file=sys.stderr)
        return 1

    def public_key(key_id: str) -> bytes | None:
        assert store is not None
        record = store.get_key(key_id)
        return None if record is None else record.public_key

    sys.stdout.write(
        explain_signature(
            request,
            body=body,
            public_key=None if store is None else public_key,
            label=args.label,
            now=args.at,
        )
    )
    return 0


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="scout-auth", description="scout_auth key tool")
    parser.add_argument(
        "--store", default=os.environ.get(STORE_ENV), help=f"store URL (${STORE_ENV})"
    )
    sub = parser.add_subparsers(dest="command", required=True)
    check = sub.add_parser("check", help="check a token's format and checksum offline")
    check.add_argument("token", nargs="?", help="the token (default: read from stdin)")
    sub.add_parser("regex", help="print the regex secret scanners can use")
    sub.add_parser("version", help="print the version")
    export = sub.add_parser(
        "export-key", help="print the key of a token read from stdin as PEM or JWK"
    )
    export.add_argument("--format", choices=["pem", "jwk"], default="pem")
    export.add_argument("--public", action="store_true", help="the public key only")
    # Caught so that a token pasted here is refused without argparse echoing it.
    export.add_argument("argv_token", nargs="*", help=argparse.SUPPRESS)
    public = sub.add_parser("public-key", help="print a key's stored public key (PEM or JWK)")
    public.add_argument("key_id")
    public.add_argument("--format", choices=["pem", "jwk"], default="pem")
    explain = sub.add_parser(
        "explain-signature",
        help="read a raw HTTP request from stdin; show the signature base the server builds",
    )
    explain.add_argument("--scheme", default="https", help="the scheme the client used")
    explain.add_argument("--method", help="the method, for header lines without a request line")
    explain.add_argument("--url", help="the absolute URL the client addressed")
    explain.add_argument("--label", help="the signature label the server verifies")
    explain.add_argument(
        "--at", type=float, help="judge freshness at this POSIX time (default: now)"
    )
    sub.add_parser("migrate", help="create or upgrade the SQL schema")
    create = sub.add_parser("create", help="create a key; prints its token once")
    create.add_argument("org_id")
    create.add_argument("name")
    create.add_argument("--scope", action="append", dest="scopes", help="granted scope (repeat)")
    create.add_argument("--expires", help="expiry, ISO 8601 with a timezone")
    create.add_argument("--description", default="", help="what the key is for (plain text)")
    create.add_argument("--role", action="append", dest="roles", help="org role (repeat)")
    create.add_argument(
        "--allow-ip", action="append", dest="allowed_ips", help="address or CIDR range (repeat)"
    )
    create.add_argument(
        "--recoverable",
        action="store_true",
        help=f"seal the private key with the vault (${VAULT_ENV}) so `reveal` can show it again",
    )
    sub.add_parser(
        "reveal", help="print a recoverable key's token again (audited; needs the vault)"
    ).add_argument("key_id")
    sub.add_parser(
        "list", help="list an org's keys, then its legacy secret if any (JSON lines)"
    ).add_argument("org_id")
    rename = sub.add_parser("rename", help="rename a key")
    rename.add_argument("key_id")
    rename.add_argument("name")
    for name in ("disable", "enable", "delete"):
        sub.add_parser(name, help=f"{name} a key").add_argument("key_id")
    rotate = sub.add_parser("rotate", help="rotate a key; prints the new token once")
    rotate.add_argument("key_id")
    rotate.add_argument("--grace-hours", type=float, default=24.0)
    sub.add_parser("legacy-import", help="import an org's legacy secret (stdin)").add_argument(
        "org_id"
    )
    sub.add_parser("legacy-delete", help="turn an org's legacy secret off").add_argument("org_id")
    status = sub.add_parser("legacy-status", help="an org's legacy use (JSON)")
    status.add_argument("org_id")
    status.add_argument("--days", type=int, default=30)
    for name in ("legacy-disable", "legacy-enable"):
        sub.add_parser(name, help=f"{name[7:]} legacy auth for an org").add_argument("org_id")
    pepper = sub.add_parser(
        "legacy-pepper", help=f"make a pepper for ${ENV_VAR}, or check the store against it"
    )
    pepper.add_argument("action", choices=["new", "status"])
    report = sub.add_parser(
        "report", help="an org's keys that need attention: expiring, unused, still used in grace"
    )
    report.add_argument("org_id")
    report.add_argument("--json", action="store_true", help="one JSON object")
    report.add_argument("--expiring-days", type=int, default=14)
    report.add_argument("--unused-days", type=int, default=30)
    vault = sub.add_parser(
        "vault", help=f"make a KEK for ${VAULT_ENV}, count sealed keys per KEK, or re-wrap them"
    )
    vault.add_argument("action", choices=["new-kek", "status", "rewrap"])
    vault.add_argument("--id", dest="kek_id", help="the new KEK's id (new-kek; default: dated)")
    doctor = sub.add_parser("doctor", help="check the deployment's configuration (exit 1 if wrong)")
    doctor.add_argument("--json", action="store_true", help="one JSON document")
    doctor.add_argument(
        "--instances", type=int, default=1, help="how many service instances share this store"
    )
    return parser


def _doctor(args: argparse.Namespace, store: KeyStore) -> int:
    """Print each check of :func:`run_checks`; 1 if any failed."""
    from ._doctor import run_checks

    checks = run_checks(store, instances=max(1, args.instances))
    failed = any(c.status == "fail" for c in checks)
    if args.json:
        print(json.dumps({"ok": not failed, "checks": [c.json() for c in checks]}))
    else:
        for check in checks:
            print(f"{check.status.upper():4}  {check.name}: {check.detail}")
    return 1 if failed else 0


def _manage(args: argparse.Namespace, manager: KeyManager) -> int:
    out: Callable[[object], None] = lambda obj: print(json.dumps(obj))  # noqa: E731
    if args.command == "create":
        expires = datetime.fromisoformat(args.expires) if args.expires else None
        new = manager.create_key(
            args.org_id,
            args.name,
            scopes=args.scopes,
            expires_at=expires,
            roles=args.roles,
            allowed_ips=args.allowed_ips,
            description=args.description,
            recoverable=args.recoverable,
        )
        out({"token": new.token, **_key_json(new.key)})
    elif args.command == "reveal":
        token = manager.reveal_key(args.key_id, actor="cli")
        out({"token": token, **_key_json(manager.get_key(args.key_id))})
    elif args.command == "list":
        listed = manager.list_keys(args.org_id)
        for record in listed:
            out(_key_json(record))
        if listed.legacy.exists or listed.legacy.last_used_at is not None:
            out({"legacy": True, **_legacy_json(listed.legacy)})
    elif args.command == "rename":
        out(_key_json(manager.rename_key(args.key_id, args.name)))
    elif args.command in ("disable", "enable"):
        method = manager.disable_key if args.command == "disable" else manager.enable_key
        out(_key_json(method(args.key_id)))
    elif args.command == "delete":
        out(_key_json(manager.delete_key(args.key_id)))
    elif args.command == "rotate":
        new = manager.rotate_key(args.key_id, grace=timedelta(hours=args.grace_hours))
        out({"token": new.token, **_key_json(new.key)})
    elif args.command == "public-key":
        _print_key(OrgPublicKey.from_record(manager.get_key(args.key_id)), args.format)
    elif args.command == "legacy-import":
        secret = sys.stdin.readline().rstrip("\n")
        legacy = manager.import_legacy_key(args.org_id, secret)
        out(
            {
                "org_id": legacy.org_id,
                "created_at": legacy.created_at.isoformat(),
                # False: the secret is another org's too, so Basic only.
                "bearer": legacy.lookup_digest is not None,
            }
        )
    elif args.command == "legacy-delete":
        manager.delete_legacy_key(args.org_id)
        out({"org_id": args.org_id, "legacy": False})
    elif args.command == "legacy-status":
        out(_legacy_json(manager.legacy_status(args.org_id, days=args.days)))
    elif args.command == "report":
        report = manager.key_report(
            args.org_id, expiring_days=args.expiring_days, unused_days=args.unused_days
        )
        if args.json:
            out(report.to_dict())
        else:
            _print_report(report.to_dict())
    elif args.command in ("legacy-disable", "legacy-enable"):
        switch = (
            manager.disable_legacy if args.command == "legacy-disable" else manager.enable_legacy
        )
        out({"org_id": args.org_id, "enabled": switch(args.org_id).enabled})
    return 0


def _print_report(report: dict[str, Any]) -> None:
    """The report as tables a person reads (one per section; ids, names, times)."""
    sections = (
        ("expiring", f"Expiring within {report['expiring_days']} days", "expires_at"),
        ("unused", f"Unused for {report['unused_days']} days", "last_used_at"),
        ("grace_in_use", "Rotated out, still used in grace", "last_used_at"),
        ("policy_breaches", "Breaking the lifetime policy", "why"),
    )
    print(f"Key report for {report['org_id']} at {report['at']}")
    for name, title, column in sections:
        rows = report[name]
        print(f"\n{title}: {len(rows)}")
        for row in rows:
            # Names come from users: no control characters reach the terminal.
            label = "".join(c if c.isprintable() else "?" for c in row["name"])[:40]
            # The address is normalised IP text (or None): safe to print.
            where = row["last_used_address"] or "-"
            print(f"  {row['id']}  {label:<40}  {row[column] or 'never'}  {where}")


def _pepper_status(store: KeyStore) -> int:
    """Print which pepper made the store's legacy digests; 1 if the configured one fits none."""
    pepper = resolve_pepper(store, None, True)
    if pepper is None:
        print(f"scout-auth: {missing_pepper_error(store)}", file=sys.stderr)
        return 1
    counts = store.legacy_digest_counts()
    unknown = unknown_peppers(counts, pepper)
    report = {
        "configured": list(pepper.ids),
        "current": pepper.current_id,
        "records": {
            ("none" if pid is None else pid): n for pid, n in sorted(counts.items(), key=str)
        },
        "unknown": unknown,
    }
    print(json.dumps(report))
    if unknown and not any(pepper.knows(pid) for pid in counts if pid is not None):
        print(f"scout-auth: {unknown_pepper_error(unknown)}", file=sys.stderr)
        return 1
    return 0


def _vault_command(args: argparse.Namespace, manager: KeyManager) -> int:
    """``vault status``: sealed keys per KEK id; ``vault rewrap``: move them to the current."""
    vault = manager.vault
    if args.action == "status":
        counts = manager.vault_status()
        unknown = sorted(k for k in counts if vault is None or not vault.knows(k))
        report = {
            "configured": None if vault is None else vault.kek_ids,
            "current": None if vault is None else vault.current_kek_id,
            "keys": counts,
            "unknown": unknown,
        }
        print(json.dumps(report))
        if vault is not None and unknown:
            print(
                f"scout-auth: {sum(counts[k] for k in unknown)} recoverable key(s) are sealed "
                f"under KEK ids ${VAULT_ENV} does not hold: {', '.join(unknown)}",
                file=sys.stderr,
            )
            return 1
        return 0
    rewrap = manager.rewrap_vault()
    print(json.dumps(dataclasses.asdict(rewrap)))
    if rewrap.failed:
        print(
            f"scout-auth: {len(rewrap.failed)} key(s) did not open and were left as they were",
            file=sys.stderr,
        )
        return 1
    return 0


def main(argv: Sequence[str] | None = None, *, store: KeyStore | None = None) -> int:
    """Run the command line; returns the exit status.

    ``store``: the key store to manage when no ``--store`` is given (``flask
    scout-auth`` passes the app's); it is left open. A missing extra is one
    line naming it (exit 2), never a traceback.
    """
    try:
        return _main(argv, store)
    except ModuleNotFoundError as exc:
        named = missing_extra(exc)
        if named is None:
            raise
        print(f"scout-auth: {named}", file=sys.stderr)
        return 2
    except ImportError as exc:  # open_store's: already names the extra
        if "pip install 'scout-auth[" not in str(exc):
            raise
        print(f"scout-auth: {exc}", file=sys.stderr)
        return 2


def _main(argv: Sequence[str] | None, store: KeyStore | None) -> int:
    args = _parser().parse_args(argv)
    if args.command == "check":
        return _check(args.token)
    if args.command == "regex":
        print(TOKEN_REGEX)
        return 0
    if args.command == "version":
        print(__version__)
        return 0
    if args.command == "legacy-pepper" and args.action == "new":
        print(new_pepper())
        return 0
    if args.command == "export-key":
        return _export_key(args)
    if args.command == "vault" and args.action == "new-kek":
        try:
            print(KeyVault.new_kek(args.kek_id))
        except ValueError as exc:
            print(f"scout-auth: {exc}", file=sys.stderr)
            return 2
        return 0
    if args.command == "explain-signature" and not args.store and store is None:
        return _explain(args, None)
    given = store if not args.store else None
    if given is None and not args.store:
        print(f"scout-auth: --store URL (or ${STORE_ENV}) is required", file=sys.stderr)
        return 2
    if args.command == "migrate":
        from .stores.sql import upgrade

        bind = args.store or getattr(given, "engine", None)
        if bind is None:
            print("scout-auth: migrate needs a SQL store", file=sys.stderr)
            return 2
        upgrade(bind)
        print("schema up to date")
        return 0
    if given is None:
        try:
            store = open_store(args.store)
        except ValueError as exc:  # a malformed URL (its message never repeats it)
            print(f"scout-auth: {exc}", file=sys.stderr)
            return 2
    assert store is not None
    try:
        if args.command == "doctor":
            return _doctor(args, store)
        if args.command == "legacy-pepper":
            return _pepper_status(store)
        if args.command == "explain-signature":
            return _explain(args, store)
        # The vault is read from the environment only where a command uses it.
        # (rotate too: a recoverable key's successor is sealed as well.)
        uses_vault = args.command in ("reveal", "rotate", "vault") or getattr(
            args, "recoverable", False
        )
        vault = KeyVault.from_env() if uses_vault else None
        # A reveal is always audited, in the store's own trail when it has one.
        sink = getattr(store, "audit_sink", None) if args.command == "reveal" else None
        manager = KeyManager(store, vault=vault, audit=None if sink is None else sink())
        if args.command == "vault":
            return _vault_command(args, manager)
        return _manage(args, manager)
    except (ScoutAuthError, ValueError) as exc:
        print(f"scout-auth: {exc}", file=sys.stderr)
        return 1
    finally:
        if given is None:
            store.close()


if __name__ == "__main__":
    sys.exit(main())
