"""API Gateway WebSocket APIs: a route's answer, and delivery to connections through the
`@connections` management API."""

from __future__ import annotations

import json
from typing import Any

from lambdas.common.aws import client
from lambdas.common.responses import JSON, error_body, proxy_response


def route_response(status: int, error: str | None = None) -> dict[str, Any]:
    """What a route's function returns to API Gateway: the status (for `$connect`, whether the
    handshake succeeds) and, for an error, the JSON `{"error": "..."}` every API here answers with."""
    if error is None:
        return {"statusCode": status}
    return proxy_response(status, error_body(error), {"Content-Type": JSON})


class ConnectionGone(Exception):
    """The connection no longer exists (API Gateway answered 410 GoneException)."""

    def __init__(self, connection_id: str) -> None:
        super().__init__(f"connection {connection_id} is gone")
        self.connection_id = connection_id


def management_endpoint(endpoint: str) -> str:
    """`WS_API_ENDPOINT`-style values are `{api-id}.execute-api.{region}.amazonaws.com/{stage}`;
    a value that already has a scheme (the local runtime's `http://127.0.0.1:PORT/stage`) is kept."""
    return endpoint if "://" in endpoint else f"https://{endpoint}"


def post_to_connection(endpoint: str, connection_id: str, payload: dict[str, Any] | bytes) -> None:
    """Send one message; raises ConnectionGone if the peer is gone, other errors propagate."""
    api = client("apigatewaymanagementapi", management_endpoint(endpoint))
    data = payload if isinstance(payload, bytes) else json.dumps(payload, separators=(",", ":")).encode()
    try:
        api.post_to_connection(ConnectionId=connection_id, Data=data)
    except api.exceptions.GoneException:
        raise ConnectionGone(connection_id) from None
