"""The secret-scanning receiver, written once: no framework, driver or event loop.

Theory of operation
-------------------
:func:`~.flow.receive` turns one :class:`~.flow.LeakRequest` (method,
headers, raw body) into one :class:`~.flow.LeakResponse`. It is a generator
that *yields* what it needs done (the pattern of ``_core/lifecycle.py``):

* :class:`~.flow.ScannerKey` — the scanner's public key with this id (the
  operator's key loader may read a file or call out);
* :class:`~.flow.ClaimReport` / :class:`~.flow.ReleaseReport` — mark a
  body digest as seen (refuse a replay), or forget it when processing failed
  so the scanner's retry is not refused;
* :class:`~.flow.ReportLeak` — ``manager.report_leak(token, ...)``: the one
  store write per real key;
* :class:`~.flow.Notify` — hand ``(key, report)`` to the host's ``on_leak``
  callback, off the request path.

:func:`~.routes.handle` answers ``GET /openapi.json`` with the
receiver's OpenAPI document (:mod:`.openapi`, built from the settings and
:data:`~.flow.REFUSALS`) and hands every other request to ``receive``.
``scout_auth.leaks`` drives it: the ASGI app with ``await`` over an
:class:`~scout_auth.AsyncKeyManager`, the Flask blueprint with plain calls
over a :class:`~scout_auth.KeyManager`. The order is the threat model: the
size first (nothing read past the limit), then the signature (nothing
unsigned is parsed or remembered), then the shape of the report (a bad one
changes nothing), then the replay claim, then one key at a time.
"""
