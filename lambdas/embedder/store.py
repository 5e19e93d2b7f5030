"""The embedder's reads and writes: the current analysis in, one row per (item, model) out."""

from __future__ import annotations

from typing import Any


def current_analysis(conn: Any, item_id: str) -> dict[str, Any] | None:
    """The analysis of the item's current bytes (`items.analysis_version`), not its latest one."""
    row = conn.execute(
        "SELECT a.version, a.category, a.subcategories, a.headline, a.summary, a.raw, i.user_id"
        " FROM items i JOIN analyses a ON a.item_id = i.item_id AND a.version = i.analysis_version"
        " WHERE i.item_id = %s",
        (item_id,),
    ).fetchone()
    if row is None:
        return None
    keys = ("version", "category", "subcategories", "headline", "summary", "raw", "user_id")
    return dict(zip(keys, row, strict=True))


def stored(conn: Any, item_id: str, model: str) -> tuple[str, int] | None:
    """(source_sha256, analysis_version) of the item's stored vector for this model."""
    row = conn.execute(
        "SELECT source_sha256, analysis_version FROM embeddings WHERE item_id = %s AND model = %s", (item_id, model)
    ).fetchone()
    return (row[0], row[1]) if row else None


def cached_vector(conn: Any, model: str, source_sha256: str) -> list[float] | None:
    """A vector this model already made from the same text (any item's: the text is the model's
    analysis of identical bytes), so the same text is never sent to the embedding model twice."""
    row = conn.execute(
        "SELECT embedding FROM embedding_cache WHERE model = %s AND source_sha256 = %s", (model, source_sha256)
    ).fetchone()
    return [float(v) for v in row[0].to_list()] if row else None


def cache_vector(conn: Any, model: str, source_sha256: str, vector: list[float]) -> None:
    from pgvector import Vector

    conn.execute(
        "INSERT INTO embedding_cache (model, source_sha256, dimensions, embedding) VALUES (%s, %s, %s, %s)"
        " ON CONFLICT (model, source_sha256) DO NOTHING",
        (model, source_sha256, len(vector), Vector(vector)),
    )


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
    """Insert or replace, only while `analysis_version` is still the item's current analysis: a late
    event for an analysis the item no longer points at (newer bytes, or older ones after
    A -> B -> A) never overwrites the vector of its current content. The item row is locked so
    the processor cannot change the bytes between the check and the write."""
    from pgvector import Vector

    with conn.transaction():
        current = conn.execute(
            "SELECT 1 FROM items WHERE item_id = %s AND analysis_version = %s FOR SHARE", (item_id, analysis_version)
        ).fetchone()
        if current is None:
            return False
        conn.execute(
            """
            INSERT INTO embeddings (item_id, model, dimensions, embedding, source_sha256, analysis_version,
                                    user_id, category)
            VALUES (%s, %s, %s, %s, %s, %s, %s, %s)
            ON CONFLICT (item_id, model) DO UPDATE SET
                dimensions = EXCLUDED.dimensions, embedding = EXCLUDED.embedding,
                source_sha256 = EXCLUDED.source_sha256, analysis_version = EXCLUDED.analysis_version,
                user_id = EXCLUDED.user_id, category = EXCLUDED.category, updated_at = now()
            """,
            (item_id, model, len(vector), Vector(vector), source_sha256, analysis_version, user_id, category),
        )
    return True
