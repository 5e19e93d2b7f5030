"""Search and item queries.

Vector search runs in two steps (scripts/bench/bench_vector_search.py measures them against an
exact scan on 100,000 x 1024-d vectors):
1. Candidates: the `SEARCH_CANDIDATES` rows whose 1-bit codes (`binary_quantize`, the sign of each
   dimension) are nearest in Hamming distance, from HNSW indexes over those 128-byte codes
   (migration 010). A 4 KB-per-row vector graph does not stay in memory and costs a float
   distance per step; the code graph is ~15x smaller and its distance is a few instructions.
2. Re-rank: those candidates by exact cosine distance on the stored vectors; keep `limit`.

Filters: each category has its own partial index (migration 010), so a category filter walks a
graph of only that category's rows instead of discarding most of a shared graph's. The planner
matches a partial index only when it sees the category's value, hence `force_custom_plan` (a
generic plan of a prepared statement would not). A user filter is a WHERE clause the planner
weighs: a user with few rows is answered exactly from the (model, user_id, category) btree, a
user with many from HNSW, whose iterative scan (`relaxed_order`, pgvector >= 0.8) keeps walking
the graph until enough candidates pass the filter (bounded by `hnsw.max_scan_tuples`). Relaxed
order is fine here: step 2 re-sorts by exact distance anyway.
Settings are SET LOCAL (set_config(..., true)) inside one transaction so they never leak to
another request on the same connection.
"""

from __future__ import annotations

from typing import Any

from lambdas.common.settings import env_int

# Only these fixed clauses are ever added (never caller text); values are bound parameters.
_FILTERS = {"user_id": "user_id = %(user_id)s", "category": "category = %(category)s"}

# The code expression must be exactly the indexed one (migration 010) for the planner to use it.
_SEARCH = """
WITH candidates AS MATERIALIZED (
    SELECT item_id, category, embedding <=> %(q)s AS distance
    FROM embeddings
    WHERE model = %(model)s{filters}
    ORDER BY binary_quantize(embedding)::bit(1024) <~> binary_quantize(%(q)s)
    LIMIT %(candidates)s
), nearest AS MATERIALIZED (
    SELECT item_id, category, distance FROM candidates ORDER BY distance LIMIT %(limit)s
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


def configure_hnsw(conn: Any) -> None:
    """Transaction-local search settings; call inside `conn.transaction()`.

    100,000 synthetic 1024-d vectors, 200 candidates re-ranked (scripts/bench/bench_vector_search.py,
    --compare): ef_search 300 gives recall@10 0.978 unfiltered and 1.000 under a 10% category
    filter; 400 gives 0.990 for about a third more time unfiltered. Re-ranking the exact 200
    nearest codes would give 0.995, the codes' own limit."""
    conn.execute(
        "SELECT set_config('hnsw.ef_search', %s, true), set_config('hnsw.iterative_scan', 'relaxed_order', true),"
        " set_config('hnsw.max_scan_tuples', %s, true), set_config('plan_cache_mode', 'force_custom_plan', true)",
        (str(env_int("HNSW_EF_SEARCH", 300)), str(env_int("HNSW_MAX_SCAN_TUPLES", 40_000))),
    )


def _statement(
    vector: list[float], model: str, user_id: str | None, category: str | None, limit: int
) -> tuple[str, dict[str, Any]]:
    from pgvector import Vector

    params: dict[str, Any] = {"user_id": user_id, "category": category}
    filters = "".join(f"\n      AND {clause}" for name, clause in _FILTERS.items() if params[name] is not None)
    candidates = max(env_int("SEARCH_CANDIDATES", 200), limit)
    params.update(q=Vector(vector), model=model, limit=limit, candidates=candidates)
    return _SEARCH.format(filters=filters), params


def search(
    conn: Any, vector: list[float], model: str, *, user_id: str | None, category: str | None, limit: int
) -> list[dict[str, Any]]:
    sql, params = _statement(vector, model, user_id, category, limit)
    with conn.transaction():
        configure_hnsw(conn)
        rows = conn.execute(sql, params).fetchall()
    keys = ("item_id", "score", "user_id", "thumbnail_key", "category", "subcategories", "headline", "summary")
    return [dict(zip(keys, row, strict=True)) for row in rows]


def search_plan(
    conn: Any, vector: list[float], model: str, *, user_id: str | None, category: str | None, limit: int
) -> str:
    """EXPLAIN of exactly what `search` runs, under the same settings (tests and the bench check
    which index serves a query)."""
    sql, params = _statement(vector, model, user_id, category, limit)
    with conn.transaction():
        configure_hnsw(conn)
        return "\n".join(row[0] for row in conn.execute("EXPLAIN " + sql, params).fetchall())


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
