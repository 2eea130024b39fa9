"""The Redis key store: connection, ops, layout, events, nonce cache,
audit sink."""

from ..._extras import require as _require

# First of all: without the extra, every module here fails on its first import;
# this names the extra to install instead of "No module named 'redis'".
_require("redis")
