"""`python -m lambdas.migrations`: apply pending migrations to DATABASE_URL (or DB_SECRET_ARN)."""

from __future__ import annotations

from lambdas.collections import pg
from lambdas.migrations.runner import apply_migrations

if __name__ == "__main__":
    conn = pg.connect()
    names = apply_migrations(conn)
    print("applied: " + (", ".join(names) if names else "nothing (up to date)"))
    conn.close()
