"""The embedder's reads and writes: the current analysis in, one row per (item, model) out."""

from __future__ import annotations

from typing import Any


def latest_analysis(conn: Any, item_id: str) -> dict[str, Any] | None:
    row = conn.execute(
        "SELECT a.version, a.category, a.subcategories, a.headline, a.summary, a.raw, i.user_id"
        " FROM analyses a JOIN items i USING (item_id)"
        " WHERE a.item_id = %s ORDER BY a.version DESC LIMIT 1",
        (item_id,),
    ).fetchone()
    if row is None:
        return None
    keys = ("version", "category", "subcategories", "headline", "summary", "raw", "user_id")
    return dict(zip(keys, row, strict=True))


def stored_hash(conn: Any, item_id: str, model: str) -> str | None:
    row = conn.execute(
        "SELECT source_sha256 FROM embeddings WHERE item_id = %s AND model = %s", (item_id, model)
    ).fetchone()
    return row[0] if row else None


def upsert_embedding(
    conn: Any,
    *,
    item_id: str,
    model: str,
    vector: list[float],
    source_sha256: str,
    analysis_version: int,
    user_id: str,
    category: str,
) -> bool:
    """Insert or replace; a late event for an older analysis never overwrites a newer vector."""
    from pgvector import Vector

    row = conn.execute(
        """
        INSERT INTO embeddings (item_id, model, dimensions, embedding, source_sha256, analysis_version,
                                user_id, category)
        VALUES (%s, %s, %s, %s, %s, %s, %s, %s)
        ON CONFLICT (item_id, model) DO UPDATE SET
            dimensions = EXCLUDED.dimensions, embedding = EXCLUDED.embedding,
            source_sha256 = EXCLUDED.source_sha256, analysis_version = EXCLUDED.analysis_version,
            user_id = EXCLUDED.user_id, category = EXCLUDED.category, updated_at = now()
        WHERE embeddings.analysis_version <= EXCLUDED.analysis_version
        RETURNING 1
        """,
        (item_id, model, len(vector), Vector(vector), source_sha256, analysis_version, user_id, category),
    ).fetchone()
    return row is not None
