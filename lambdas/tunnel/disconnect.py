"""`$disconnect`: forget the connection and fail its in-flight requests at once.

Without the second step a forwarder waiting on a dead agent would only give up at its deadline;
marking the requests failed lets it answer 502 immediately. The pending table's `connection-index`
GSI finds them without a Scan.
"""

from __future__ import annotations

from typing import Any

from aws_lambda_powertools import Logger, Metrics
from aws_lambda_powertools.metrics import MetricUnit
from aws_lambda_powertools.utilities.typing import LambdaContext

from lambdas.common.entry import entry
from lambdas.common.websocket import route_response
from lambdas.tunnel.settings import settings
from lambdas.tunnel.store import FAILED

logger = Logger()
metrics = Metrics()


def fail_requests_of(connection_id: str, reason: str) -> int:
    store = settings().pending()
    return sum(store.finish(rid, FAILED, error=reason) for rid in store.for_connection(connection_id))


@entry(logger, metrics, correlation_id_path="requestContext.requestId", clear_state=True)
def handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    connection_id = event["requestContext"]["connectionId"]
    logger.append_keys(connection_id=connection_id)
    old = settings().connections().delete(connection_id)
    failed = fail_requests_of(connection_id, "agent disconnected")
    metrics.add_metric(name="AgentDisconnects", unit=MetricUnit.Count, value=1)
    if failed:
        metrics.add_metric(name="AgentErrors", unit=MetricUnit.Count, value=failed)
    logger.info(
        "agent disconnected",
        extra={
            "subdomain": (old or {}).get("publicSubdomain") or (old or {}).get("claimedSubdomain"),
            "failed_requests": failed,
            "reason": event["requestContext"].get("disconnectReason"),
        },
    )
    return route_response(200)
