"""Flask the Flask way (issue 16): init_app reads SCOUT_AUTH_*, blueprints, flask scout-auth."""

from __future__ import annotations

import json

import pytest
from flask import Blueprint, Flask

from scout_auth import InMemoryKeyStore, KeyManager, Verifier
from scout_auth.exceptions import ConfigurationError
from scout_auth.flask import ScoutAuth, current_org
from tests._support import cheap_hasher


def make_app(**config: object) -> Flask:
    app = Flask(__name__)
    app.config.update(config)

    @app.get("/files")
    def files() -> dict[str, str]:
        return {"org": current_org.org_id}

    @app.post("/files")
    def upload() -> dict[str, str]:
        return {"org": current_org.org_id}

    @app.get("/health")
    def health() -> str:
        return "ok"

    return app


@pytest.fixture
def sqlite_url(tmp_path):
    from scout_auth.stores.sql import create_all

    url = f"sqlite:///{tmp_path / 'keys.db'}"
    create_all(url)
    return url


def test_init_app_reads_the_store_and_options_from_config(sqlite_url):
    app = make_app(
        SCOUT_AUTH_STORE=sqlite_url,
        SCOUT_AUTH_EXEMPT_PATHS=["/health"],
        SCOUT_AUTH_RULES=[("POST", "/files", ["files:write"])],
        SCOUT_AUTH_CACHE_TTL=0,
    )
    auth = ScoutAuth()
    auth.init_app(app)
    reader = KeyManager(auth.verifier.store).create_key("org_cfg", "reader", scopes=["files:read"])
    client = app.test_client()
    headers = {"authorization": f"Bearer {reader.token}"}
    assert client.get("/health").data == b"ok"
    assert client.get("/files", headers=headers).get_json() == {"org": "org_cfg"}
    refused = client.post("/files", headers=headers)
    assert refused.status_code == 403
    assert refused.get_json()["code"] == "insufficient_scope"
    assert client.get("/files").status_code == 401
    assert auth.verifier.cache.ttl == 0


def test_arguments_win_over_config():
    store = InMemoryKeyStore()
    token = KeyManager(store, password_hasher=cheap_hasher()).create_key("org_a", "svc").token
    app = make_app(SCOUT_AUTH_EXEMPT_PATHS=["/files"], SCOUT_AUTH_HEADER="x-ignored")
    ScoutAuth(app, verifier=Verifier(store), exempt_paths=["/health"], header="X-API-Key")
    client = app.test_client()
    assert client.get("/files").status_code == 401  # the argument, not the config
    assert client.get("/files", headers={"x-api-key": token}).get_json() == {"org": "org_a"}


def test_one_extension_serves_two_apps_with_their_own_stores():
    auth = ScoutAuth()
    stores = [InMemoryKeyStore(), InMemoryKeyStore()]
    apps = [make_app(SCOUT_AUTH_STORE=s) for s in stores]
    for app in apps:
        auth.init_app(app)
    tokens = [
        KeyManager(s, password_hasher=cheap_hasher()).create_key(f"org_{i}", "svc").token
        for i, s in enumerate(stores)
    ]
    for i, app in enumerate(apps):
        client = app.test_client()
        mine = client.get("/files", headers={"authorization": f"Bearer {tokens[i]}"})
        other = client.get("/files", headers={"authorization": f"Bearer {tokens[1 - i]}"})
        assert mine.get_json() == {"org": f"org_{i}"}
        assert other.status_code == 401  # the other app's store does not know it


def test_a_blueprint_can_be_exempted_whole_with_its_children():
    store = InMemoryKeyStore()
    app = make_app()
    auth = ScoutAuth(verifier=Verifier(store))
    public = Blueprint("public", __name__, url_prefix="/public")
    nested = Blueprint("docs", __name__, url_prefix="/docs")

    @public.get("/info")
    def info() -> str:
        return "info"

    @nested.get("/page")
    def page() -> str:
        return "page"

    public.register_blueprint(nested)
    auth.exempt(public)
    app.register_blueprint(public)
    auth.init_app(app)
    client = app.test_client()
    assert client.get("/public/info").data == b"info"
    assert client.get("/public/docs/page").data == b"page"
    assert client.get("/files").status_code == 401  # everything else still protected


def test_no_verifier_and_no_store_is_a_configuration_error():
    with pytest.raises(ConfigurationError, match="SCOUT_AUTH_STORE"):
        ScoutAuth(make_app())


def test_flask_scout_auth_runs_the_cli_on_the_apps_store():
    store = InMemoryKeyStore()
    app = make_app(SCOUT_AUTH_STORE=store)
    ScoutAuth(app)
    runner = app.test_cli_runner()
    created = runner.invoke(args=["scout-auth", "create", "org_cli", "nightly export"])
    assert created.exit_code == 0, created.output
    new = json.loads(created.output)
    assert new["org_id"] == "org_cli"
    assert app.test_client().get(
        "/files", headers={"authorization": f"Bearer {new['token']}"}
    ).get_json() == {"org": "org_cli"}
    listed = runner.invoke(args=["scout-auth", "list", "org_cli"])
    assert [json.loads(line)["name"] for line in listed.output.splitlines()] == ["nightly export"]
    assert store.get_key(new["key_id"]) is not None  # the app's store, still open
    failed = runner.invoke(args=["scout-auth", "disable", "no-such-key"])
    assert failed.exit_code == 1
