"""Percentiles and a one-line summary, shared by the benchmarks."""

from __future__ import annotations

import math
from collections.abc import Sequence

COLUMNS = ("n", "min", "p50", "p90", "p99", "max")


def percentile(values: Sequence[float], p: float) -> float:
    """Nearest-rank percentile (``p`` in 0..100) of ``values``."""
    ordered = sorted(values)
    rank = max(1, math.ceil(p / 100 * len(ordered)))
    return ordered[rank - 1]


def row(label: str, seconds: Sequence[float], *, unit: float = 1e3, width: int = 34) -> str:
    """``label  n  min p50 p90 p99 max`` with values in ms (``unit=1e3``) or µs (``1e6``)."""
    cells = [min(seconds), *(percentile(seconds, p) for p in (50, 90, 99)), max(seconds)]
    return f"{label:<{width}} {len(seconds):>6} " + " ".join(f"{c * unit:>9.3f}" for c in cells)


def header(unit: str, *, width: int = 34) -> str:
    names = " ".join(f"{c + ' ' + unit:>9}" for c in COLUMNS[1:])
    return f"{'':<{width}} {'n':>6} {names}"
