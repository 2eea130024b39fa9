"""The audit trail: events, queries and the sinks that keep them."""
