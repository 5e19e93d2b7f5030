"""`$connect`: authenticate the agent's token, claim its subdomain, register the connection.

The token comes in the `Authorization: Bearer` header (what the agent sends; query strings end up in
access logs) or, for clients that cannot set headers, a `token` query parameter. The agent may ask
for a subdomain (`X-Tunnel-Subdomain` header or `subdomain` parameter); the first token to claim a
name owns it. Any non-2xx answer makes API Gateway refuse the WebSocket upgrade.
"""

from __future__ import annotations

from typing import Any

from aws_lambda_powertools import Logger, Metrics
from aws_lambda_powertools.metrics import MetricUnit
from aws_lambda_powertools.utilities.typing import LambdaContext

from lambdas.common.aws import client
from lambdas.common.entry import entry
from lambdas.common.websocket import ConnectionGone, management_endpoint, post_to_connection, route_response
from lambdas.tunnel import protocol as p
from lambdas.tunnel.events import header, query_param
from lambdas.tunnel.settings import settings
from lambdas.tunnel.store import MAX_NAMES, NameLimit, SubdomainTaken, TokenRevoked, expired
from lambdas.tunnel.tokens import parse_token, random_subdomain, secret_matches, valid_subdomain

logger = Logger()
metrics = Metrics()


def _token(event: dict[str, Any]) -> str | None:
    auth = header(event, "authorization") or ""
    if auth.lower().startswith("bearer "):
        return auth[7:].strip()
    return header(event, "x-tunnel-token") or query_param(event, "token")


def _claim(token_id: str, requested: str | None, token: dict[str, Any]) -> str:
    store = settings().tokens()
    if requested:
        store.claim(requested, token_id)
        return requested
    if token.get("randomSubdomain"):  # a token's random name is its own for good: the list stays bounded
        store.claim(token["randomSubdomain"], token_id)
        return str(token["randomSubdomain"])
    for _ in range(3):  # 36^11 names: a collision is already unlikely, three in a row is not worth handling
        name = random_subdomain()
        try:
            store.claim(name, token_id, random=True)
            return name
        except SubdomainTaken:
            continue
    raise SubdomainTaken("random")


def _alive(connection_id: str) -> bool:
    api = client("apigatewaymanagementapi", management_endpoint(settings().websocket_endpoint()))
    try:
        api.get_connection(ConnectionId=connection_id)
    except api.exceptions.GoneException:
        return False
    return True


def _take_over(subdomain: str, token_id: str, event: dict[str, Any]) -> dict[str, Any] | None:
    """One agent per name: None if this connection may serve `subdomain`, else the refusal.

    The agent's own rotation (a fresh connection before the 2-hour limit) names the connection it
    replaces; `X-Tunnel-Replace: true` takes the name from another live agent, which is told and
    closed; a connection whose agent is gone without a `$disconnect` is forgotten."""
    connections = settings().connections()
    current = connections.find(subdomain)
    if current is None or current == header(event, "x-tunnel-rotate"):
        return None
    if not _alive(current):
        connections.delete(current)
        return None
    if (header(event, "x-tunnel-replace") or query_param(event, "replace") or "").lower() not in ("1", "true"):
        logger.info("connection refused: name already served", extra={"subdomain": subdomain})
        return route_response(
            423, f"tunnel {subdomain!r} is already served by another agent; use --replace to take it over"
        )
    try:
        message = p.Error(code="replaced", message=f"another agent took over {subdomain!r}")
        post_to_connection(settings().websocket_endpoint(), current, p.encode(message).encode())
        api = client("apigatewaymanagementapi", management_endpoint(settings().websocket_endpoint()))
        api.delete_connection(ConnectionId=current)
    except (ConnectionGone, client("apigatewaymanagementapi").exceptions.GoneException):
        pass
    connections.delete(current)
    logger.info("agent replaced", extra={"subdomain": subdomain, "replaced": current, "token_id": token_id})
    return None


@entry(logger, metrics, correlation_id_path="requestContext.requestId", clear_state=True)
def handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    connection_id = event["requestContext"]["connectionId"]
    logger.append_keys(connection_id=connection_id)
    metrics.add_metric(name="ConnectAttempts", unit=MetricUnit.Count, value=1)

    parsed = parse_token(_token(event) or "")
    token = settings().tokens().get(parsed[0]) if parsed else None
    if not parsed or not token or not secret_matches(parsed[1], token["secretHash"]):
        # Never log the token itself; the id is public and says which token failed.
        logger.warning("connection refused: bad token", extra={"token_id": parsed[0] if parsed else None})
        metrics.add_metric(name="AuthFailures", unit=MetricUnit.Count, value=1)
        return route_response(401, "invalid or missing tunnel token")
    token_id = parsed[0]
    logger.append_keys(token_id=token_id)
    if expired(token):
        logger.warning("connection refused: token expired")
        metrics.add_metric(name="AuthFailures", unit=MetricUnit.Count, value=1)
        return route_response(401, "tunnel token expired")

    requested = (header(event, "x-tunnel-subdomain") or query_param(event, "subdomain") or "").lower()
    if requested and not valid_subdomain(requested):
        return route_response(400, "subdomain must be 3-63 characters of a-z, 0-9 and inner hyphens")
    try:
        subdomain = _claim(token_id, requested or None, token)
    except SubdomainTaken:
        logger.info("connection refused: subdomain taken", extra={"subdomain": requested})
        return route_response(409, f"subdomain {requested!r} belongs to another token")
    except NameLimit:
        return route_response(422, f"this token already holds {MAX_NAMES} names; reuse one or revoke the token")
    except TokenRevoked:
        return route_response(401, "invalid or missing tunnel token")
    refused = _take_over(subdomain, token_id, event)
    if refused is not None:
        return refused

    public_url = settings().public_url(subdomain)
    settings().connections().put(connection_id, subdomain, public_url, token_id, token.get("expiresAt"))
    metrics.add_metric(name="AgentConnections", unit=MetricUnit.Count, value=1)
    logger.info("agent connected", extra={"subdomain": subdomain})
    return route_response(200)
