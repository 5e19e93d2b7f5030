"""One entry decorator for every handler: Powertools' logging context, metrics and the tracer,
always in the same order (the logger outermost, so everything below logs with the request's
context and correlation id; metrics flushed once per invocation, also when the handler raises)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from aws_lambda_powertools import Logger, Metrics

from lambdas.common.tracing import tracer

Handler = Callable[..., Any]  # what Powertools' decorators return; tests call it with a stand-in context


def entry(
    logger: Logger,
    metrics: Metrics | None = None,
    *,
    correlation_id_path: str | None = None,
    clear_state: bool = False,
) -> Callable[[Handler], Handler]:
    def wrap(handler: Handler) -> Handler:
        wrapped = tracer.capture_lambda_handler(handler)
        if metrics is not None:
            wrapped = metrics.log_metrics(wrapped)
        result: Handler = logger.inject_lambda_context(
            wrapped, correlation_id_path=correlation_id_path, clear_state=clear_state
        )
        return result

    return wrap
