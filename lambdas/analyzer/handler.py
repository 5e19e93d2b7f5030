"""EventBridge `ImageProcessed` -> analysis of the analysis copy -> `analyses` -> `AnalysisComplete`.

The item's current analysis is the one made from its *current* bytes (`items.analysis_version`,
matched by `items.image_sha256`), not its latest version: after an overwrite A -> B -> A the item
points at A's analysis again. An event whose bytes are no longer the item's (a newer overwrite is
on its way) is `superseded` and changes nothing.

Identical bytes are analyzed once: an analysis of the same analysis-copy bytes, prompt version,
provider and model (this item's, after A -> B -> A, or any other item's, the same user's or not)
is copied as this item's version instead of calling the model. Across users only the model's
output is shared (category, texts, details): it is what the model answers for these exact bytes,
which the uploader already has, so it reveals nothing about the other item, its key or its user,
and nothing links the copy to its source.

Idempotent: an analysis already made from the same image bytes, prompt version, provider and
model is reused (no model call) and AnalysisComplete is published again, which the embedder
treats as a no-op when its source text is unchanged. Throttling, 5xx and timeouts raise
(RetryableError) so Lambda retries and the on-failure queue keeps what still fails.
"""

from __future__ import annotations

import hashlib
from datetime import UTC, datetime
from typing import Any, Literal

from aws_lambda_powertools import Logger, Metrics
from aws_lambda_powertools.metrics import MetricUnit

from lambdas.analyzer import providers, store, tracing
from lambdas.analyzer.contract import Analysis, Analyzer, InvalidOutput, Refused
from lambdas.analyzer.schema import PROMPT_VERSION
from lambdas.collections import pg
from lambdas.collections.names import (
    ANALYSIS_COMPLETE,
    ANALYZER_SOURCE,
    ENV_ANALYSIS_DAILY_BUDGET,
    SCHEMA_VERSION,
)
from lambdas.collections.pipeline import RetryableError, publish
from lambdas.collections.settings import settings
from lambdas.common.aws import client
from lambdas.common.entry import entry
from lambdas.common.settings import MissingSetting, env_int
from lambdas.common.tracing import tracer

DEFAULT_DAILY_BUDGET = 100


def daily_budget() -> int:
    """Analyses charged per user per UTC day (model calls and copies of another user's analysis);
    past it, items are `deferred` (see lambdas/analyzer/deferred.py)."""
    budget = env_int(ENV_ANALYSIS_DAILY_BUDGET, DEFAULT_DAILY_BUDGET)
    if budget < 0:
        raise MissingSetting(f"{ENV_ANALYSIS_DAILY_BUDGET} must be 0 or more")
    return budget


logger = Logger()
metrics = Metrics()


@entry(logger, metrics, correlation_id_path="id")
def handler(event: dict[str, Any], context: Any) -> dict[str, Any]:
    detail = event["detail"]
    item_id, analysis_key = detail["item_id"], detail["analysis_key"]
    logger.append_keys(item_id=item_id, user_id=detail.get("user_id"))
    conn = pg.connection()
    state = store.item_state(conn, item_id)
    if state is None:
        logger.warning("item no longer exists; nothing to analyze")
        return {"status": "missing"}
    user_id, current_sha256 = state
    if detail.get("image_sha256") not in (None, current_sha256):
        logger.info("the object was overwritten since this event; the newer event analyzes it")
        return {"status": "superseded"}
    # Read from our own derived bucket only, whatever the event says.
    image = client("s3").get_object(Bucket=settings().derived_bucket(), Key=analysis_key)["Body"].read()
    image_sha256 = hashlib.sha256(image).hexdigest()
    if current_sha256 not in (None, image_sha256):
        # The processor is rewriting the copy for newer bytes; its own event follows.
        logger.info("analysis copy changed since this event; the newer event analyzes it")
        return {"status": "superseded"}
    analyzer = providers.analyzer()
    found = _reuse_or_charge(conn, analyzer, user_id, item_id, image_sha256)
    if found == "deferred":
        return {"status": "deferred"}
    if found is None:
        found = _analyze_and_store(conn, analyzer, image, item_id, image_sha256)
        if found is None:
            return {"status": "refused"}
    version, category = found
    if not store.set_current(conn, item_id, image_sha256, version):
        logger.info("the object was overwritten during analysis; the newer event analyzes it")
        return {"status": "superseded", "version": version}
    publish(
        ANALYZER_SOURCE,
        ANALYSIS_COMPLETE,
        {
            "item_id": item_id,
            "user_id": detail.get("user_id"),
            "analysis_version": version,
            "image_sha256": image_sha256,
            "category": category,
            "provider": analyzer.provider,
            "model": analyzer.model,
            "prompt_version": PROMPT_VERSION,
            "schema_version": SCHEMA_VERSION,
        },
    )
    return {"status": "analyzed", "version": version}


