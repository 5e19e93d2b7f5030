"""One entry decorator for every handler: Powertools' logging context, metrics and the tracer,
always in the same order (the logger outermost, so everything below logs with the request's
context and correlation id; metrics flushed once per invocation, also when the handler raises)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, TypeVar, cast

from aws_lambda_powertools import Logger, Metrics

from lambdas.common.tracing import tracer

F = TypeVar("F", bound=Callable[..., Any])


def entry(
    logger: Logger,
    metrics: Metrics | None = None,
    *,
    correlation_id_path: str | None = None,
    clear_state: bool = False,
) -> Callable[[F], F]:
    def wrap(handler: F) -> F:
        wrapped: Callable[..., Any] = tracer.capture_lambda_handler(handler)
        if metrics is not None:
            wrapped = metrics.log_metrics(wrapped)
        return cast(
            F, logger.inject_lambda_context(wrapped, correlation_id_path=correlation_id_path, clear_state=clear_state)
        )

    return wrap
