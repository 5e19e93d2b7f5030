"""Forwarding one public request to its agent and waiting for the answer: the forwarder's logic.

Every dependency (stores, the `@connections` sender, limits) comes in as `Deps`, built once per
container by the handler (`forward.py`) from its settings; tests and benchmarks can build their own.
The steps: name the tunnel, take an in-flight slot on the agent's connection (the per-tunnel cap),
post the request, poll the pending item until it finishes or the deadline passes, shape the answer.
"""

from __future__ import annotations

import base64
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

from aws_lambda_powertools import Logger, Metrics
from aws_lambda_powertools.metrics import MetricUnit

from lambdas.common.websocket import ConnectionGone
from lambdas.tunnel import protocol as p
from lambdas.tunnel.gateway import (
    LAMBDA_RESPONSE_LIMIT,
    Route,
    error_response,
    payload_size,
    request_headers,
    resolve,
    to_gateway_response,
)
from lambdas.tunnel.store import (
    COMPLETED,
    FAILED,
    PENDING,
    TIMEOUT,
    BodyStore,
    ConnectionMissing,
    ConnectionStore,
    PendingStore,
    TokenStore,
    expired,
)

# Powertools shares one logger per service and one metric set per namespace: these are the handler's.
logger = Logger()
metrics = Metrics()

# Presigned URLs for bodies in the bucket: long enough for one request's round trip.
BODY_URL_SECONDS = 60


@dataclass(frozen=True)
class Deps:
    connections: ConnectionStore
    pending: PendingStore
    tokens: TokenStore
    bodies: BodyStore
    post: Callable[[str, bytes], None]  # (connection id, message): raises ConnectionGone
    domain: str  # `{sub}.{domain}` names a tunnel; "" for path routing only
    max_inflight: int
    retry_after_seconds: int
    max_response_bytes: int


@dataclass(frozen=True)
class PollSchedule:
    """Sleep between strongly consistent reads: `fast` for the first `fast_for` seconds (most
    agents answer within a few hundred ms), then growing by `factor` up to `maximum`."""

    fast: float = 0.010
    fast_for: float = 0.300
    factor: float = 1.25
    maximum: float = 0.100

    def delays(self) -> Iterator[float]:
        waited, delay = 0.0, self.fast
        while True:
            yield delay
            waited += delay
            if waited >= self.fast_for:
                delay = min(delay * self.factor, self.maximum)


FIXED_100MS = PollSchedule(fast=0.1, fast_for=0.0, factor=1.0, maximum=0.1)


def wait_for_response(
    store: PendingStore,
    request_id: str,
    deadline: float,
    schedule: PollSchedule = PollSchedule(),
    sleep: Callable[[float], None] = time.sleep,
) -> dict[str, Any] | None:
    """The finished pending item, or None when `deadline` (time.monotonic) passes first."""
    for delay in schedule.delays():
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            return None
        sleep(min(delay, remaining))
        item = store.get(request_id)
        if item is None or item["status"] != PENDING:
            return item
    return None  # pragma: no cover - delays() never ends


def forward(event: dict[str, Any], deadline: float, deps: Deps) -> dict[str, Any]:
    """The HTTP API v2 response for one public request (`deadline` in time.monotonic)."""
    headers = event.get("headers") or {}
    route = resolve(headers.get("host", ""), event.get("rawPath", "/"), deps.domain)
    if route is None:
        return error_response(404, "no tunnel at this address: use https://{name}.{domain}/ or /t/{name}/")
    logger.append_keys(subdomain=route.subdomain)

    raw_body = event.get("body") or ""
    body = base64.b64decode(raw_body) if event.get("isBase64Encoded") else raw_body.encode()
    if len(body) > p.MAX_BODY_BYTES:
        return error_response(413, "request body larger than the tunnel's 5 MiB limit")

    connection_id = _take_slot(route, deps)
    if isinstance(connection_id, dict):
        return connection_id  # refused: unknown, offline or busy
    try:
        return _send_and_wait(event, route, body, connection_id, deadline, deps)
    finally:
        try:
            deps.connections.release(connection_id)
        except Exception:  # a leaked count ends with the connection (at most 2 hours)
            logger.exception("could not release the in-flight slot")


def _take_slot(route: Route, deps: Deps) -> str | dict[str, Any]:
    """The id of the connection serving the tunnel, with one in-flight slot taken on it; or the
    error response (404 unknown name, 503 agent offline, 429 every slot taken)."""
    owner = deps.tokens.owner(route.subdomain)
    connection_id = deps.connections.find(route.subdomain) if owner else None
    slot = None
    if connection_id is not None:
        try:
            slot = deps.connections.acquire(connection_id, deps.max_inflight)
        except ConnectionMissing:  # disconnected between the index read and now
            connection_id = None
        if connection_id is not None and slot is not None and (slot.get("tokenId") != owner or expired(slot)):
            # The connection's token no longer owns the name (revoked, or the claim moved on) or expired.
            deps.connections.release(connection_id)
            connection_id = None
    if connection_id is None:
        if owner is None:
            metrics.add_metric(name="UnknownTunnel", unit=MetricUnit.Count, value=1)
            return error_response(404, f"no tunnel is named {route.subdomain!r}")
        metrics.add_metric(name="AgentOffline", unit=MetricUnit.Count, value=1)
        return error_response(503, f"tunnel {route.subdomain!r} is offline: its agent is not connected")
    if slot is None:
        metrics.add_metric(name="TunnelBusy", unit=MetricUnit.Count, value=1)
        busy = error_response(
            429, f"tunnel {route.subdomain!r} has {deps.max_inflight} requests in flight; retry later"
        )
        busy["headers"]["retry-after"] = str(deps.retry_after_seconds)
        return busy
    return connection_id