def _reuse_or_charge(
    conn: Any, analyzer: Analyzer, user_id: str, item_id: str, image_sha256: str
) -> tuple[int, str] | Literal["deferred"] | None:
    """The version and category of an analysis of these bytes that already exists (this item's,
    or copied from another item), `deferred` when the user's budget is spent, or None when the
    model must be asked (the call is then already charged)."""
    version = store.existing_version(conn, item_id, image_sha256, analyzer.provider, analyzer.model, PROMPT_VERSION)
    source = None
    if version is None:
        source = store.reusable(conn, user_id, image_sha256, analyzer.provider, analyzer.model, PROMPT_VERSION)
        # The user's budget is charged for a model call and for another user's analysis alike:
        # were the copy free, a user over budget could tell from `deferred` or not whether
        # someone else had uploaded these exact bytes. Reusing their own analyses is free.
        if (source is None or not source[2]) and not store.charge(conn, user_id, item_id, image_sha256, daily_budget()):
            store.defer(conn, item_id, image_sha256)
            logger.info("daily analysis budget spent; deferred", extra={"daily_budget": daily_budget()})
            metrics.add_metric(name="AnalysesDeferred", unit=MetricUnit.Count, value=1)
            return "deferred"
        if source is not None:
            version = store.copy_analysis(conn, item_id, source[0], source[1])
    if version is None:
        return None
    reused = "item" if source is None else "same_user" if source[2] else "other_user"
    logger.info("analysis of these bytes exists; reusing", extra={"version": version, "reused": reused})
    metrics.add_metric(name="AnalysesSkipped", unit=MetricUnit.Count, value=1)
    return version, store.category_of(conn, item_id, version)


def _analyze_and_store(
    conn: Any, analyzer: Analyzer, image: bytes, item_id: str, image_sha256: str
) -> tuple[int, str] | None:
    """Ask the model and store its analysis: its version and category, or None if it refused."""
    try:
        analysis = _analyze(analyzer, image, {"item_id": item_id, "image_sha256": image_sha256})
    except Refused:
        logger.warning("model refused the image; not retrying")
        metrics.add_metric(name="AnalysesFailed_refused", unit=MetricUnit.Count, value=1)
        return None
    version = store.insert_analysis(conn, item_id, image_sha256, analysis)
    category = analysis.data["category"]
    metrics.add_metric(name="Analyses", unit=MetricUnit.Count, value=1)
    metrics.add_metric(name="TokensUsed", unit=MetricUnit.Count, value=analysis.input_tokens + analysis.output_tokens)
    logger.info(
        "analysis stored",
        extra={
            "version": version,
            "category": category,
            "provider": analysis.provider,
            "input_tokens": analysis.input_tokens,
            "output_tokens": analysis.output_tokens,
        },
    )
    return version, category


@tracer.capture_method
def _analyze(analyzer: Analyzer, image: bytes, about: dict[str, str]) -> Analysis:
    inputs = {**about, "provider": analyzer.provider, "model": analyzer.model, "prompt_version": PROMPT_VERSION}
    start = datetime.now(UTC)
    try:
        analysis = analyzer.analyze(image)
    except Exception as exc:
        reasons: dict[type[Exception], str] = {
            RetryableError: "retryable",
            InvalidOutput: "invalid_output",
        }
        reason = reasons.get(type(exc))
        if reason:
            metrics.add_metric(name=f"AnalysesFailed_{reason}", unit=MetricUnit.Count, value=1)
        if analyzer.provider != "local":
            tracing.record_run(
                inputs=inputs, outputs=None, error=f"{type(exc).__name__}: {exc}", start=start, end=datetime.now(UTC)
            )
        raise
    if analyzer.provider != "local":
        usage = {"input_tokens": analysis.input_tokens, "output_tokens": analysis.output_tokens}
        tracing.record_run(
            inputs=inputs,
            outputs={"analysis": analysis.data, "usage": usage},
            error=None,
            start=start,
            end=datetime.now(UTC),
        )
    return analysis
