"""The SQL key store (SQLAlchemy Core): database, ops, schema, feed,
migrations, audit sink."""

from ..._extras import require as _require

# First of all: without the extra, every module here fails on its first import;
# this names the extra to install instead of "No module named 'sqlalchemy'".
_require("sqlalchemy")