def _request(event: dict[str, Any], route: Route, body: bytes, deadline: float, deps: Deps) -> p.HttpRequest:
    """The message for the agent: the request as the client sent it, with a presigned POST for a
    response too large for one WebSocket message, and the body in the bucket if it is one too."""
    request_id = uuid.uuid4().hex
    http = event.get("requestContext", {}).get("http", {})
    request = p.HttpRequest(
        request_id=request_id,
        method=http.get("method", "GET"),
        path=route.path,
        query=event.get("rawQueryString", ""),
        headers=request_headers(event, route),
        body=body,
        client_ip=http.get("sourceIp"),
        timeout_ms=max(0, int((deadline - time.monotonic()) * 1000)),
    )
    request.response_upload_url, request.response_upload_fields = deps.bodies.response_upload_form(
        request_id, expires=BODY_URL_SECONDS, max_bytes=deps.max_response_bytes
    )
    return request


def _send_and_wait(
    event: dict[str, Any], route: Route, body: bytes, connection_id: str, deadline: float, deps: Deps
) -> dict[str, Any]:
    request = _request(event, route, body, deadline, deps)
    request_id = request.request_id
    logger.append_keys(request_id=request_id, connection_id=connection_id)
    pending = deps.pending
    pending.put(request_id, connection_id, event.get("requestContext", {}).get("requestId", ""))
    if not p.fits_inline(request):
        request.body_url = deps.bodies.put_request_body(request_id, body, expires=BODY_URL_SECONDS)
        request.body = b""
    metrics.add_metric(name="RequestBytes", unit=MetricUnit.Bytes, value=len(body))

    try:
        deps.post(connection_id, p.encode(request).encode())
    except ConnectionGone:
        # The agent vanished without a $disconnect reaching us: forget the stale connection.
        deps.connections.delete(connection_id)
        pending.finish(request_id, FAILED, error="agent gone")
        metrics.add_metric(name="AgentErrors", unit=MetricUnit.Count, value=1)
        return error_response(502, "tunnel agent is not connected")

    item = wait_for_response(pending, request_id, deadline)
    if item is None:
        if pending.finish(request_id, TIMEOUT):
            metrics.add_metric(name="Timeouts", unit=MetricUnit.Count, value=1)
            logger.warning("agent did not answer in time")
            return error_response(504, "tunnel agent did not answer in time")
        item = pending.get(request_id)  # the answer landed between the last read and the timeout
        if item is None:
            return error_response(502, "tunnel request vanished")
    response = _stored_response(item)
    try:
        host = (event.get("headers") or {}).get("host", "")
        return _finished_response(request_id, item, response, request.method, route, host, deps)
    finally:
        in_bucket = request.body_url is not None or (response is not None and response.body_in_bucket)
        _cleanup(request_id, deps, large=in_bucket)


def _stored_response(item: dict[str, Any]) -> p.HttpResponse | None:
    if item["status"] != COMPLETED:
        return None
    response = p.decode(item["responseData"])
    if not isinstance(response, p.HttpResponse):
        raise p.ProtocolError("stored response is not an HttpResponse")
    return response


def _finished_response(
    request_id: str,
    item: dict[str, Any],
    response: p.HttpResponse | None,
    method: str,
    route: Route,
    host: str,
    deps: Deps,
) -> dict[str, Any]:
    if response is None:
        metrics.add_metric(name="AgentErrors", unit=MetricUnit.Count, value=1)
        return error_response(502, f"tunnel agent failed: {item.get('errorMessage', 'request failed')}")
    if response.body_in_bucket:
        limit = deps.max_response_bytes
        body = deps.bodies.get_response_body(request_id, limit)
        if body is None:
            metrics.add_metric(name="AgentErrors", unit=MetricUnit.Count, value=1)
            return error_response(502, f"tunnel response body missing or larger than {limit} bytes")
        response.body = body
    result = to_gateway_response(response, method, route.prefix, host)
    if payload_size(result["body"], result["isBase64Encoded"]) > LAMBDA_RESPONSE_LIMIT:
        # Lambda returns at most 6 MB of JSON: binary bodies above ~4.7 MB (4.49 MiB) cannot pass the gateway.
        return error_response(502, "tunnel response too large for the gateway (binary bodies up to ~4.7 MB)")
    metrics.add_metric(name="ResponseBytes", unit=MetricUnit.Bytes, value=len(response.body))
    return result


def _cleanup(request_id: str, deps: Deps, *, large: bool) -> None:
    # The response may hold private data: do not leave it for TTL's up-to-48-hour sweep.
    try:
        deps.pending.delete(request_id)
        if large:
            deps.bodies.delete(request_id)
    except Exception:  # cleanup must never turn a good answer into an error
        logger.exception("cleanup failed")
