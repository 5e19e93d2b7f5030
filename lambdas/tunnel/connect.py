"""`$connect`: authenticate the agent's token, claim its subdomain, register the connection.

The token comes in the `Authorization: Bearer` header (what the agent sends; query strings end up in
access logs) or, for clients that cannot set headers, a `token` query parameter. The agent may ask
for a subdomain (`X-Tunnel-Subdomain` header or `subdomain` parameter); the first token to claim a
name owns it. Any non-2xx answer makes API Gateway refuse the WebSocket upgrade.
"""

from __future__ import annotations

from typing import Any

from aws_lambda_powertools import Logger, Metrics, Tracer
from aws_lambda_powertools.metrics import MetricUnit
from aws_lambda_powertools.utilities.typing import LambdaContext

from lambdas.tunnel import settings
from lambdas.tunnel.events import header, query_param, reply
from lambdas.tunnel.store import SubdomainTaken, TokenRevoked
from lambdas.tunnel.tokens import parse_token, random_subdomain, secret_matches, valid_subdomain

logger = Logger()
tracer = Tracer()
metrics = Metrics()


def _token(event: dict[str, Any]) -> str | None:
    auth = header(event, "authorization") or ""
    if auth.lower().startswith("bearer "):
        return auth[7:].strip()
    return header(event, "x-tunnel-token") or query_param(event, "token")


def _claim(token_id: str, requested: str | None) -> str:
    store = settings.tokens()
    if requested:
        store.claim(requested, token_id)
        return requested
    for _ in range(3):  # 36^11 names: a collision is already unlikely, three in a row is not worth handling
        name = random_subdomain()
        try:
            store.claim(name, token_id)
            return name
        except SubdomainTaken:
            continue
    raise SubdomainTaken("random")


@logger.inject_lambda_context(correlation_id_path="requestContext.requestId", clear_state=True)
@metrics.log_metrics
@tracer.capture_lambda_handler
def handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    connection_id = event["requestContext"]["connectionId"]
    logger.append_keys(connection_id=connection_id)
    metrics.add_metric(name="ConnectAttempts", unit=MetricUnit.Count, value=1)

    parsed = parse_token(_token(event) or "")
    token = settings.tokens().get(parsed[0]) if parsed else None
    if not parsed or not token or not secret_matches(parsed[1], token["secretHash"]):
        # Never log the token itself; the id is public and says which token failed.
        logger.warning("connection refused: bad token", extra={"token_id": parsed[0] if parsed else None})
        metrics.add_metric(name="AuthFailures", unit=MetricUnit.Count, value=1)
        return reply(401, "invalid or missing tunnel token")
    token_id = parsed[0]
    logger.append_keys(token_id=token_id)

    requested = (header(event, "x-tunnel-subdomain") or query_param(event, "subdomain") or "").lower()
    if requested and not valid_subdomain(requested):
        return reply(400, "subdomain must be 3-63 characters of a-z, 0-9 and inner hyphens")
    try:
        subdomain = _claim(token_id, requested or None)
    except SubdomainTaken:
        logger.info("connection refused: subdomain taken", extra={"subdomain": requested})
        return reply(409, f"subdomain {requested!r} belongs to another token")
    except TokenRevoked:
        return reply(401, "invalid or missing tunnel token")

    public_url = settings.public_url(subdomain)
    settings.connections().put(connection_id, subdomain, public_url, token_id)
    metrics.add_metric(name="AgentConnections", unit=MetricUnit.Count, value=1)
    logger.info("agent connected", extra={"subdomain": subdomain})
    return reply(200)
