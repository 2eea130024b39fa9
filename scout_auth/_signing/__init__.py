"""HTTP Message Signatures (RFC 9421), structured fields (RFC 8941/9651),
Content-Digest (RFC 9530), the body guard and the replay cache. Pure decisions."""
