"""HTTP API `$default` route: forward any public request to its agent and wait for the answer.

This handler reads the raw v2 event instead of using the resolver: it answers every path and
method, and must keep the raw path and query string byte for byte. Errors the tunnel itself
produces are still JSON `{"error": ...}`. The logic is `forwarding.forward`; routing and response
shapes are in `gateway`.
"""

from __future__ import annotations

import time
from functools import partial
from typing import Any

from aws_lambda_powertools import Logger, Metrics
from aws_lambda_powertools.metrics import MetricUnit
from aws_lambda_powertools.utilities.typing import LambdaContext

from lambdas.common.entry import entry
from lambdas.common.websocket import post_to_connection
from lambdas.tunnel.forwarding import FIXED_100MS, Deps, PollSchedule, forward, wait_for_response
from lambdas.tunnel.gateway import error_response
from lambdas.tunnel.settings import settings

# The polling schedule stays importable from here for scripts/bench/bench_tunnel.py.
__all__ = ["FIXED_100MS", "PollSchedule", "handler", "wait_for_response"]

logger = Logger()
metrics = Metrics()


def _deps() -> Deps:
    s = settings()
    return Deps(
        connections=s.connections(),
        pending=s.pending(),
        tokens=s.tokens(),
        bodies=s.bodies(),
        post=partial(post_to_connection, s.websocket_endpoint()),
        domain=s.host_domain(),
        max_inflight=s.max_inflight,
        retry_after_seconds=s.retry_after_seconds,
        max_response_bytes=s.max_response_bytes,
    )


def _deadline(context: LambdaContext) -> float:
    budget = settings().request_timeout_seconds
    remaining_ms = getattr(context, "get_remaining_time_in_millis", lambda: 30_000)()
    return time.monotonic() + max(0.0, min(budget, remaining_ms / 1000 - 1.0))


@entry(logger, metrics, correlation_id_path="requestContext.requestId", clear_state=True)
def handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    started = time.monotonic()
    metrics.add_metric(name="Requests", unit=MetricUnit.Count, value=1)
    try:
        result = forward(event, _deadline(context), _deps())
    except Exception:
        logger.exception("forwarding failed")
        result = error_response(500, "Internal Server Error")
    logger.info(
        "forwarded",
        extra={
            "method": event.get("requestContext", {}).get("http", {}).get("method"),
            "status": result["statusCode"],
            "ms": round((time.monotonic() - started) * 1000),
        },
    )
    return result
