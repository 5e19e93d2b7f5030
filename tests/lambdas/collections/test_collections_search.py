"""Search API and its queries on real PostgreSQL + pgvector: ranking, filters, iterative scan."""

from __future__ import annotations

import json
import random
import uuid
from typing import Any
from urllib.parse import urlencode

import psycopg
import pytest
from conftest import load_event, put_parameter
from fake_apis import EMBEDDINGS, voyage_embeddings
from pgvector import Vector

from lambdas.common.embeddings import hash_embed
from lambdas.embedder import handler as embedder
from lambdas.search import handler as search_api
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


def get(path: str, context: Any, **params: str) -> tuple[int, Any]:
    template = "item_get.json" if path.startswith("/items/") else "search_get.json"
    event = load_event(template)
    event["rawPath"] = event["requestContext"]["http"]["path"] = path
    event["rawQueryString"] = urlencode(params)
    event["queryStringParameters"] = params or None
    if path.startswith("/items/"):
        event["pathParameters"] = {"item_id": path.rsplit("/", 1)[1]}
    response = search_api.handler(event, context)
    return response["statusCode"], json.loads(response["body"])


def test_ranking_by_cosine_similarity(catalogue, context) -> None:
    status, body = get("/search", context, q="strawberry tart", user_id="alice")
    assert status == 200 and body["model"] == "local-hash-v1"
    ids = [r["item_id"] for r in body["results"]]
    assert ids[0] == catalogue["tart"] and catalogue["bob_tart"] not in ids
    scores = [r["score"] for r in body["results"]]
    assert scores == sorted(scores, reverse=True) and scores[0] > scores[-1]
    first = body["results"][0]
    assert first["headline"] == "Strawberry tart" and first["category"] == "food"
    assert "X-Amz-Expires=300" in first["thumbnail_url"] and "thumbnails" in first["thumbnail_url"]


def test_filters_by_category_and_user(catalogue, context) -> None:
    _, body = get("/search", context, q="orange", user_id="alice", category="travel")
    assert [r["item_id"] for r in body["results"]] == [catalogue["beach"]]
    _, body = get("/search", context, q="strawberry tart", user_id="bob")
    assert [r["item_id"] for r in body["results"]] == [catalogue["bob_tart"]]


def test_every_read_names_its_user(catalogue, context) -> None:
    status, body = get("/search", context, q="strawberry tart")
    assert status == 400 and body == {"error": "user_id is required (the user this read is for)"}
    assert get(f"/items/{catalogue['tart']}", context)[0] == 400
    assert get(f"/items/{catalogue['tart']}", context, user_id="bob") == (404, {"error": "item not found"})


def test_cross_user_search_only_for_listed_principals(catalogue, context, monkeypatch) -> None:
    status, body = get("/search", context, q="strawberry tart", all_users="true")
    assert status == 403 and "principals listed in config" in body["error"]
    # The fixture's caller is arn:aws:iam::123456789012:user/search-client.
    monkeypatch.setenv(
        "CROSS_USER_PRINCIPALS", "arn:aws:iam::123456789012:user/other,arn:aws:iam::123456789012:user/search-client"
    )
    status, body = get("/search", context, q="strawberry tart", all_users="true", limit="10")
    assert status == 200
    assert {r["item_id"] for r in body["results"][:2]} == {catalogue["tart"], catalogue["bob_tart"]}
    assert body["count"] == 4
    assert get("/search", context, q="tart", all_users="true", user_id="bob")[0] == 400
    assert get(f"/items/{catalogue['bob_tart']}", context, all_users="true")[0] == 200


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
    status, body = get("/search", context, **params)
    assert status == 400 and message in body["error"]


def test_query_embedded_with_voyage_query_input_type(catalogue, db, context, fake_apis) -> None:
    put_parameter("VOYAGE_API_KEY", "pa-test-key")
    fake_apis.queue(EMBEDDINGS, voyage_embeddings([[1.0] + [0.0] * 1023]))
    status, body = get("/search", context, q="tart", user_id="alice")
    [(_, _, request)] = fake_apis.requests
    assert request["input_type"] == "query" and request["input"] == ["tart"]
    # Only vectors of the query's model are compared: the local ones are not mixed in.
    assert status == 200 and body["model"] == "voyage-3.5-lite" and body["results"] == []


def test_provider_throttling_is_503(aws_env, db, context, fake_apis) -> None:
    put_parameter("VOYAGE_API_KEY", "pa-test-key")
    fake_apis.queue(EMBEDDINGS, (429, {"detail": "rate limited"}, {"retry-after": "2"}))
    status, body = get("/search", context, q="tart", user_id="alice")
    assert status == 503 and body == {"error": "search is temporarily unavailable"}


