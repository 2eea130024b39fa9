"""Revocation across real processes: the part of the propagation suite that stays here.

:class:`scout_auth.testing.PropagationContract` runs in one process. This
mixin adds trials with real service processes and a separate admin process
(:class:`~tests.fleet.Fleet`, which starts ``examples.service``), so it
cannot ship with the library. A test class mixes both in and provides the
``fleet_store`` fixture: the ``(url, namespace)`` the fleet runs on.

Bounds are generous on purpose; the latency distribution lives in
``benchmarks/revocation.py``.
"""

from __future__ import annotations

import pytest

from tests.fleet import Fleet, revoke_and_time


class FleetPropagationContract:
    """A change made by another process reaches every service instance in time."""

    @pytest.mark.parametrize(
        ("listen", "cache_ttl", "bound"),
        [
            # Far below the 60 s TTL: only the change feed can explain it.
            pytest.param(True, 60.0, 10.0, id="change-feed"),
            # The feed is off: the TTL must still bound it (plus generous slack).
            pytest.param(False, 2.0, 2.0 + 3.0, id="ttl-fallback"),
        ],
    )
    def test_a_change_by_another_process_reaches_every_instance(
        self, fleet_store, listen, cache_ttl, bound
    ):
        url, namespace = fleet_store
        with Fleet(url, namespace, instances=2, cache_ttl=cache_ttl, listen=listen) as fleet:
            trials = []
            for action in ("disable", "delete"):
                if listen:
                    for _ in range(3):
                        trials += revoke_and_time(fleet, action, timeout=bound + 5)
                else:  # each trial waits out the TTL: run three at once
                    trials += revoke_and_time(fleet, action, keys=3, timeout=bound + 5)
        assert len(trials) == 6
        for trial in trials:
            assert len(trial.latencies) == 2
            assert all(latency <= bound for latency in trial.latencies), trial
