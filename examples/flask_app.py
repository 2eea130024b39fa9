"""The same API in Flask, protected by scout_auth.

Run it alone (in-memory store, one bootstrap key printed at start)::

    python -m examples.flask_app
"""

from __future__ import annotations

from typing import Any

from flask import Flask, request

from scout_auth import InMemoryKeyStore, KeyManager, KeyStore, Verifier
from scout_auth.flask import ScoutAuth, current_org, require_scopes


def create_app(store: KeyStore) -> Flask:
    """The example API, protected by scout_auth over ``store``."""
    app = Flask(__name__)
    auth = ScoutAuth(app, verifier=Verifier(store))

    @app.get("/files")
    def list_files() -> Any:
        return {"org": current_org.org_id, "key": current_org.key_name, "files": ["q3-report.pdf"]}

    @app.post("/files")
    @require_scopes("files:write")
    def upload_file() -> Any:
        return {"org": current_org.org_id, "stored": len(request.get_data())}, 201

    @app.get("/whoami")
    @require_scopes("files:read")
    def whoami() -> Any:
        return {"org": current_org.org_id, "key": current_org.key_name}

    @app.get("/health")
    @auth.exempt
    def health() -> str:
        return "ok"

    return app


if __name__ == "__main__":
    store = InMemoryKeyStore()
    new = KeyManager(store).create_key("org_demo", "local development", scopes=["files:*"])
    print(f"curl -H 'Authorization: Bearer {new.token}' http://127.0.0.1:5000/files")
    create_app(store).run(host="127.0.0.1", port=5000)
