"""The SQL key store (SQLAlchemy Core): database, ops, schema, feed,
migrations, audit sink."""
