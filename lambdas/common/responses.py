"""The platform's JSON error answer, `{"error": "..."}` with its status, written once.

Handlers on Powertools' resolver answer through `lambdas.common.http` (a resolver `Response`).
Handlers that return API Gateway's proxy dict themselves (the WebSocket routes, the tunnel's
catch-all HTTP route) build it here. This module imports only `json`: those handlers' cold starts
do not load the resolver (40-60 ms).
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

JSON = "application/json"
NO_STORE = "no-store"
COMPACT = (",", ":")


def error_body(message: str, separators: tuple[str, str] | None = COMPACT) -> str:
    """`{"error": message}` as JSON text; `separators=None` keeps json's default spacing."""
    return json.dumps({"error": message}, separators=separators)


def proxy_response(status: int, body: str, headers: Mapping[str, str], **fields: Any) -> dict[str, Any]:
    """A proxy integration's answer: status, headers and body, then any further fields
    (`isBase64Encoded` for an HTTP API)."""
    return {"statusCode": status, "headers": dict(headers), "body": body, **fields}
