"""What is stored describes the object's current bytes, whatever its history: processor ->
analyzer (real Anthropic SDK) -> embedder (real Voyage SDK) against the local stand-in, counting
the model calls the stand-in received, on real PostgreSQL."""

from __future__ import annotations

from typing import Any

import pytest
from collections_images import jpeg
from conftest import call_search, processed_event, put_parameter
from fake_apis import EMBEDDINGS, MESSAGES, VALID_ANALYSIS, tool_use, voyage_embeddings

from lambdas.analyzer import handler as analyzer
from lambdas.collections.embeddings import hash_embed
from lambdas.embedder import handler as embedder

TART = VALID_ANALYSIS
BEACH = {
    **VALID_ANALYSIS,
    "category": "travel",
    "subcategories": ["beach"],
    "headline": "Sandy beach under a blue sky",
    "summary": "Waves roll onto an empty sandy beach under a clear blue sky.",
    "image_details": {"objects": ["sea", "sand"], "colors": ["blue"], "setting": "coast", "text": "", "mood": "calm"},
}
RED, BLUE = (220, 20, 20), (20, 40, 220)


def voyage(body: Any) -> tuple[int, Any, dict[str, str]]:
    """Embeds what it is sent (feature hashing), so search ranks by the texts really stored."""
    return voyage_embeddings([hash_embed(text, 1024) for text in body["input"]])


@pytest.fixture
def models(aws_env: Any, fake_apis: Any) -> Any:
    put_parameter("ANTHROPIC_API_KEY", "sk-ant-test-key")
    put_parameter("VOYAGE_API_KEY", "pa-test-key")
    return fake_apis


def analysis_calls(apis: Any) -> int:
    return len(apis.bodies(MESSAGES))


def document_embeddings(apis: Any) -> int:
    return sum(1 for b in apis.bodies(EMBEDDINGS) if b["input_type"] == "document")


def upload(aws_env: Any, context: Any, key: str, body: bytes) -> tuple[dict[str, Any], dict[str, Any]]:
    """The whole pipeline for one upload: processor, analyzer, embedder for what it published."""
    event = processed_event(aws_env, key, body, context)
    result = analyzer.handler(event, context)
    for done in [e for e in aws_env.events() if e["detail-type"] == "AnalysisComplete"]:
        embedder.handler(done, context)
    return event, result


def snapshot(db: Any, item_id: str) -> tuple[Any, ...]:
    return (
        db.execute("SELECT * FROM items WHERE item_id = %s", (item_id,)).fetchall(),
        db.execute("SELECT item_id, version, created_at FROM analyses ORDER BY 1, 2").fetchall(),
        db.execute("SELECT item_id, model, source_sha256, analysis_version, updated_at FROM embeddings").fetchall(),
    )


def test_overwrite_a_b_a_describes_a_again_without_calling_a_model_twice(aws_env, models, db, context) -> None:
    a, b = jpeg(color=RED), jpeg(color=BLUE)
    models.queue(MESSAGES, tool_use(TART), tool_use(BEACH))
    models.queue(EMBEDDINGS, *[voyage] * 6)  # two documents, then the search queries
    key = "alice/photo.jpg"
    event_a, _ = upload(aws_env, context, key, a)
    item_id = event_a["detail"]["item_id"]
    upload(aws_env, context, key, b)
    assert call_search(f"/items/{item_id}", context, user_id="alice")[1]["analysis"]["headline"] == BEACH["headline"]

    event_a2, result = upload(aws_env, context, key, a)  # A's exact bytes again
    assert event_a2["detail"]["image_sha256"] == event_a["detail"]["image_sha256"]
    assert result == {"status": "analyzed", "version": 1}  # A's own analysis, not B's (version 2)
    assert analysis_calls(models) == 2 and document_embeddings(models) == 2  # nothing asked twice
    status, item = call_search(f"/items/{item_id}", context, user_id="alice")
    assert status == 200 and item["status"] == "processed"
    assert (item["analysis"]["version"], item["analysis"]["headline"]) == (1, TART["headline"])
    [(version, category)] = db.execute("SELECT analysis_version, category FROM embeddings").fetchall()
    assert (version, category) == (1, "food")
    # Search finds it by A's content and no longer by B's.
    _, found = call_search("/search", context, q="strawberry tart", user_id="alice")
    assert [(r["item_id"], r["headline"]) for r in found["results"]] == [(item_id, TART["headline"])]
    _, beach = call_search("/search", context, q="sandy beach blue sky", user_id="alice")
    assert all(r["headline"] != BEACH["headline"] for r in beach["results"])

    # A second delivery of the same ImageProcessed and AnalysisComplete changes nothing.
    before = snapshot(db, item_id)
    assert analyzer.handler(event_a2, context)["status"] == "analyzed"
    [again] = [e for e in aws_env.events() if e["detail-type"] == "AnalysisComplete"]
    assert embedder.handler(again, context)["status"] == "unchanged"
    assert snapshot(db, item_id) == before
    assert analysis_calls(models) == 2 and document_embeddings(models) == 2


