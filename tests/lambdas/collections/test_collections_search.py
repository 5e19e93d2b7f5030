"""Search API and its queries on real PostgreSQL + pgvector: ranking, filters, scoping, plans, iterative scan."""

from __future__ import annotations

import uuid
from typing import Any

import psycopg
import pytest
from conftest import call_search, put_parameter
from fake_apis import EMBEDDINGS, voyage_embeddings
from pgvector import Vector

from lambdas.collections.embeddings import hash_embed
from lambdas.common import containers
from lambdas.embedder import handler as embedder
from lambdas.search import queries


def seed(db: Any, context: Any, user_id: str, category: str, headline: str, summary: str) -> str:
    """An item with an analysis, embedded by the real embedder handler (local provider)."""
    item_id = str(uuid.uuid4())
    db.execute(
        "INSERT INTO items (item_id, user_id, bucket, original_key, status, thumbnail_key)"
        " VALUES (%s, %s, 'b', %s, 'processed', %s)",
        (item_id, user_id, f"{user_id}/{item_id}.jpg", f"thumbnails/{item_id}.jpg"),
    )
    db.execute(
        "INSERT INTO analyses (item_id, version, category, subcategories, headline, summary, raw,"
        " provider, model, prompt_version, image_sha256) VALUES (%s, 1, %s, '{}', %s, %s, '{}',"
        " 'test', 'test', 'p1', 'sha')",
        (item_id, category, headline, summary),
    )
    db.execute("UPDATE items SET analysis_version = 1, image_sha256 = 'sha' WHERE item_id = %s", (item_id,))
    embedder.handler({"id": "e", "detail": {"item_id": item_id}}, context)
    return item_id


@pytest.fixture
def catalogue(aws_env, db, context) -> dict[str, str]:
    return {
        "tart": seed(db, context, "alice", "food", "Strawberry tart", "A red strawberry tart with glazed berries."),
        "soup": seed(db, context, "alice", "food", "Pumpkin soup", "Orange pumpkin soup in a white bowl."),
        "beach": seed(db, context, "alice", "travel", "Beach at sunset", "Blue sea, sand and an orange sunset."),
        "bob_tart": seed(db, context, "bob", "food", "Strawberry tart", "Bob's strawberry tart with cream."),
    }


def test_ranking_by_cosine_similarity(catalogue, context) -> None:
    status, body = call_search("/search", context, q="strawberry tart", user_id="alice")
    assert status == 200 and body["model"] == "local-hash-v1"
    ids = [r["item_id"] for r in body["results"]]
    assert ids[0] == catalogue["tart"] and catalogue["bob_tart"] not in ids
    scores = [r["score"] for r in body["results"]]
    assert scores == sorted(scores, reverse=True) and scores[0] > scores[-1]
    first = body["results"][0]
    assert first["headline"] == "Strawberry tart" and first["category"] == "food"
    assert "X-Amz-Expires=300" in first["thumbnail_url"] and "thumbnails" in first["thumbnail_url"]


def test_filters_by_category_and_user(catalogue, context) -> None:
    _, body = call_search("/search", context, q="orange", user_id="alice", category="travel")
    assert [r["item_id"] for r in body["results"]] == [catalogue["beach"]]
    _, body = call_search("/search", context, q="strawberry tart", user_id="bob")
    assert [r["item_id"] for r in body["results"]] == [catalogue["bob_tart"]]


def test_every_read_names_its_user(catalogue, context) -> None:
    status, body = call_search("/search", context, q="strawberry tart")
    assert status == 400 and body == {"error": "user_id is required (the user this read is for)"}
    assert call_search(f"/items/{catalogue['tart']}", context)[0] == 400
    assert call_search(f"/items/{catalogue['tart']}", context, user_id="bob") == (404, {"error": "item not found"})


def test_cross_user_search_only_for_listed_principals(catalogue, context, monkeypatch) -> None:
    status, body = call_search("/search", context, q="strawberry tart", all_users="true")
    assert status == 403 and "principals listed in config" in body["error"]
    # The fixture's caller is arn:aws:iam::123456789012:user/search-client.
    monkeypatch.setenv(
        "CROSS_USER_PRINCIPALS", "arn:aws:iam::123456789012:user/other,arn:aws:iam::123456789012:user/search-client"
    )
    containers.reset()  # settings are read once per container: this stands for a redeploy
    status, body = call_search("/search", context, q="strawberry tart", all_users="true", limit="10")
    assert status == 200
    assert {r["item_id"] for r in body["results"][:2]} == {catalogue["tart"], catalogue["bob_tart"]}
    assert body["count"] == 4
    assert call_search("/search", context, q="tart", all_users="true", user_id="bob")[0] == 400
    assert call_search(f"/items/{catalogue['bob_tart']}", context, all_users="true")[0] == 200


