"""EmbedderLambda: Voyage through the platform's client against a local server, and the local provider."""

from __future__ import annotations

import math
from typing import Any

import pytest
from collections_images import jpeg
from conftest import processed_event, put_parameter
from fake_apis import EMBEDDINGS, voyage_embeddings

from lambdas.analyzer import handler as analyzer
from lambdas.collections.embeddings import hash_embed
from lambdas.collections.pipeline import RetryableError
from lambdas.collections.voyage_http import VoyageRequestError
from lambdas.embedder import handler as embedder
from lambdas.embedder.store import current_analysis, upsert_embedding
from lambdas.embedder.text import document_text, text_sha256


def analysis_complete(
    aws_env: Any, context: Any, key: str = "u1/photo.jpg", color: tuple[int, int, int] = (230, 120, 10)
) -> dict[str, Any]:
    analyzer.handler(processed_event(aws_env, key, jpeg(color=color), context), context)
    [event] = [e for e in aws_env.events() if e["detail-type"] == "AnalysisComplete"]
    return event


def stored(db: Any) -> list[tuple[Any, ...]]:
    return db.execute(
        "SELECT model, dimensions, embedding, source_sha256, analysis_version, user_id, category FROM embeddings"
    ).fetchall()


def test_local_provider_stores_a_normalized_hashed_vector(aws_env, db, context) -> None:
    event = analysis_complete(aws_env, context)
    assert embedder.handler(event, context)["status"] == "embedded"
    [(model, dims, vector, sha, version, user_id, category)] = stored(db)
    assert (model, dims, version, user_id, category) == ("local-hash-v1", 1024, 1, "u1", "other")
    values = vector.to_list()
    assert math.isclose(math.sqrt(sum(v * v for v in values)), 1.0, rel_tol=1e-5)
    a = current_analysis(db, event["detail"]["item_id"])
    assert a is not None
    text = document_text(a["category"], a["subcategories"], a["headline"], a["summary"], a["raw"])
    assert sha == text_sha256(text) and "orange" in text
    assert values == pytest.approx(hash_embed(text, 1024), abs=1e-6)


def test_voyage_document_embedding(aws_env, db, context, fake_apis) -> None:
    event = analysis_complete(aws_env, context)
    put_parameter("VOYAGE_API_KEY", "pa-test-key")
    unit = [0.0] * 1024
    unit[7] = 1.0
    fake_apis.queue(EMBEDDINGS, voyage_embeddings([unit]))
    embedder.handler(event, context)
    [(_path, headers, body)] = fake_apis.requests
    assert headers["authorization"] == "Bearer pa-test-key"
    assert (body["model"], body["input_type"], body["output_dimension"]) == ("voyage-3.5-lite", "document", 1024)
    assert "orange" in body["input"][0]
    [(model, dims, vector, *_)] = stored(db)
    assert (model, dims) == ("voyage-3.5-lite", 1024) and vector.to_list()[7] == 1.0


def test_duplicate_event_does_not_embed_again(aws_env, db, context, fake_apis) -> None:
    event = analysis_complete(aws_env, context)
    put_parameter("VOYAGE_API_KEY", "pa-test-key")
    fake_apis.queue(EMBEDDINGS, voyage_embeddings([[1.0] + [0.0] * 1023]))
    embedder.handler(event, context)
    assert embedder.handler(event, context)["status"] == "unchanged"
    assert len(fake_apis.requests) == 1 and len(stored(db)) == 1


@pytest.mark.parametrize(("status", "headers"), [(429, {"retry-after": "3"}), (500, {}), (503, {})])
def test_retryable_voyage_errors_raise(aws_env, db, context, fake_apis, status, headers) -> None:
    event = analysis_complete(aws_env, context)
    put_parameter("VOYAGE_API_KEY", "pa-test-key")
    fake_apis.queue(EMBEDDINGS, (status, {"detail": "slow down"}, headers))
    with pytest.raises(RetryableError):
        embedder.handler(event, context)
    assert stored(db) == [] and len(fake_apis.requests) == 1


def test_bad_request_is_not_retryable(aws_env, db, context, fake_apis) -> None:
    event = analysis_complete(aws_env, context)
    put_parameter("VOYAGE_API_KEY", "pa-test-key")
    fake_apis.queue(EMBEDDINGS, (400, {"detail": "bad input"}, {}))
    with pytest.raises(VoyageRequestError):
        embedder.handler(event, context)
    assert stored(db) == []


def test_analysis_the_item_no_longer_points_at_never_overwrites(aws_env, db, context) -> None:
    event = analysis_complete(aws_env, context)
    embedder.handler(event, context)
    item_id = event["detail"]["item_id"]
    before = stored(db)
    wrote = upsert_embedding(
        db,
        item_id=item_id,
        model="local-hash-v1",
        vector=[1.0] + [0.0] * 1023,
        source_sha256="x",
        analysis_version=2,  # not the item's current analysis (version 1)
        user_id="u1",
        category="other",
    )
    assert wrote is False
    assert stored(db) == before
