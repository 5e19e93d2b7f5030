"""REQUEST authorizer of the Functions HTTP API (payload 2.0, simple responses).

Identity source `$request.header.Authorization` (`Bearer {key_id}.{secret}`). API Gateway caches
the answer per header value for five minutes, so the answer must not depend on the route: it only
says whose key this is; the API handler compares the key's org with the path's. A revoked key can
therefore keep working for up to the cache's five minutes.
"""

from __future__ import annotations

from typing import Any

from aws_lambda_powertools import Logger, Metrics
from aws_lambda_powertools.metrics import MetricUnit
from aws_lambda_powertools.utilities.typing import LambdaContext

from lambdas.common.entry import entry
from lambdas.functions.keys import KeyStore
from lambdas.functions.settings import settings

logger = Logger()
metrics = Metrics()

DENY: dict[str, Any] = {"isAuthorized": False}


def _header(event: dict[str, Any]) -> str:
    for source in event.get("identitySource") or []:
        if source:
            return str(source)
    headers = event.get("headers") or {}
    return str(headers.get("authorization") or "")


def authorize(event: dict[str, Any]) -> dict[str, Any]:
    key = KeyStore(settings().table).verify(_header(event))
    if key is None:
        metrics.add_metric(name="KeyRefused", unit=MetricUnit.Count, value=1)
        logger.info("key refused")  # never the header: it may hold a valid key's secret
        return DENY
    logger.info("key accepted", extra={"key_id": key.key_id, "org": key.org, "role": key.role})
    return {
        "isAuthorized": True,
        "context": {"org": key.org, "role": key.role, "key_id": key.key_id, "function": key.function or ""},
    }


@entry(logger, metrics, correlation_id_path="requestContext.requestId")
def handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    return authorize(event)
