"""HTTP API `$default` route: forward any public request to its agent and wait for the answer.

The tunnel is named by the Host header (`{sub}.{DOMAIN_NAME}`) or, with no custom domain, by the
path (`/t/{sub}/...`, prefix stripped). This handler reads the raw v2 event instead of using the
resolver: it answers every path and method, and must keep the raw path and query string byte for
byte. Errors the tunnel itself produces are still JSON `{"error": ...}`.
"""

from __future__ import annotations

import base64
import json
import re
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

from aws_lambda_powertools import Logger, Metrics
from aws_lambda_powertools.metrics import MetricUnit
from aws_lambda_powertools.utilities.typing import LambdaContext

from lambdas.common.tracing import tracer
from lambdas.common.websocket import ConnectionGone, post_to_connection
from lambdas.tunnel import protocol as p
from lambdas.tunnel import settings
from lambdas.tunnel.store import COMPLETED, FAILED, PENDING, TIMEOUT, ConnectionMissing, PendingStore, expired

logger = Logger()
metrics = Metrics()

_PATH_ROUTE = re.compile(r"^/t/([^/]+)(/.*)?$")
# Lambda's synchronous response payload limit is 6 MB (of JSON, so of base64 for binary bodies).
_LAMBDA_RESPONSE_LIMIT = 6 * 1024 * 1024 - 16 * 1024


@dataclass(frozen=True)
class Route:
    subdomain: str
    path: str
    prefix: str  # "/t/{sub}" for the path form, "" for the host form


def resolve(host: str, raw_path: str, domain: str) -> Route | None:
    hostname = host.split(":")[0].lower().rstrip(".")
    if domain and hostname.endswith("." + domain.lower()):
        sub = hostname[: -len(domain) - 1]
        if sub and "." not in sub:
            return Route(sub, raw_path or "/", "")
    match = _PATH_ROUTE.match(raw_path or "")
    if match:
        return Route(match.group(1).lower(), match.group(2) or "/", f"/t/{match.group(1)}")
    return None


@dataclass(frozen=True)
class PollSchedule:
    """Sleep between strongly consistent reads: `fast` for the first `fast_for` seconds (most
    agents answer within a few hundred ms), then growing by `factor` up to `maximum`."""

    fast: float = 0.010
    fast_for: float = 0.300
    factor: float = 1.25
    maximum: float = 0.100

    def delays(self) -> Any:
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


def _error(status: int, message: str) -> dict[str, Any]:
    return {
        "statusCode": status,
        "headers": {"content-type": "application/json", "cache-control": "no-store"},
        "body": json.dumps({"error": message}),
        "isBase64Encoded": False,
    }


def _request_headers(event: dict[str, Any], route: Route) -> p.Headers:
    headers: p.Headers = list((event.get("headers") or {}).items())
    # Payload format 2.0 moves cookies out of the headers; the app must see them as one header.
    if event.get("cookies"):
        headers.append(("cookie", "; ".join(event["cookies"])))
    if route.prefix:
        headers.append(("x-forwarded-prefix", route.prefix))
    return headers


def _payload_body(body: bytes) -> tuple[str, bool]:
    """The body as Lambda returns it: text when it is valid UTF-8 (the gateway sends it back
    byte for byte, and it costs a third less of Lambda's 6 MB than base64), else base64."""
    try:
        return body.decode("utf-8"), False
    except UnicodeDecodeError:
        return base64.b64encode(body).decode("ascii"), True


def _payload_size(body: str, encoded: bool) -> int:
    # What the runtime serializes: JSON with non-ASCII escaped (up to 6 bytes per character).
    return len(body) if encoded else len(json.dumps(body))


def scoped_location(value: str, prefix: str, host: str) -> str:
    """A redirect target kept inside a path tunnel: an absolute path (`/login`), or an absolute
    URL on the public host the app was given (`https://HOST/login`), gets the tunnel's prefix."""
    if value.startswith("/") and not value.startswith("//"):
        return value if _under(value, prefix) else prefix + value
    try:
        parts = urlsplit(value)
    except ValueError:
        return value
    if parts.netloc and host and parts.netloc.lower() == host.lower() and parts.scheme in ("http", "https", ""):
        path = parts.path or "/"
        if not _under(path, prefix):
            return parts._replace(path=prefix + path).geturl()
    return value


def _under(path: str, prefix: str) -> bool:
    return path == prefix or path.startswith(prefix + "/")


