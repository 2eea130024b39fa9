"""What every framework adapter shares: options, ASGI/WSGI request readers,
the request gate, trusted proxies, the Starlette authentication backend."""
