"""The store contract suites, shipped: run them against your own key store.

Every store scout_auth ships passes the same pytest suites; a third-party
store runs them unchanged. Install the ``test`` extra (pytest, hypothesis)
and subclass::

    import pytest
    from scout_auth.testing import StoreContract

    class TestMyStore(StoreContract):
        @pytest.fixture
        def store(self):
            return MyKeyStore(...)

        @pytest.fixture
        def legacy_dump(self, store):
            # every raw value the back end keeps for an org's legacy record
            return lambda org_id: my_raw_legacy_values(store, org_id)

:class:`StoreContract` is :class:`KeysContract`, :class:`ReferenceContract`
(the hypothesis :class:`ReferenceMachine` against the in-memory reference),
:class:`AuditContract`, :class:`RolesUsageContract`,
:class:`LegacyDigestContract` and :class:`CatalogueContract` (key
descriptions, multi-field updates, the scope catalogue) and
:class:`VaultContract` (recoverable keys' sealed seeds, ``list_sealed_seeds``);
mix in the parts alone if your store does less.
:class:`PropagationContract` is for stores with a change feed (fixtures
``writer`` and ``reader``). Async tests run through anyio's pytest plugin,
which comes with anyio. See docs/writing-a-store.md.
"""

from __future__ import annotations

try:
    import pytest as _pytest  # noqa: PT013 - private: a face exports every public name it binds
except ImportError:  # pragma: no cover - depends on the environment
    raise ImportError(
        "scout_auth.testing needs pytest and hypothesis: pip install 'scout-auth[test]'"
    ) from None

# Before the contract modules are imported: a failed contract assertion then
# shows its values, as in a test module of your own.
_CONTRACTS = (
    "_audit",
    "_catalogue",
    "_legacy_digest",
    "_propagation",
    "_roles_usage",
    "_store",
    "_vault",
)
_pytest.register_assert_rewrite(*(f"{__name__}.{module}" for module in _CONTRACTS))

from ._audit import AuditContract  # noqa: E402
from ._catalogue import CatalogueContract  # noqa: E402
from ._legacy_digest import CONTRACT_LEGACY_PEPPER, LegacyDigestContract  # noqa: E402
from ._propagation import PropagationContract  # noqa: E402
from ._roles_usage import RolesUsageContract  # noqa: E402
from ._store import KeysContract, ReferenceContract, ReferenceMachine, StoreContract  # noqa: E402
from ._vault import VaultContract  # noqa: E402

__all__ = [
    "CONTRACT_LEGACY_PEPPER",
    "AuditContract",
    "CatalogueContract",
    "KeysContract",
    "LegacyDigestContract",
    "PropagationContract",
    "ReferenceContract",
    "ReferenceMachine",
    "RolesUsageContract",
    "StoreContract",
    "VaultContract",
]
