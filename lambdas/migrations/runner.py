"""The one migration runner: the deploy-time CDK Trigger, the local runtime and the tests call
`apply_migrations`. Command line: `python -m lambdas.migrations` (uses DATABASE_URL).

Files `sql/NNN_name.sql` are applied in order, each in its own transaction, and recorded in
`schema_migrations` with a checksum. An applied file that was edited afterwards is an error
(write a new file instead). A session advisory lock serializes concurrent runners (two deploys,
or tests in parallel), so applying twice is a no-op.
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

SQL_DIR = Path(__file__).resolve().parent / "sql"
_NAME = re.compile(r"^(\d{3})_[a-z0-9_]+\.sql$")
_LOCK_KEY = 0x636F6C6C  # "coll": any constant shared by every runner


class MigrationError(RuntimeError):
    pass


@dataclass(frozen=True)
class Migration:
    version: str
    name: str
    sql: str

    @property
    def checksum(self) -> str:
        return hashlib.sha256(self.sql.encode()).hexdigest()


def load(directory: Path = SQL_DIR) -> list[Migration]:
    migrations = []
    for path in sorted(directory.glob("*.sql")):
        match = _NAME.match(path.name)
        if not match:
            raise MigrationError(f"migration file name {path.name!r} is not NNN_lower_snake.sql")
        migrations.append(Migration(match.group(1), path.name, path.read_text()))
    versions = [m.version for m in migrations]
    if len(set(versions)) != len(versions):
        raise MigrationError(f"duplicate migration numbers in {directory}")
    return migrations


def apply_migrations(conn: Any, directory: Path = SQL_DIR) -> list[str]:
    """Apply pending migrations on an autocommit psycopg connection; returns the names applied."""
    migrations = load(directory)
    applied: list[str] = []
    conn.execute("SELECT pg_advisory_lock(%s)", (_LOCK_KEY,))
    try:
        conn.execute(
            "CREATE TABLE IF NOT EXISTS schema_migrations ("
            " version text PRIMARY KEY, name text NOT NULL, checksum text NOT NULL,"
            " applied_at timestamptz NOT NULL DEFAULT now())"
        )
        done = {
            row[0]: (row[1], row[2])
            for row in conn.execute("SELECT version, name, checksum FROM schema_migrations").fetchall()
        }
        for migration in migrations:
            if migration.version in done:
                if done[migration.version][1] != migration.checksum:
                    raise MigrationError(f"{migration.name} changed after it was applied; add a new migration instead")
                continue
            with conn.transaction():
                conn.execute(migration.sql)
                conn.execute(
                    "INSERT INTO schema_migrations (version, name, checksum) VALUES (%s, %s, %s)",
                    (migration.version, migration.name, migration.checksum),
                )
            applied.append(migration.name)
    finally:
        conn.execute("SELECT pg_advisory_unlock(%s)", (_LOCK_KEY,))
    if applied:
        # The vector type may have just been created: teach this connection about it.
        from pgvector.psycopg import register_vector

        register_vector(conn)
    return applied
