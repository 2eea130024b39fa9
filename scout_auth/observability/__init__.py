"""Metrics and traces of verification: an observer the verifiers report to.

Off by default: a verifier without ``observer=`` does no observing work.
Two ready observers live in submodules that need an extra each::

    from scout_auth.observability.otel import OTelObserver              # scout-auth[otel]
    from scout_auth.observability.prometheus import PrometheusObserver  # scout-auth[prometheus]

    verifier = AsyncVerifier(store, observer=OTelObserver())

Every metric label is bounded (kind, outcome code, store operation); key
and org ids never are labels. See docs/operations.md for the metrics, their
meaning and suggested alerts.
"""

from __future__ import annotations

from .._drivers.observe import (
    ACCEPTED,
    KINDS,
    OUTCOMES,
    SIGNED_OK,
    Label,
    Observer,
    State,
    label,
    read_state,
)

__all__ = [
    "ACCEPTED",
    "KINDS",
    "OUTCOMES",
    "SIGNED_OK",
    "Label",
    "Observer",
    "State",
    "label",
    "read_state",
]
