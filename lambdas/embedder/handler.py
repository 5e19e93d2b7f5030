"""EventBridge `AnalysisComplete` -> embedding of the item's current analysis text -> `embeddings`.

Idempotent: the row is keyed by (item, model) and skipped when the stored source-text hash is
the same. Throttling, 5xx and timeouts raise RetryableError so Lambda retries.
"""

from __future__ import annotations

from typing import Any

from aws_lambda_powertools import Logger, Metrics, Tracer
from aws_lambda_powertools.metrics import MetricUnit

from lambdas.common import embeddings, pg
from lambdas.common.collections import RetryableError
from lambdas.embedder import store
from lambdas.embedder.text import document_text, text_sha256

logger = Logger()
tracer = Tracer()
metrics = Metrics()


@logger.inject_lambda_context(correlation_id_path="id")
@metrics.log_metrics
@tracer.capture_lambda_handler
def handler(event: dict[str, Any], context: Any) -> dict[str, Any]:
    item_id = event["detail"]["item_id"]
    logger.append_keys(item_id=item_id)
    conn = pg.connection()
    analysis = store.latest_analysis(conn, item_id)
    if analysis is None:
        logger.warning("no analysis for item; nothing to embed")
        return {"status": "missing"}
    text = document_text(
        analysis["category"], analysis["subcategories"], analysis["headline"], analysis["summary"], analysis["raw"]
    )
    digest = text_sha256(text)
    embedder = embeddings.embedder()
    if store.stored_hash(conn, item_id, embedder.model) == digest:
        logger.info("embedding up to date", extra={"model": embedder.model})
        metrics.add_metric(name="EmbeddingsSkipped", unit=MetricUnit.Count, value=1)
        return {"status": "unchanged"}
    try:
        [vector] = embedder.embed([text], "document")
    except RetryableError:
        metrics.add_metric(name="EmbeddingsFailed_retryable", unit=MetricUnit.Count, value=1)
        raise
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