@pytest.mark.parametrize(
    ("params", "message"),
    [
        ({}, "q is required"),
        ({"q": "x" * 501}, "q is required"),
        ({"q": "tart", "limit": "0"}, "limit"),
        ({"q": "tart", "limit": "abc"}, "limit"),
        ({"q": "tart", "category": "spaceships"}, "category must be one of"),
    ],
)
def test_invalid_queries_are_400_json(aws_env, db, context, params, message) -> None:
    status, body = call_search("/search", context, **params)
    assert status == 400 and message in body["error"]


def test_query_embedded_with_voyage_query_input_type(catalogue, db, context, fake_apis) -> None:
    put_parameter("VOYAGE_API_KEY", "pa-test-key")
    fake_apis.queue(EMBEDDINGS, voyage_embeddings([[1.0] + [0.0] * 1023]))
    status, body = call_search("/search", context, q="tart", user_id="alice")
    [(_, _, request)] = fake_apis.requests
    assert request["input_type"] == "query" and request["input"] == ["tart"]
    # Only vectors of the query's model are compared: the local ones are not mixed in.
    assert status == 200 and body["model"] == "voyage-3.5-lite" and body["results"] == []


def test_provider_throttling_is_503(aws_env, db, context, fake_apis) -> None:
    put_parameter("VOYAGE_API_KEY", "pa-test-key")
    fake_apis.queue(EMBEDDINGS, (429, {"detail": "rate limited"}, {"retry-after": "2"}))
    status, body = call_search("/search", context, q="tart", user_id="alice")
    assert status == 503 and body == {"error": "search is temporarily unavailable"}


def test_item_details(catalogue, context) -> None:
    status, body = call_search(f"/items/{catalogue['tart']}", context, user_id="alice")
    assert status == 200
    assert body["analysis"]["headline"] == "Strawberry tart" and body["analysis"]["version"] == 1
    assert body["thumbnail_url_expires_in"] == 300 and "X-Amz-Signature" in body["thumbnail_url"]
    assert call_search(f"/items/{catalogue['tart']}", context, user_id="bob")[0] == 404
    assert call_search(f"/items/{uuid.uuid4()}", context, user_id="alice") == (404, {"error": "item not found"})
    assert call_search("/items/not-a-uuid", context, user_id="alice")[0] == 404


def _clustered(n: int, seed: int) -> Any:
    """Unit vectors near a 32-d subspace of R^1024, like embeddings (low intrinsic dimension);
    the bench's generator at test scale."""
    import numpy as np

    rng = np.random.default_rng(seed)
    projection = np.random.default_rng(0).standard_normal((32, 1024), dtype=np.float32)
    vectors = rng.standard_normal((n, 32), dtype=np.float32) @ projection
    vectors += rng.normal(0, 0.1 * float(np.abs(vectors).mean()), vectors.shape).astype(np.float32)
    return vectors / np.linalg.norm(vectors, axis=1, keepdims=True)


# 8,000 rows: user "small" holds 1%, "mid" 20%, "big" the rest; 10% of rows are "food". Below about
# 5,000 rows the planner (rightly) answers a 10% filter exactly from the btree instead.
N_ROWS = 8000


