"""The adapter fuzz properties, for minutes instead of seconds (``scripts/fuzz``).

Usage::

    python -m tests.behaviour.fuzz_long --minutes 10
    python -m tests.behaviour.fuzz_long --minutes 2 --property scoped --target wsgi-catchall

Runs the properties of :mod:`tests.behaviour.test_fuzz_adapters` (the same
strategies and checks, :data:`tests.behaviour.harness.PROPERTIES`) round
robin over every target, with random seeds and no deadline, until the time
is up. A failing example does not stop the run: it is recorded under a
class (what failed, and the traits of the request that matter: ``HEAD``, a
lower-case method, a mount point, a control character in the path, …) and
the search goes on, so one run lists every kind of failure it met, each
with its shortest example. Exit status 1 if anything failed.
"""

from __future__ import annotations

import argparse
import re
import sys
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from typing import Any

from hypothesis import HealthCheck, given, settings

from tests.behaviour import harness
from tests.behaviour.harness import PROPERTIES, TARGETS
from tests.behaviour.strategies import Mutation, RawRequest

#: Examples per (property, target) between two looks at the clock.
ROUND = 300


@dataclass
class Found:
    """One class of failure: how often, where, and the shortest example seen."""

    count: int = 0
    targets: Counter[str] = field(default_factory=Counter)
    example: str = ""
    message: str = ""


_CONTROL = re.compile(rb"%(?:[01][0-9a-fA-F]|7[fF])|[\x00-\x1f\x7f]")

#: Traits of a request that may cause a failure, each with a request without it.
_TRAITS: list[tuple[str, Callable[[RawRequest], RawRequest | None]]] = [
    ("HEAD", lambda r: replace(r, method="GET") if r.method.upper() == "HEAD" else None),
    (
        "lower-case method",
        lambda r: replace(r, method=r.method.upper()) if r.method != r.method.upper() else None,
    ),
    ("mounted (root_path)", lambda r: replace(r, root_path="") if r.root_path else None),
    (
        "control character in the path",
        lambda r: (
            replace(r, raw_path=_CONTROL.sub(b"", r.raw_path))
            if _CONTROL.search(r.raw_path)
            else None
        ),
    ),
    (
        "leading //",
        lambda r: (
            replace(r, raw_path=b"/" + r.raw_path.lstrip(b"/"))
            if r.raw_path.startswith(b"//")
            else None
        ),
    ),
]


def _cause(prop: str, adapter: str, kind: str, req: RawRequest) -> str:
    # The traits without which the same request passes: the cause, not the noise.
    _, check = PROPERTIES[prop]
    needed = []
    for name, without in _TRAITS:
        other = without(req)
        if other is None:
            continue
        try:
            check(adapter, kind, other)
        except AssertionError:
            continue
        needed.append(name)
    return ", ".join(needed) or "no single trait"


def classify(prop: str, adapter: str, kind: str, value: Any, message: str) -> str:
    """A short name for the kind of failure ``message`` reports."""
    if match := re.match(r"exception escaped the app: .*?raised (\w+): (.*?), body", message):
        return f"{prop}: exception {match[1]}: {match[2][:70]}"
    if match := re.match(r"server error: status (\d+)", message):
        return f"{prop}: status {match[1]}"
    if message.startswith("no response"):
        return f"{prop}: no response"
    if isinstance(value, tuple) and isinstance(value[1], Mutation):
        return f"{prop}: {message.split(',')[0]} (changed: {value[1].target})"
    if isinstance(value, RawRequest):
        what = "2xx/3xx without a credential" if prop == "unauthenticated" else "rule bypass"
        return f"{prop}: {what} [{_cause(prop, adapter, kind, value)}]"
    return f"{prop}: {message[:80]}"


def _explorer(
    prop: str, adapter: str, kind: str, found: dict[str, Found], examples: Counter[str]
) -> Any:
    strategy, check = PROPERTIES[prop]
    name = f"{adapter}-{kind}"

    @settings(
        max_examples=ROUND, deadline=None, database=None, suppress_health_check=list(HealthCheck)
    )
    @given(value=strategy)
    def explore(value: Any) -> None:
        examples[f"{prop} {name}"] += 1
        try:
            check(adapter, kind, value)
        except AssertionError as exc:
            # Recorded, not raised: the search goes on.
            message = str(exc).splitlines()[0]
            entry = found.setdefault(classify(prop, adapter, kind, value, message), Found())
            entry.count += 1
            entry.targets[name] += 1
            text = repr(value)
            if not entry.example or len(text) < len(entry.example):
                entry.example, entry.message = text, message

    return explore


def run(minutes: float, props: list[str], targets: list[tuple[str, str]]) -> int:
    """Fuzz until ``minutes`` are up; print a summary; 1 if anything failed."""
    found: dict[str, Found] = {}
    examples: Counter[str] = Counter()
    stop = time.monotonic() + minutes * 60
    explorers = [_explorer(p, a, k, found, examples) for p in props for a, k in targets]
    with harness.portal():
        while time.monotonic() < stop:
            for explore in explorers:
                explore()
                if time.monotonic() >= stop:
                    break
    _summary(examples, found)
    return 1 if found else 0


def _summary(examples: Counter[str], found: dict[str, Found]) -> None:
    print(f"\n{sum(examples.values())} examples")
    for key, n in sorted(examples.items()):
        print(f"  {n:7}  {key}")
    if not found:
        print("\nno failure found")
        return
    print(f"\n{len(found)} kinds of failure:")
    for i, (key, entry) in enumerate(sorted(found.items()), 1):
        where = ", ".join(f"{t} ({n})" for t, n in entry.targets.most_common())
        print(f"\n{i}. {key}\n   {entry.count} examples; {where}")
        print(f"   shortest: {entry.example}\n   -> {entry.message[:300]}")


def main(argv: list[str] | None = None) -> int:
    """Command line entry point (see the module docstring)."""
    parser = argparse.ArgumentParser(prog="scripts/fuzz", description=__doc__.split("\n")[0])
    parser.add_argument("--minutes", type=float, default=10.0, help="how long (default 10)")
    parser.add_argument(
        "--property", action="append", choices=sorted(PROPERTIES), help="only this property"
    )
    ids = [f"{a}-{k}" for a, k in TARGETS]
    parser.add_argument("--target", action="append", choices=ids, help="only this app")
    args = parser.parse_args(argv)
    props = args.property or list(PROPERTIES)
    targets = [t for t, i in zip(TARGETS, ids, strict=True) if not args.target or i in args.target]
    return run(args.minutes, props, targets)


if __name__ == "__main__":
    sys.exit(main())
