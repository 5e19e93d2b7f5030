"""The one migration runner on real PostgreSQL: ordered, recorded, idempotent, tamper-evident."""

from __future__ import annotations

import re
import shutil
from pathlib import Path
from typing import Any

import pytest

from lambdas.collections.pipeline import CATEGORIES
from lambdas.migrations.runner import SQL_DIR, MigrationError, apply_migrations, load


def test_applied_twice_is_a_no_op(db: Any) -> None:
    # The `db` fixture already applied everything once.
    assert apply_migrations(db) == []
    recorded = [r[0] for r in db.execute("SELECT name FROM schema_migrations ORDER BY version").fetchall()]
    assert recorded == [m.name for m in load()] and recorded[0].startswith("001_")
    assert db.execute("SELECT extversion FROM pg_extension WHERE extname = 'vector'").fetchone() is not None
    index = db.execute("SELECT indexdef FROM pg_indexes WHERE indexname = 'embeddings_code_hnsw_idx'").fetchone()
    assert "hnsw" in index[0] and "bit_hamming_ops" in index[0] and "WHERE" not in index[0]


def test_search_indexes_one_code_graph_per_category(db: Any) -> None:
    """Migration 010: the search's candidate indexes are over the vectors' 1-bit codes, one partial
    index for each category the analysis schema allows (a new category needs a new migration),
    and the full-precision vector graph is gone."""
    rows = db.execute(
        "SELECT indexname, indexdef FROM pg_indexes WHERE tablename = 'embeddings' AND indexdef LIKE '%USING hnsw%'"
    ).fetchall()
    partial = {}
    for name, definition in rows:
        assert "(binary_quantize(embedding))::bit(1024)) bit_hamming_ops" in definition, definition
        match = re.search(r"WHERE \(category = '(\w+)'::text\)$", definition)
        if match:
            partial[match.group(1)] = name
    assert sorted(partial) == sorted(CATEGORIES)
    assert {name for name, _ in rows} == {"embeddings_code_hnsw_idx", *partial.values()}


def test_fresh_database_then_new_file_applies_only_the_new_one(database_url: str, tmp_path: Path) -> None:
    import psycopg

    with psycopg.connect(database_url, autocommit=True) as admin:
        admin.execute("DROP DATABASE IF EXISTS migrations_scratch")
        admin.execute("CREATE DATABASE migrations_scratch")
    url = database_url.replace("/collections_test?", "/migrations_scratch?")
    sql = tmp_path / "sql"
    shutil.copytree(SQL_DIR, sql)
    with psycopg.connect(url, autocommit=True) as conn:
        assert len(apply_migrations(conn, sql)) == len(load())
        (sql / "999_extra.sql").write_text("CREATE TABLE extra (id int);")
        assert apply_migrations(conn, sql) == ["999_extra.sql"]
        (sql / "999_extra.sql").write_text("CREATE TABLE extra (id bigint);")
        with pytest.raises(MigrationError, match="changed after it was applied"):
            apply_migrations(conn, sql)
        (sql / "5_bad.sql").write_text("SELECT 1;")
        with pytest.raises(MigrationError, match="NNN_lower_snake"):
            apply_migrations(conn, sql)


def test_failed_migration_is_rolled_back(database_url: str, tmp_path: Path) -> None:
    import psycopg

    (tmp_path / "001_ok.sql").write_text("CREATE TABLE ok_table (id int);")
    (tmp_path / "002_broken.sql").write_text("CREATE TABLE half (id int); SELECT no_such_function();")
    with psycopg.connect(database_url, autocommit=True) as admin:
        admin.execute("DROP DATABASE IF EXISTS migrations_broken")
        admin.execute("CREATE DATABASE migrations_broken")
    with psycopg.connect(database_url.replace("/collections_test?", "/migrations_broken?"), autocommit=True) as conn:
        with pytest.raises(psycopg.errors.UndefinedFunction):
            apply_migrations(conn, tmp_path)
        assert conn.execute("SELECT to_regclass('half') IS NULL").fetchone() == (True,)
        assert [r[0] for r in conn.execute("SELECT name FROM schema_migrations").fetchall()] == ["001_ok.sql"]