def test_item_details(catalogue, context) -> None:
    status, body = get(f"/items/{catalogue['tart']}", context, user_id="alice")
    assert status == 200
    assert body["analysis"]["headline"] == "Strawberry tart" and body["analysis"]["version"] == 1
    assert body["thumbnail_url_expires_in"] == 300 and "X-Amz-Signature" in body["thumbnail_url"]
    assert get(f"/items/{catalogue['tart']}", context, user_id="bob")[0] == 404
    assert get(f"/items/{uuid.uuid4()}", context, user_id="alice") == (404, {"error": "item not found"})
    assert get("/items/not-a-uuid", context, user_id="alice")[0] == 404


def _bulk(db: Any, n: int, match_every: int) -> None:
    """n random unit-ish vectors for user `u`, model `m`; every match_every-th is category food."""
    import numpy as np

    rng = np.random.default_rng(7)
    ids = [uuid.UUID(int=int(x)) for x in rng.integers(1, 2**62, n)]
    vectors = rng.standard_normal((n, 1024), dtype=np.float32)
    with db.transaction():
        with db.cursor().copy("COPY items (item_id, user_id, bucket, original_key, status) FROM STDIN") as cp:
            for i in ids:
                cp.write_row((i, "u", "b", str(i), "processed"))
        with db.cursor() as cur:
            cur.executemany(
                "INSERT INTO embeddings (item_id, model, dimensions, embedding, source_sha256,"
                " analysis_version, user_id, category) VALUES (%s, 'm', 1024, %s, 's', 1, 'u', %s)",
                [
                    (i, Vector(v), "food" if k % match_every == 0 else "other")
                    for k, (i, v) in enumerate(zip(ids, vectors, strict=True))
                ],
            )
    db.execute("ANALYZE embeddings")


def _query(seed: int) -> list[float]:
    return [random.Random(seed).gauss(0, 1) for _ in range(1024)]


def test_iterative_scan_fills_the_limit_under_a_selective_filter(aws_env, db, monkeypatch) -> None:
    _bulk(db, 600, match_every=30)  # 20 rows match the filter
    monkeypatch.setenv("HNSW_EF_SEARCH", "10")
    query = Vector(_query(1))
    sql = "SELECT item_id FROM embeddings WHERE model = 'm' AND category = 'food' ORDER BY embedding <=> %s LIMIT 15"
    with db.transaction() as tx:
        # With a btree on the filter columns the planner answers this exactly; drop it inside
        # this transaction (rolled back) to exercise the HNSW plan that large tables get.
        db.execute("DROP INDEX embeddings_user_category_idx")
        for setting in ("enable_seqscan", "enable_bitmapscan", "enable_sort"):
            db.execute(f"SET LOCAL {setting} = off")  # small table: make the planner pick HNSW
        rows = queries.search(db, query.to_list(), "m", user_id="u", category="food", limit=15)
        plan = "\n".join(r[0] for r in db.execute("EXPLAIN " + sql, (query,)).fetchall())
        db.execute("SET LOCAL hnsw.ef_search = 10")
        db.execute("SET LOCAL hnsw.iterative_scan = off")
        plain = db.execute(sql, (query,)).fetchall()
        raise psycopg.Rollback(tx)
    assert "embeddings_hnsw_cosine_idx" in plan
    assert len(rows) == 15 and {r["category"] for r in rows} == {"food"}
    assert len(plain) < 15  # without iterative scan the filter starves the result


def test_search_matches_exact_ranking_on_random_vectors(aws_env, db) -> None:
    _bulk(db, 400, match_every=1)
    query = _query(2)
    rows = queries.search(db, query, "m", user_id=None, category=None, limit=10)
    with db.transaction():
        db.execute("SET LOCAL enable_indexscan = off")
        exact = db.execute(
            "SELECT item_id FROM embeddings ORDER BY embedding <=> %s LIMIT 10", (Vector(query),)
        ).fetchall()
    assert len({r["item_id"] for r in rows} & {e[0] for e in exact}) >= 9
    assert hash_embed("", 8) == [1.0] + [0.0] * 7  # empty text still yields a unit vector


@pytest.mark.parametrize(
    ("filtered", "expected"),
    [(False, "400"), (True, "800")],
)
def test_filtered_searches_use_a_wider_hnsw_beam(db, filtered: bool, expected: str) -> None:
    with db.transaction():
        queries.configure_hnsw(db, filtered=filtered)
        assert db.execute("SHOW hnsw.ef_search").fetchone()[0] == expected
        assert db.execute("SHOW hnsw.iterative_scan").fetchone()[0] == "relaxed_order"
    # Transaction-local: nothing leaks to the next request on this connection.
    assert db.execute("SHOW hnsw.ef_search").fetchone()[0] == "40"
