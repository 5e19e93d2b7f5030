"""Search and item queries.

Filtered vector search with HNSW: the index returns the ef_search nearest rows and a WHERE
clause filters afterwards, so a selective filter used to leave fewer than `limit` rows.
pgvector 0.8's iterative scan (`hnsw.iterative_scan = relaxed_order`) keeps scanning the graph
until `limit` rows pass the filter (bounded by `hnsw.max_scan_tuples`). Relaxed order may return
rows slightly out of order, so the nearest rows are materialized and re-sorted by distance.
Settings are SET LOCAL (set_config(..., true)) inside one transaction so they never leak to
another request on the same connection.
"""

from __future__ import annotations

from typing import Any

from lambdas.common.settings import env_int

_SEARCH = """
WITH nearest AS MATERIALIZED (
    SELECT item_id, category, embedding <=> %(q)s AS distance
    FROM embeddings
    WHERE model = %(model)s
      AND (%(user_id)s::text IS NULL OR user_id = %(user_id)s::text)
      AND (%(category)s::text IS NULL OR category = %(category)s::text)
    ORDER BY embedding <=> %(q)s
    LIMIT %(limit)s
)
SELECT n.item_id, 1 - n.distance AS score, i.user_id, i.thumbnail_key,
       coalesce(a.category, n.category), a.subcategories, a.headline, a.summary
FROM nearest n
JOIN items i USING (item_id)
-- Every stored vector is of its item's current analysis: the processor deletes the others in
-- the transaction that records new bytes, and the embedder writes only for the current one.
LEFT JOIN analyses a ON a.item_id = i.item_id AND a.version = i.analysis_version
ORDER BY n.distance
"""

# The item's current analysis is the one of its current bytes (`analysis_version`), which after
# an overwrite A -> B -> A is older than its latest; none while new bytes wait for analysis.
_ITEM = """
SELECT i.item_id, i.user_id, i.status, i.failure_reason, i.content_type, i.width, i.height,
       i.original_key, i.thumbnail_key, i.created_at, i.updated_at,
       a.version, a.category, a.subcategories, a.headline, a.summary, a.raw, a.provider, a.model,
       a.prompt_version, a.created_at
FROM items i
LEFT JOIN analyses a ON a.item_id = i.item_id AND a.version = i.analysis_version
WHERE i.item_id = %s
"""


def configure_hnsw(conn: Any, *, filtered: bool = False) -> None:
    """Transaction-local HNSW settings; call inside `conn.transaction()`.

    On 100,000 synthetic 1024-d vectors (scripts/bench/bench_collections.py): ef_search 400 gives
    recall@10 0.96 unfiltered (100 gave 0.69). A filter that keeps 10% of rows discards most of
    the beam, so filtered queries search a wider one: 800 lifts their recall from 0.88 to 0.98,
    for about twice the latency (~85 ms there)."""
    ef = env_int("HNSW_FILTERED_EF_SEARCH", 800) if filtered else env_int("HNSW_EF_SEARCH", 400)
    conn.execute(
        "SELECT set_config('hnsw.ef_search', %s, true), set_config('hnsw.iterative_scan', 'relaxed_order', true),"
        " set_config('hnsw.max_scan_tuples', %s, true)",
        (str(ef), str(env_int("HNSW_MAX_SCAN_TUPLES", 40_000))),
    )


def search(
    conn: Any, vector: list[float], model: str, *, user_id: str | None, category: str | None, limit: int
) -> list[dict[str, Any]]:
    from pgvector import Vector

    with conn.transaction():
        configure_hnsw(conn, filtered=user_id is not None or category is not None)
        rows = conn.execute(
            _SEARCH, {"q": Vector(vector), "model": model, "user_id": user_id, "category": category, "limit": limit}
        ).fetchall()
    keys = ("item_id", "score", "user_id", "thumbnail_key", "category", "subcategories", "headline", "summary")
    return [dict(zip(keys, row, strict=True)) for row in rows]


def item(conn: Any, item_id: str) -> dict[str, Any] | None:
    row = conn.execute(_ITEM, (item_id,)).fetchone()
    if row is None:
        return None
    (
        item_id_,
        user_id,
        status,
        failure_reason,
        content_type,
        width,
        height,
        original_key,
        thumbnail_key,
        created_at,
        updated_at,
        version,
        category,
        subcategories,
        headline,
        summary,
        raw,
        provider,
        model,
        prompt_version,
        analyzed_at,
    ) = row
    analysis = (
        None
        if version is None
        else {
            "version": version,
            "category": category,
            "subcategories": subcategories,
            "headline": headline,
            "summary": summary,
            "details": raw,
            "provider": provider,
            "model": model,
            "prompt_version": prompt_version,
            "created_at": analyzed_at.isoformat(),
        }
    )
    return {
        "item_id": str(item_id_),
        "user_id": user_id,
        "status": status,
        "failure_reason": failure_reason,
        "content_type": content_type,
        "width": width,
        "height": height,
        "original_key": original_key,
        "thumbnail_key": thumbnail_key,
        "created_at": created_at.isoformat(),
        "updated_at": updated_at.isoformat(),
        "analysis": analysis,
    }
