"""Small readers for API Gateway event shapes (WebSocket and HTTP API v2)."""

from __future__ import annotations

from typing import Any


def header(event: dict[str, Any], name: str) -> str | None:
    """Case-insensitive header lookup (WebSocket events keep the client's casing)."""
    for key, value in (event.get("headers") or {}).items():
        if key.lower() == name:
            return str(value)
    return None


def query_param(event: dict[str, Any], name: str) -> str | None:
    value = (event.get("queryStringParameters") or {}).get(name)
    return str(value) if value is not None else None
