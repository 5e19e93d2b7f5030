"""The tunnel handlers' configuration: read from the environment once per container.

The four functions get different variables, so a value a function was not given is "" and asking
for what needs it (a store, the endpoint) raises MissingSetting naming the variable, like
`require_env`. Integers are checked when read: a malformed one fails the first call.
"""

from __future__ import annotations

from dataclasses import dataclass
from urllib.parse import urlsplit

from lambdas.common.containers import per_container
from lambdas.common.settings import env_int, env_str, need
from lambdas.tunnel import names
from lambdas.tunnel.protocol import MAX_BODY_BYTES, REQUEST_TIMEOUT_SECS
from lambdas.tunnel.store import BodyStore, ConnectionStore, PendingStore, TokenStore

_LOOPBACK = {"127.0.0.1", "localhost", "::1"}


@dataclass(frozen=True)
class Settings:
    connections_table: str
    pending_table: str
    tokens_table: str
    body_bucket: str
    ws_api_endpoint: str
    public_http_url: str
    domain_name: str
    # Must stay under the HTTP API's 30 s integration limit; tests shorten it.
    request_timeout_seconds: float
    # Requests one tunnel (agent connection) may have in flight; more are answered 429.
    max_inflight: int
    retry_after_seconds: int
    # Largest response body an agent may upload (the presigned POST's size bound); never more than
    # the protocol's limit. Tests lower it to see S3 refuse an upload.
    max_response_bytes: int

    @classmethod
    def from_env(cls) -> Settings:
        timeout = env_int(names.ENV_REQUEST_TIMEOUT_MS, REQUEST_TIMEOUT_SECS * 1000) / 1000
        return cls(
            connections_table=env_str(names.ENV_CONNECTIONS_TABLE),
            pending_table=env_str(names.ENV_PENDING_TABLE),
            tokens_table=env_str(names.ENV_TOKENS_TABLE),
            body_bucket=env_str(names.ENV_BODY_BUCKET),
            ws_api_endpoint=env_str(names.ENV_WS_API_ENDPOINT),
            public_http_url=env_str(names.ENV_PUBLIC_HTTP_URL),
            domain_name=env_str(names.ENV_DOMAIN_NAME),
            request_timeout_seconds=min(timeout, 29.0),
            max_inflight=max(1, env_int(names.ENV_MAX_INFLIGHT, 20)),
            retry_after_seconds=max(1, env_int(names.ENV_BUSY_RETRY_AFTER, 1)),
            max_response_bytes=min(MAX_BODY_BYTES, max(1, env_int(names.ENV_MAX_RESPONSE_BYTES, MAX_BODY_BYTES))),
        )

    # --- stores (cheap frozen dataclasses; the boto3 clients behind them are cached per container)
    def connections(self) -> ConnectionStore:
        return ConnectionStore(need(self.connections_table, names.ENV_CONNECTIONS_TABLE))

    def pending(self) -> PendingStore:
        return PendingStore(need(self.pending_table, names.ENV_PENDING_TABLE))

    def tokens(self) -> TokenStore:
        return TokenStore(need(self.tokens_table, names.ENV_TOKENS_TABLE))

    def bodies(self) -> BodyStore:
        return BodyStore(need(self.body_bucket, names.ENV_BODY_BUCKET))

    def websocket_endpoint(self) -> str:
        return need(self.ws_api_endpoint, names.ENV_WS_API_ENDPOINT)

    # --- public addresses of tunnels
    def _local_api(self) -> tuple[str, int] | None:
        """(scheme, port) when the HTTP API is served on this machine (the local runtime), else
        None. A deployed API's endpoint is never a loopback address."""
        parts = urlsplit(self.public_http_url)
        if parts.hostname in _LOOPBACK:
            return parts.scheme or "http", parts.port or 80
        return None

    def host_domain(self) -> str:
        """The domain under which `{sub}.{domain}` names a tunnel: the custom domain, `localhost`
        on the local runtime (browsers and curl resolve `*.localhost` to loopback), else "" (path
        routing)."""
        if self.domain_name:
            return self.domain_name
        return "localhost" if self._local_api() else ""

    def public_url(self, subdomain: str) -> str:
        """`https://{sub}.{DOMAIN_NAME}` with a custom domain, `http://{sub}.localhost:{port}` on
        the local runtime, else the HTTP API's `/t/{sub}` form (every tunnel on one browser origin)."""
        if self.domain_name:
            return f"https://{subdomain}.{self.domain_name}"
        local = self._local_api()
        if local:
            return f"{local[0]}://{subdomain}.localhost:{local[1]}"
        return f"{need(self.public_http_url, names.ENV_PUBLIC_HTTP_URL).rstrip('/')}/t/{subdomain}"


@per_container
def settings() -> Settings:
    return Settings.from_env()
