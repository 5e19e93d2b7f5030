"""`$default`: messages from agents (responses, errors, Ready, Ping).

A response is stored on its pending request only while that request is still pending and only if
it was sent to this very connection: a late answer after a 504, or an agent guessing another
agent's request ids, changes nothing.
"""

from __future__ import annotations

from typing import Any

from aws_lambda_powertools import Logger, Metrics
from aws_lambda_powertools.metrics import MetricUnit
from aws_lambda_powertools.utilities.typing import LambdaContext

from lambdas.common.entry import entry
from lambdas.common.websocket import ConnectionGone, post_to_connection, route_response
from lambdas.tunnel import protocol as p
from lambdas.tunnel.settings import settings
from lambdas.tunnel.store import COMPLETED

logger = Logger()
metrics = Metrics()


def _send(connection_id: str, message: p.Message) -> None:
    try:
        post_to_connection(settings().websocket_endpoint(), connection_id, p.encode(message).encode())
    except ConnectionGone:
        logger.info("agent left before the reply")


def _store_response(connection_id: str, response: p.HttpResponse) -> None:
    stored = (
        settings()
        .pending()
        .finish(response.request_id, COMPLETED, response_data=p.encode(response), connection_id=connection_id)
    )
    logger.info(
        "response stored" if stored else "response dropped: request not pending on this connection",
        extra={"request_id": response.request_id, "status": response.status},
    )


def _on_ready(connection_id: str) -> None:
    item = settings().connections().mark_ready(connection_id)
    if item is None:
        _send(connection_id, p.Error(code="unknown_connection", message="connection is not registered"))
        return
    subdomain = item["publicSubdomain"]
    logger.info("agent ready", extra={"subdomain": subdomain})
    _send(connection_id, p.ConnectionEstablished(connection_id, subdomain, item["publicUrl"]))


@entry(logger, metrics, correlation_id_path="requestContext.requestId", clear_state=True)
def handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    connection_id = event["requestContext"]["connectionId"]
    logger.append_keys(connection_id=connection_id)
    metrics.add_metric(name="AgentMessages", unit=MetricUnit.Count, value=1)
    try:
        message = p.decode(event.get("body") or "")
    except p.ProtocolError as exc:
        logger.warning("bad message from agent", extra={"error": str(exc)})
        metrics.add_metric(name="AgentErrors", unit=MetricUnit.Count, value=1)
        _send(connection_id, p.Error(code="bad_message", message=str(exc)))
        return route_response(200)

    if isinstance(message, p.HttpResponse):
        _store_response(connection_id, message)
    elif isinstance(message, p.Error):
        metrics.add_metric(name="AgentErrors", unit=MetricUnit.Count, value=1)
        logger.warning("agent error", extra={"request_id": message.request_id, "code": message.code})
        if message.request_id:
            failure = p.HttpResponse(
                request_id=message.request_id,
                status=502,
                headers=[("content-type", "application/json")],
                body=p.json_error(f"tunnel agent error: {message.code}"),
            )
            _store_response(connection_id, failure)
    elif isinstance(message, p.Ready):
        _on_ready(connection_id)
    elif isinstance(message, p.Ping):
        _send(connection_id, p.Pong(timestamp=message.timestamp))
    else:
        logger.warning("unexpected message kind", extra={"kind": type(message).__name__})
    return route_response(200)
