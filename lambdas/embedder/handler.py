"""EventBridge `AnalysisComplete` -> embedding of the item's current analysis text -> `embeddings`.

The current analysis is the one of the item's current bytes (`items.analysis_version`). A text
already embedded by this model (`embedding_cache`, by text hash: the same item after
A -> B -> A, or another item with identical bytes) is not sent to the model again.
Idempotent: the row is keyed by (item, model) and skipped when it already holds this analysis
and text. Throttling, 5xx and timeouts raise RetryableError so Lambda retries.
"""

from __future__ import annotations

from typing import Any

from aws_lambda_powertools import Logger, Metrics
from aws_lambda_powertools.metrics import MetricUnit

from lambdas.collections import embeddings, pg
from lambdas.collections.pipeline import RetryableError
from lambdas.common.entry import entry
from lambdas.embedder import store
from lambdas.embedder.text import document_text, text_sha256

logger = Logger()
metrics = Metrics()


@entry(logger, metrics, correlation_id_path="id")
def handler(event: dict[str, Any], context: Any) -> dict[str, Any]:
    item_id = event["detail"]["item_id"]
    logger.append_keys(item_id=item_id)
    conn = pg.connection()
    analysis = store.current_analysis(conn, item_id)
    if analysis is None:
        logger.warning("no analysis for item; nothing to embed")
        return {"status": "missing"}
    text = document_text(
        analysis["category"], analysis["subcategories"], analysis["headline"], analysis["summary"], analysis["raw"]
    )
    digest = text_sha256(text)
    embedder = embeddings.embedder()
    if store.stored(conn, item_id, embedder.model) == (digest, analysis["version"]):
        logger.info("embedding up to date", extra={"model": embedder.model})
        metrics.add_metric(name="EmbeddingsSkipped", unit=MetricUnit.Count, value=1)
        return {"status": "unchanged"}
    vector = store.cached_vector(conn, embedder.model, digest)
    if vector is None:
        try:
            [vector] = embedder.embed([text], "document")
        except RetryableError:
            metrics.add_metric(name="EmbeddingsFailed_retryable", unit=MetricUnit.Count, value=1)
            raise
        store.cache_vector(conn, embedder.model, digest, vector)
    else:
        metrics.add_metric(name="EmbeddingsReused", unit=MetricUnit.Count, value=1)
    written = store.upsert_embedding(
        conn,
        item_id=item_id,
        model=embedder.model,
        vector=vector,
        source_sha256=digest,
        analysis_version=analysis["version"],
        user_id=analysis["user_id"],
        category=analysis["category"],
    )
    metrics.add_metric(name="Embeddings", unit=MetricUnit.Count, value=1)
    logger.info(
        "embedding stored",
        extra={
            "model": embedder.model,
            "dimensions": len(vector),
            "analysis_version": analysis["version"],
            "written": written,
        },
    )
    return {"status": "embedded", "model": embedder.model}
