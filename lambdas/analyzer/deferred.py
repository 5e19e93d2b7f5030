"""DeferredAnalysesLambda: requeue items deferred by the daily analysis budget.

Invoked by a scheduled rule just after 00:00 UTC (when every user's budget starts afresh) and by
`scripts/collections_deferred.py` (an operator, or the local runtime, which runs no schedules).
For each deferred item, oldest first, it publishes the item's `ImageProcessed` again; the
analyzer then analyzes it within the user's new budget or defers it again, so requeueing is
safe to repeat. Event: `{"limit": N}` optional (default 1000).
"""

from __future__ import annotations

from typing import Any

from aws_lambda_powertools import Logger, Metrics
from aws_lambda_powertools.metrics import MetricUnit

from lambdas.analyzer import store
from lambdas.collections import pg
from lambdas.collections.names import IMAGE_PROCESSED, PROCESSOR_SOURCE, SCHEMA_VERSION
from lambdas.collections.pipeline import publish
from lambdas.collections.settings import settings
from lambdas.common.entry import entry

logger = Logger()
metrics = Metrics()
DEFAULT_LIMIT = 1000


def requeue(conn: Any, limit: int) -> list[str]:
    derived_bucket = settings().derived_bucket()
    requeued = []
    for item in store.deferred_items(conn, limit):
        publish(
            PROCESSOR_SOURCE,
            IMAGE_PROCESSED,
            {**item, "derived_bucket": derived_bucket, "schema_version": SCHEMA_VERSION},
        )
        requeued.append(item["item_id"])
    return requeued


@entry(logger, metrics)
def handler(event: dict[str, Any], context: Any) -> dict[str, Any]:
    limit = event.get("limit") if isinstance(event, dict) else None
    if not isinstance(limit, int) or isinstance(limit, bool) or not 0 < limit <= 10_000:
        limit = DEFAULT_LIMIT
    requeued = requeue(pg.connection(), limit)
    metrics.add_metric(name="DeferredRequeued", unit=MetricUnit.Count, value=len(requeued))
    logger.info("deferred analyses requeued", extra={"count": len(requeued)})
    return {"requeued": len(requeued), "item_ids": requeued}