def _bulk(db: Any) -> tuple[list[uuid.UUID], Any, list[str], list[str]]:
    vectors = _clustered(N_ROWS, 1)
    ids = [uuid.UUID(int=i + 1) for i in range(N_ROWS)]
    users = ["small" if i % 100 == 0 else "mid" if i % 5 == 1 else "big" for i in range(N_ROWS)]
    cats = ["food" if (i // 5) % 10 == 0 else "travel" for i in range(N_ROWS)]
    with db.transaction(), db.cursor() as cur:
        # Build the HNSW indexes once after the load (seconds) instead of row by row.
        hnsw = cur.execute(
            "SELECT indexname, indexdef FROM pg_indexes WHERE tablename = 'embeddings' AND indexdef LIKE '%USING hnsw%'"
        ).fetchall()
        for name, _ in hnsw:
            cur.execute(f'DROP INDEX "{name}"')
        with cur.copy("COPY items (item_id, user_id, bucket, original_key, status) FROM STDIN") as cp:
            for i, u in zip(ids, users, strict=True):
                cp.write_row((i, u, "b", str(i), "processed"))
        with cur.copy(
            "COPY embeddings (item_id, model, dimensions, embedding, source_sha256, analysis_version, user_id,"
            " category) FROM STDIN WITH (FORMAT BINARY)"
        ) as cp:
            cp.set_types(["uuid", "text", "int4", "vector", "text", "int4", "text", "text"])
            for row in zip(ids, vectors, users, cats, strict=True):
                cp.write_row((row[0], "m", 1024, row[1], "s", 1, row[2], row[3]))
        for _, definition in hnsw:
            cur.execute(definition)
    db.execute("ANALYZE embeddings")
    return ids, vectors, users, cats


def test_search_results_on_thousands_of_vectors(aws_env, db) -> None:
    """Through the real query on the real index: each stored vector's nearest neighbour is itself,
    filters and user scoping hold, and the top 10 match an exact ranking."""
    import numpy as np

    ids, vectors, users, cats = _bulk(db)
    for k in (0, 7, 1234, 2999):
        [first, *_] = queries.search(db, vectors[k].tolist(), "m", user_id=None, category=None, limit=5)
        assert first["item_id"] == ids[k] and first["score"] == pytest.approx(1.0, abs=1e-5)
    recalls = []
    for user_id, category in (
        (None, None),
        ("big", None),
        ("mid", None),
        (None, "food"),
        ("mid", "food"),
        ("small", None),
    ):
        keep = np.array([(user_id in (None, u)) and (category in (None, c)) for u, c in zip(users, cats, strict=True)])
        for seed in range(5):
            query = _clustered(1, 100 + seed)[0]
            rows = queries.search(db, query.tolist(), "m", user_id=user_id, category=category, limit=10)
            assert len(rows) == 10
            positions = [ids.index(r["item_id"]) for r in rows]
            assert all(keep[p] for p in positions), (user_id, category)
            assert [r["score"] for r in rows] == sorted((r["score"] for r in rows), reverse=True)
            subset = np.flatnonzero(keep)
            exact = {ids[j] for j in subset[np.argsort(-(vectors[subset] @ query))[:10]]}
            recalls.append(len(exact & {r["item_id"] for r in rows}) / 10)
    assert min(recalls) >= 0.8 and sum(recalls) / len(recalls) >= 0.95
    assert queries.search(db, vectors[0].tolist(), "other-model", user_id=None, category=None, limit=10) == []


def test_planner_serves_filters_from_the_code_indexes(aws_env, db) -> None:
    """EXPLAIN of exactly what search runs: a category filter walks that category's own graph (not
    the btree, not a sequential scan); a user with most rows is served by HNSW, a user with few
    exactly by the btree; no filter by the whole graph."""
    _, vectors, _, _ = _bulk(db)
    query = vectors[5].tolist()

    def plan(user_id: str | None, category: str | None) -> str:
        return queries.search_plan(db, query, "m", user_id=user_id, category=category, limit=10)

    assert "Index Scan using embeddings_code_hnsw_idx on embeddings" in plan(None, None)
    for user_id in (None, "big"):
        text = plan(user_id, "food")
        assert "Index Scan using embeddings_code_hnsw_food_idx on embeddings" in text, text
        assert "embeddings_user_category_idx" not in text and "Seq Scan on embeddings" not in text
    assert "Index Scan using embeddings_code_hnsw_idx on embeddings" in plan("big", None)
    assert "embeddings_user_category_idx" in plan("small", None)
    # The same plan after psycopg starts preparing the statement (its 6th execution): a generic
    # plan could not match a category's partial index; force_custom_plan keeps it custom.
    for _ in range(7):
        queries.search(db, query, "m", user_id="big", category="food", limit=10)
    with db.transaction():
        queries.configure_hnsw(db)
        assert db.execute("SHOW plan_cache_mode").fetchone()[0] == "force_custom_plan"


def test_iterative_scan_fills_the_limit_under_a_user_filter(aws_env, db, monkeypatch) -> None:
    """When HNSW serves a user filter, the iterative scan keeps walking the graph until enough
    candidates pass it, even with a beam narrower than the candidates wanted; without it the
    filter starves the result."""
    _, vectors, _, _ = _bulk(db)
    monkeypatch.setenv("HNSW_EF_SEARCH", "10")
    monkeypatch.setenv("SEARCH_CANDIDATES", "40")
    query = vectors[3].tolist()
    sql = (
        "SELECT item_id FROM embeddings WHERE model = 'm' AND user_id = 'mid'"
        " ORDER BY binary_quantize(embedding)::bit(1024) <~> binary_quantize(%s) LIMIT 40"
    )
    with db.transaction() as tx:
        # Whichever plan the planner would pick for this user, make it the HNSW one (rolled back).
        db.execute("DROP INDEX embeddings_user_category_idx")
        db.execute("SET LOCAL enable_seqscan = off")
        plan = queries.search_plan(db, query, "m", user_id="mid", category=None, limit=40)
        rows = queries.search(db, query, "m", user_id="mid", category=None, limit=40)
        db.execute("SET LOCAL hnsw.ef_search = 10")
        db.execute("SET LOCAL hnsw.iterative_scan = off")
        plain = db.execute(sql, (Vector(query),)).fetchall()
        raise psycopg.Rollback(tx)
    assert "Index Scan using embeddings_code_hnsw_idx on embeddings" in plan
    assert len(rows) == 40 and {r["user_id"] for r in rows} == {"mid"}
    assert len(plain) < 40


def test_search_settings_are_transaction_local(db) -> None:
    with db.transaction():
        queries.configure_hnsw(db)
        assert db.execute("SHOW hnsw.ef_search").fetchone()[0] == "300"
        assert db.execute("SHOW hnsw.iterative_scan").fetchone()[0] == "relaxed_order"
    # Nothing leaks to the next request on this connection.
    assert db.execute("SHOW hnsw.ef_search").fetchone()[0] == "40"
    assert db.execute("SHOW plan_cache_mode").fetchone()[0] == "auto"
    assert hash_embed("", 8) == [1.0] + [0.0] * 7  # empty text still yields a unit vector