def test_new_bytes_clear_what_described_the_old_ones(aws_env, models, db, context) -> None:
    models.queue(MESSAGES, tool_use(TART))
    models.queue(EMBEDDINGS, voyage)
    event_a, _ = upload(aws_env, context, "alice/photo.jpg", jpeg(color=RED))
    item_id = event_a["detail"]["item_id"]
    assert db.execute("SELECT count(*) FROM embeddings").fetchone()[0] == 1

    event_b = processed_event(aws_env, "alice/photo.jpg", jpeg(color=BLUE), context)  # not analyzed yet
    _, item = call_search(f"/items/{item_id}", context, user_id="alice")
    assert item["analysis"] is None  # A's analysis does not describe B
    assert db.execute("SELECT count(*) FROM embeddings").fetchone()[0] == 0  # nor does A's vector
    # A's event delivered late (after B was processed) is superseded: no model call, no change.
    before = snapshot(db, item_id)
    assert analyzer.handler(event_a, context) == {"status": "superseded"}
    assert snapshot(db, item_id) == before and analysis_calls(models) == 1
    assert event_b["detail"]["image_sha256"] != event_a["detail"]["image_sha256"]


def test_identical_bytes_under_other_keys_reuse_the_analysis(aws_env, models, db, context) -> None:
    photo = jpeg(color=RED)
    models.queue(MESSAGES, tool_use(TART, input_tokens=1600, output_tokens=210))
    models.queue(EMBEDDINGS, voyage, voyage)  # one document, one search query
    first, _ = upload(aws_env, context, "alice/tart.jpg", photo)
    again, _ = upload(aws_env, context, "alice/copy of tart.jpg", photo)  # the same user
    other, _ = upload(aws_env, context, "bob/tart.jpg", photo)  # another user
    assert analysis_calls(models) == 1 and document_embeddings(models) == 1  # one call for the bytes
    rows = db.execute(
        "SELECT i.user_id, a.headline, a.input_tokens, a.output_tokens FROM items i"
        " JOIN analyses a ON a.item_id = i.item_id AND a.version = i.analysis_version ORDER BY i.created_at"
    ).fetchall()
    assert rows == [
        ("alice", TART["headline"], 1600, 210),
        ("alice", TART["headline"], 0, 0),  # copied: no tokens spent
        ("bob", TART["headline"], 0, 0),
    ]
    for event, user in ((again, "alice"), (other, "bob")):
        status, item = call_search(f"/items/{event['detail']['item_id']}", context, user_id=user)
        assert status == 200 and item["analysis"]["details"] == TART
        assert item["original_key"].startswith(f"{user}/")  # nothing of the source item
    _, found = call_search("/search", context, q="strawberry tart", user_id="bob")
    assert [r["item_id"] for r in found["results"]] == [other["detail"]["item_id"]]
    assert first["detail"]["image_sha256"] == other["detail"]["image_sha256"]


def test_daily_budget_defers_then_the_requeue_analyzes(aws_env, models, db, context, monkeypatch) -> None:
    from lambdas.analyzer import deferred

    monkeypatch.setenv("ANALYSIS_DAILY_BUDGET", "1")
    red, blue = jpeg(color=RED), jpeg(color=BLUE)
    models.queue(MESSAGES, tool_use(TART), tool_use(BEACH))
    models.queue(EMBEDDINGS, voyage, voyage)
    upload(aws_env, context, "alice/tart.jpg", red)  # alice's one analysis today
    blue_event, result = upload(aws_env, context, "alice/beach.jpg", blue)
    assert result == {"status": "deferred"} and analysis_calls(models) == 1
    blue_id = blue_event["detail"]["item_id"]
    status, item = call_search(f"/items/{blue_id}", context, user_id="alice")
    assert (status, item["status"], item["analysis"]) == (200, "deferred", None)
    before = snapshot(db, blue_id)  # a redelivery changes nothing and calls nothing
    assert analyzer.handler(blue_event, context) == {"status": "deferred"}
    assert snapshot(db, blue_id) == before and aws_env.events() == []
    # Reusing her own analysis of the same bytes is free; bob's copy of alice's is charged to
    # bob (else being deferred or not would tell him someone had these bytes).
    assert upload(aws_env, context, "alice/tart again.jpg", red)[1]["status"] == "analyzed"
    assert upload(aws_env, context, "bob/tart.jpg", red)[1]["status"] == "analyzed"
    bob_blue, result = upload(aws_env, context, "bob/beach.jpg", blue)
    assert result == {"status": "deferred"} and analysis_calls(models) == 1

    # A requeue on the same day defers them again, without a model call.
    assert set(deferred.requeue(db, 100)) == {blue_id, bob_blue["detail"]["item_id"]}
    for event in aws_env.events():
        assert analyzer.handler(event, context) == {"status": "deferred"}
    # The next UTC day (charges dated yesterday), the scheduled requeue analyzes them.
    db.execute("UPDATE analysis_charges SET day = day - 1")
    result = deferred.handler({"version": "0", "detail-type": "Scheduled Event", "source": "aws.events"}, context)
    assert result["requeued"] == 2 and result["item_ids"][0] == blue_id  # oldest first
    for event in aws_env.events():
        assert analyzer.handler(event, context)["status"] == "analyzed"
    assert analysis_calls(models) == 2  # blue analyzed once, for alice; bob's is a copy
    for item_id, user in ((blue_id, "alice"), (bob_blue["detail"]["item_id"], "bob")):
        _, item = call_search(f"/items/{item_id}", context, user_id=user)
        assert (item["status"], item["analysis"]["headline"]) == ("processed", BEACH["headline"])
