"""The sans-I/O core: records, tokens, credentials, scopes, the store protocol,
the verification flow, the lifecycle ops, the cache, usage, problem details, the
legacy pepper and the drive loop. No framework, driver, client or event loop."""
