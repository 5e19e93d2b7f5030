"""Names shared by the `Tunnel-{env}` stack, its handlers and the token CLI.

Light on purpose (standard library only): the stack, the scripts and every handler import it.
"""

from __future__ import annotations

from lambdas.common import naming

STACK_BASE = "Tunnel"

# --- the tunnel's Lambda functions (`tunnel-{short}-{env}`, handler `lambdas.tunnel.{short}.handler`)
CONNECT = "connect"
DISCONNECT = "disconnect"
FORWARD = "forward"
RESPONSE = "response"


def stack_name(env: str) -> str:
    return naming.env_scoped(STACK_BASE, env)


def function_name(short: str, env: str) -> str:
    return naming.function_name("tunnel", short, env)


# --- DynamoDB ------------------------------------------------------------------------------------
TTL_ATTRIBUTE = "ttl"
# connections: one item per agent connection; `subdomain-index` is sparse (set on Ready).
CONNECTION_ID = "connectionId"
SUBDOMAIN_INDEX = "subdomain-index"
SUBDOMAIN_INDEX_KEY = "publicSubdomain"
SUBDOMAIN_INDEX_SORT = "createdAt"
TOKEN_INDEX = "token-index"  # noqa: S105 - an index name, not a secret
TOKEN_INDEX_KEY = "tokenId"  # noqa: S105 - an attribute name, not a secret
# pending requests: one item per forwarded request.
REQUEST_ID = "requestId"
CONNECTION_INDEX = "connection-index"
CONNECTION_INDEX_KEY = CONNECTION_ID
# tokens: `TOKEN`/{tokenId} and `SUBDOMAIN#{name}`/`CLAIM`.
TOKENS_PK = "pk"
TOKENS_SK = "sk"

# --- S3 keys in the body bucket (bodies too large for one WebSocket message) ---------------------
REQUESTS_PREFIX = "requests/"  # request bodies the agent fetches with a presigned GET
RESPONSES_PREFIX = "responses/"  # response bodies the agent uploads with a presigned POST
BODY_PREFIXES = (REQUESTS_PREFIX, RESPONSES_PREFIX)

# --- environment variables of the tunnel's functions --------------------------------------------
ENV_CONNECTIONS_TABLE = "CONNECTIONS_TABLE_NAME"
ENV_PENDING_TABLE = "PENDING_REQUESTS_TABLE_NAME"
ENV_TOKENS_TABLE = "TOKENS_TABLE_NAME"
ENV_BODY_BUCKET = "BODY_BUCKET_NAME"
# The `@connections` endpoint, `{api-id}.execute-api.{region}.amazonaws.com/{stage}`: the same key
# the QR upload functions read.
ENV_WS_API_ENDPOINT = "WS_API_ENDPOINT"
ENV_PUBLIC_HTTP_URL = "PUBLIC_HTTP_URL"
ENV_DOMAIN_NAME = "DOMAIN_NAME"
ENV_REQUEST_TIMEOUT_MS = "REQUEST_TIMEOUT_MS"
ENV_MAX_INFLIGHT = "MAX_INFLIGHT_PER_TUNNEL"
ENV_BUSY_RETRY_AFTER = "BUSY_RETRY_AFTER_SECONDS"
ENV_MAX_RESPONSE_BYTES = "MAX_RESPONSE_BYTES"

# --- stack outputs -------------------------------------------------------------------------------
OUTPUT_WEBSOCKET_URL = "WebSocketUrl"
OUTPUT_HTTP_API_URL = "HttpApiUrl"
OUTPUT_PUBLIC_URL_PATTERN = "PublicUrlPattern"
OUTPUT_TOKENS_TABLE = "TokensTableName"
OUTPUT_CONNECTIONS_TABLE = "ConnectionsTableName"
OUTPUT_PENDING_TABLE = "PendingRequestsTableName"
OUTPUT_BODY_BUCKET = "BodyBucketName"
