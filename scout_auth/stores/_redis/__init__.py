"""The Redis key store: connection, ops, layout, events, nonce cache,
audit sink."""