def scoped_cookie(value: str, prefix: str) -> str:
    """A Set-Cookie kept to a path tunnel: no `Domain` (host-only), `Path` under the prefix
    (`Path=/` becomes `Path=/t/name`; without a Path the browser's default is already under it)."""
    parts = value.split(";")
    out = [parts[0]]
    for attribute in parts[1:]:
        name, _, attr_value = attribute.strip().partition("=")
        key = name.strip().lower()
        if key == "domain":
            continue
        if key == "path":
            path = attr_value.strip()
            path = prefix if path in ("", "/") or not path.startswith("/") else prefix + path
            out.append(f" Path={path}")
            continue
        out.append(attribute)
    return ";".join(out)


def to_gateway_response(
    response: p.HttpResponse, method: str = "GET", prefix: str = "", host: str = ""
) -> dict[str, Any]:
    """HTTP API v2 response: repeated headers joined with commas, every Set-Cookie kept apart.
    For a path tunnel (`prefix` "/t/name"), redirects and cookies are kept inside the prefix."""
    headers: dict[str, str] = {}
    cookies: list[str] = []
    for name, value in p.strip_hop_by_hop(response.headers):
        key = name.lower()
        if prefix and key == "location":
            value = scoped_location(value, prefix, host)
        if key == "set-cookie":
            cookies.append(scoped_cookie(value, prefix) if prefix else value)
        elif key != "content-length" or method == "HEAD":  # the gateway sets it for the body it sends
            headers[key] = f"{headers[key]}, {value}" if key in headers else value
    body, encoded = _payload_body(response.body)
    out: dict[str, Any] = {
        "statusCode": response.status,
        "headers": headers,
        "body": body,
        "isBase64Encoded": encoded,
    }
    if cookies:
        out["cookies"] = cookies
    return out


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
    method: str = "GET",
    route: Route | None = None,
    host: str = "",
) -> dict[str, Any]:
    if response is None:
        metrics.add_metric(name="AgentErrors", unit=MetricUnit.Count, value=1)
        return _error(502, f"tunnel agent failed: {item.get('errorMessage', 'request failed')}")
    if response.body_in_bucket:
        limit = settings.max_response_bytes()
        body = settings.bodies().get_response_body(request_id, limit)
        if body is None:
            metrics.add_metric(name="AgentErrors", unit=MetricUnit.Count, value=1)
            return _error(502, f"tunnel response body missing or larger than {limit} bytes")
        response.body = body
    result = to_gateway_response(response, method, route.prefix if route else "", host)
    if _payload_size(result["body"], result["isBase64Encoded"]) > _LAMBDA_RESPONSE_LIMIT:
        # Lambda returns at most 6 MB of JSON: binary bodies above ~4.7 MB (4.49 MiB) cannot pass the gateway.
        return _error(502, "tunnel response too large for the gateway (binary bodies up to ~4.7 MB)")
    metrics.add_metric(name="ResponseBytes", unit=MetricUnit.Bytes, value=len(response.body))
    return result


def _deadline(context: LambdaContext) -> float:
    budget = settings.request_timeout_seconds()
    remaining_ms = getattr(context, "get_remaining_time_in_millis", lambda: 30_000)()
    return time.monotonic() + max(0.0, min(budget, remaining_ms / 1000 - 1.0))


