"""The management API and page, written once: no framework, driver or event loop.

Theory of operation
-------------------
:func:`~.routes.handle` turns one :class:`~.http.ManageRequest` (plain
values a framework adapter read) into one :class:`~.http.ManageResponse`.
It is a generator that *yields* what it needs done, the pattern of the
lifecycle ops (``_core/lifecycle.py``):

* :class:`~.needs.Authorize` — "who is this?": the adapter calls the host
  application's ``authorize(request)`` hook;
* :class:`~.needs.VerifyKey` — the request carries an Org Credential
  (machine access): the adapter verifies it with its verifier;
* :class:`~.needs.Call` — a :class:`~scout_auth.KeyManager` method, by name;
* :class:`~.needs.QueryAudit` — one page of the audit trail;
* :class:`~.needs.Render` — a page template, rendered to bytes.

``scout_auth.manage`` drives it: the Starlette app with ``await`` over an
:class:`~scout_auth.AsyncKeyManager`, the Flask blueprint with plain calls
over a :class:`~scout_auth.KeyManager`. Every decision — routing, who may
do what, CSRF, validation, rate limits, the JSON and problem bodies — is
made here once, so both mountings answer the same bytes.
"""
