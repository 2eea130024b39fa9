"""The drivers: verifier, key manager, single flight and the audit buffer;
the only place where sync and async differ."""