def forward(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    deadline = _deadline(context)
    domain = _domain()
    headers = event.get("headers") or {}
    route = resolve(headers.get("host", ""), event.get("rawPath", "/"), domain)
    if route is None:
        return _error(404, "no tunnel at this address: use https://{name}.{domain}/ or /t/{name}/")
    logger.append_keys(subdomain=route.subdomain)

    raw_body = event.get("body") or ""
    body = base64.b64decode(raw_body) if event.get("isBase64Encoded") else raw_body.encode()
    if len(body) > p.MAX_BODY_BYTES:
        return _error(413, "request body larger than the tunnel's 5 MiB limit")

    connections = settings.connections()
    owner = settings.tokens().owner(route.subdomain)
    connection_id = connections.find(route.subdomain) if owner else None
    slot = None
    if connection_id is not None:
        try:
            slot = connections.acquire(connection_id, settings.max_inflight())
        except ConnectionMissing:  # disconnected between the index read and now
            connection_id = None
        if connection_id is not None and slot is not None and (slot.get("tokenId") != owner or expired(slot)):
            # The connection's token no longer owns the name (revoked, or the claim moved on) or expired.
            connections.release(connection_id)
            connection_id = None
    if connection_id is None:
        if owner is None:
            metrics.add_metric(name="UnknownTunnel", unit=MetricUnit.Count, value=1)
            return _error(404, f"no tunnel is named {route.subdomain!r}")
        metrics.add_metric(name="AgentOffline", unit=MetricUnit.Count, value=1)
        return _error(503, f"tunnel {route.subdomain!r} is offline: its agent is not connected")
    if slot is None:
        metrics.add_metric(name="TunnelBusy", unit=MetricUnit.Count, value=1)
        busy = _error(429, f"tunnel {route.subdomain!r} has {settings.max_inflight()} requests in flight; retry later")
        busy["headers"]["retry-after"] = str(settings.retry_after_seconds())
        return busy
    try:
        return _send_and_wait(event, route, body, connection_id, deadline)
    finally:
        try:
            connections.release(connection_id)
        except Exception:  # a leaked count ends with the connection (at most 2 hours)
            logger.exception("could not release the in-flight slot")


def _send_and_wait(
    event: dict[str, Any], route: Route, body: bytes, connection_id: str, deadline: float
) -> dict[str, Any]:
    request_id = uuid.uuid4().hex
    logger.append_keys(request_id=request_id, connection_id=connection_id)
    http = event.get("requestContext", {}).get("http", {})
    request = p.HttpRequest(
        request_id=request_id,
        method=http.get("method", "GET"),
        path=route.path,
        query=event.get("rawQueryString", ""),
        headers=_request_headers(event, route),
        body=body,
        client_ip=http.get("sourceIp"),
        timeout_ms=max(0, int((deadline - time.monotonic()) * 1000)),
    )
    request.response_upload_url, request.response_upload_fields = settings.bodies().response_upload_form(
        request_id, expires=60, max_bytes=settings.max_response_bytes()
    )
    pending = settings.pending()
    pending.put(request_id, connection_id, event.get("requestContext", {}).get("requestId", ""))
    if not p.fits_inline(request):
        request.body_url = settings.bodies().put_request_body(request_id, body, expires=60)
        request.body = b""
    metrics.add_metric(name="RequestBytes", unit=MetricUnit.Bytes, value=len(body))

    try:
        post_to_connection(settings.websocket_endpoint(), connection_id, p.encode(request).encode())
    except ConnectionGone:
        # The agent vanished without a $disconnect reaching us: forget the stale connection.
        settings.connections().delete(connection_id)
        pending.finish(request_id, FAILED, error="agent gone")
        metrics.add_metric(name="AgentErrors", unit=MetricUnit.Count, value=1)
        return _error(502, "tunnel agent is not connected")

    item = wait_for_response(pending, request_id, deadline)
    if item is None:
        if pending.finish(request_id, TIMEOUT):
            metrics.add_metric(name="Timeouts", unit=MetricUnit.Count, value=1)
            logger.warning("agent did not answer in time")
            return _error(504, "tunnel agent did not answer in time")
        item = pending.get(request_id)  # the answer landed between the last read and the timeout
        if item is None:
            return _error(502, "tunnel request vanished")
    response = _stored_response(item)
    try:
        host = (event.get("headers") or {}).get("host", "")
        return _finished_response(request_id, item, response, request.method, route, host)
    finally:
        in_bucket = request.body_url is not None or (response is not None and response.body_in_bucket)
        _cleanup(pending, request_id, large=in_bucket)


def _cleanup(pending: PendingStore, request_id: str, *, large: bool) -> None:
    # The response may hold private data: do not leave it for TTL's up-to-48-hour sweep.
    try:
        pending.delete(request_id)
        if large:
            settings.bodies().delete(request_id)
    except Exception:  # cleanup must never turn a good answer into an error
        logger.exception("cleanup failed")


def _domain() -> str:
    return settings.host_domain()


@logger.inject_lambda_context(correlation_id_path="requestContext.requestId", clear_state=True)
@metrics.log_metrics
@tracer.capture_lambda_handler
def handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    started = time.monotonic()
    metrics.add_metric(name="Requests", unit=MetricUnit.Count, value=1)
    try:
        result = forward(event, context)
    except Exception:
        logger.exception("forwarding failed")
        result = _error(500, "Internal Server Error")
    logger.info(
        "forwarded",
        extra={
            "method": event.get("requestContext", {}).get("http", {}).get("method"),
            "status": result["statusCode"],
            "ms": round((time.monotonic() - started) * 1000),
        },
    )
    return result
