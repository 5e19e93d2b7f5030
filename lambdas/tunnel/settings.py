"""The tunnel handlers' configuration, read from the environment once per container."""

from __future__ import annotations

import os
from functools import cache
from urllib.parse import urlsplit

from lambdas.common.settings import env_int, require_env
from lambdas.tunnel import names
from lambdas.tunnel.protocol import MAX_BODY_BYTES, REQUEST_TIMEOUT_SECS
from lambdas.tunnel.store import BodyStore, ConnectionStore, PendingStore, TokenStore


@cache
def connections() -> ConnectionStore:
    return ConnectionStore(require_env(names.ENV_CONNECTIONS_TABLE))


@cache
def pending() -> PendingStore:
    return PendingStore(require_env(names.ENV_PENDING_TABLE))


@cache
def tokens() -> TokenStore:
    return TokenStore(require_env(names.ENV_TOKENS_TABLE))


@cache
def bodies() -> BodyStore:
    return BodyStore(require_env(names.ENV_BODY_BUCKET))


@cache
def websocket_endpoint() -> str:
    return require_env(names.ENV_WS_API_ENDPOINT)


@cache
def request_timeout_seconds() -> float:
    # Must stay under the HTTP API's 30 s integration limit; tests shorten it.
    timeout = env_int(names.ENV_REQUEST_TIMEOUT_MS, REQUEST_TIMEOUT_SECS * 1000) / 1000
    return min(timeout, 29.0)


@cache
def max_inflight() -> int:
    """Requests one tunnel (agent connection) may have in flight; more are answered 429."""
    return max(1, env_int(names.ENV_MAX_INFLIGHT, 20))


@cache
def max_response_bytes() -> int:
    """Largest response body an agent may upload (the presigned POST's size bound); never more
    than the protocol's limit. Tests lower it to see S3 refuse an upload."""
    return min(MAX_BODY_BYTES, max(1, env_int(names.ENV_MAX_RESPONSE_BYTES, MAX_BODY_BYTES)))


@cache
def retry_after_seconds() -> int:
    return max(1, env_int(names.ENV_BUSY_RETRY_AFTER, 1))


_LOOPBACK = {"127.0.0.1", "localhost", "::1"}


def _local_api() -> tuple[str, int] | None:
    """(scheme, port) when the HTTP API is served on this machine (the local runtime), else None.
    A deployed API's endpoint is never a loopback address."""
    parts = urlsplit(os.environ.get(names.ENV_PUBLIC_HTTP_URL, ""))
    if parts.hostname in _LOOPBACK:
        return parts.scheme or "http", parts.port or 80
    return None


def host_domain() -> str:
    """The domain under which `{sub}.{domain}` names a tunnel: the custom domain, `localhost` on the
    local runtime (browsers and curl resolve `*.localhost` to loopback), else "" (path routing)."""
    domain = os.environ.get(names.ENV_DOMAIN_NAME, "").strip()
    if domain:
        return domain
    return "localhost" if _local_api() else ""


def public_url(subdomain: str) -> str:
    """`https://{sub}.{DOMAIN_NAME}` with a custom domain, `http://{sub}.localhost:{port}` on the
    local runtime, else the HTTP API's `/t/{sub}` form (every tunnel on one browser origin)."""
    domain = os.environ.get(names.ENV_DOMAIN_NAME, "").strip()
    if domain:
        return f"https://{subdomain}.{domain}"
    local = _local_api()
    if local:
        return f"{local[0]}://{subdomain}.localhost:{local[1]}"
    return f"{require_env(names.ENV_PUBLIC_HTTP_URL).rstrip('/')}/t/{subdomain}"


def clear() -> None:
    """Forget cached settings (tests change the environment between cases)."""
    for fn in (
        connections, pending, tokens, bodies, websocket_endpoint, request_timeout_seconds, max_inflight,
        retry_after_seconds, max_response_bytes,
    ):  # fmt: skip
        fn.cache_clear()
