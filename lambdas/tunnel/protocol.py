"""The tunnel's wire protocol: versioned JSON messages shared by the handlers and the agent.

Stdlib only, so the agent CLI can import it without boto3 or Powertools.

Every message is a JSON object `{"v": 1, "type": KIND, ...}`. Requests carry the raw path and raw
query string exactly as received and headers as `[name, value]` pairs, so repeated headers, cookie
order and percent-encoding survive the trip. Bodies are base64 inline; a message that would not fit
API Gateway's 128 KB WebSocket limit carries its body through S3 instead (`body_url` on requests,
`body_in_bucket` on responses, the agent uploading to the request's `response_upload_url`).
That upload is a presigned POST form (`response_upload_fields`), not a PUT: only a POST policy can
bound the size (`content-length-range`), so S3 itself refuses a body over the tunnel's limit.
"""

from __future__ import annotations

import base64
import binascii
import json
import time
from dataclasses import dataclass, field
from typing import Any

VERSION = 1

# API Gateway caps a WebSocket message at 128 KB and a frame at 32 KB. Keep a margin for the
# envelope API Gateway itself never adds but proxies may; frames are what the agent sends.
MAX_MESSAGE_BYTES = 128 * 1024
INLINE_MESSAGE_LIMIT = 120 * 1024
MAX_FRAME_BYTES = 32 * 1024
# Largest body the tunnel carries either way; bigger requests get 413 before reaching the agent.
MAX_BODY_BYTES = 5 * 1024 * 1024

# Constants the spec names.
CONNECTION_TTL_SECS = 2 * 60 * 60
PENDING_REQUEST_TTL_SECS = 5 * 60
REQUEST_TIMEOUT_SECS = 25

Headers = list[tuple[str, str]]


class ProtocolError(ValueError):
    """A message that is not valid JSON, has the wrong version, or lacks required fields."""


def encode_body(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii")


def decode_body(text: str) -> bytes:
    try:
        return base64.b64decode(text.encode("ascii"), validate=True)
    except (binascii.Error, UnicodeEncodeError):
        raise ProtocolError("body is not valid base64") from None


@dataclass
class HttpRequest:
    request_id: str
    method: str
    path: str
    query: str = ""
    headers: Headers = field(default_factory=list)
    body: bytes = b""
    # Set instead of an inline body when the body is in S3 (presigned GET).
    body_url: str | None = None
    # Presigned POST (URL and form fields) for a response body too large to send back inline.
    response_upload_url: str | None = None
    response_upload_fields: dict[str, str] | None = None
    client_ip: str | None = None
    timestamp: int = field(default_factory=lambda: int(time.time() * 1000))
    # How long the tunnel still waits for this answer when it sends the request: past it the
    # client has had 504, which is what the agent shows.
    timeout_ms: int | None = None

    @property
    def target(self) -> str:
        """Path plus query exactly as the public client sent them."""
        return f"{self.path}?{self.query}" if self.query else self.path


@dataclass
class HttpResponse:
    request_id: str
    status: int
    headers: Headers = field(default_factory=list)
    body: bytes = b""
    body_in_bucket: bool = False
    processing_time_ms: int = 0


@dataclass
class Ping:
    timestamp: int = field(default_factory=lambda: int(time.time() * 1000))


@dataclass
class Pong:
    timestamp: int = 0


@dataclass
class Error:
    code: str
    message: str
    request_id: str | None = None


@dataclass
class Ready:
    """Sent by the agent once connected: API Gateway refuses posts during `$connect`, so the
    public URL can only be delivered after the agent says it is listening."""


@dataclass
class ConnectionEstablished:
    connection_id: str
    subdomain: str
    public_url: str


Message = HttpRequest | HttpResponse | Ping | Pong | Error | Ready | ConnectionEstablished
_KINDS: dict[str, type] = {
    cls.__name__: cls for cls in (HttpRequest, HttpResponse, Ping, Pong, Error, Ready, ConnectionEstablished)
}


_FIELD_TYPES: dict[str, type] = {
    **dict.fromkeys(("request_id", "method", "path", "query", "body_url", "response_upload_url", "client_ip"), str),
    **dict.fromkeys(("code", "message", "connection_id", "subdomain", "public_url"), str),
    **dict.fromkeys(("status", "processing_time_ms", "timestamp", "timeout_ms"), int),
    "body_in_bucket": bool,
    "response_upload_fields": dict,
}


def to_dict(message: Message) -> dict[str, Any]:
    out: dict[str, Any] = {"v": VERSION, "type": type(message).__name__}
    for name, value in vars(message).items():
        if isinstance(value, bytes):
            if value:
                out[name] = encode_body(value)
        elif name == "headers":
            out[name] = [[k, v] for k, v in value]
        elif value is not None:
            out[name] = value
    return out


def encode(message: Message) -> str:
    # ASCII-only output: frames can then be cut anywhere without splitting a UTF-8 sequence.
    return json.dumps(to_dict(message), separators=(",", ":"), ensure_ascii=True)


def _headers(raw: Any) -> Headers:
    if not isinstance(raw, list):
        raise ProtocolError("headers must be a list of [name, value] pairs")
    out: Headers = []
    for pair in raw:
        if not (isinstance(pair, list | tuple) and len(pair) == 2 and all(isinstance(x, str) for x in pair)):
            raise ProtocolError("headers must be a list of [name, value] pairs")
        out.append((pair[0], pair[1]))
    return out


def from_dict(data: Any) -> Message:
    if not isinstance(data, dict):
        raise ProtocolError("message must be a JSON object")
    if data.get("v") != VERSION:
        raise ProtocolError(f"unsupported protocol version {data.get('v')!r}")
    cls = _KINDS.get(str(data.get("type")))
    if cls is None:
        raise ProtocolError(f"unknown message type {data.get('type')!r}")
    fields = {k: v for k, v in data.items() if k not in ("v", "type")}
    if "headers" in fields:
        fields["headers"] = _headers(fields["headers"])
    if "body" in fields:
        if not isinstance(fields["body"], str):
            raise ProtocolError("body must be a base64 string")
        fields["body"] = decode_body(fields["body"])
    for name, value in fields.items():
        expected = _FIELD_TYPES.get(name)
        if (
            expected
            and value is not None
            and (not isinstance(value, expected) or isinstance(value, bool) is not (expected is bool))
        ):
            raise ProtocolError(f"field {name!r} has the wrong type")
    form = fields.get("response_upload_fields")
    if isinstance(form, dict) and not all(isinstance(k, str) and isinstance(v, str) for k, v in form.items()):
        raise ProtocolError("response_upload_fields must map names to strings")
    if isinstance(fields.get("status"), int) and not 100 <= fields["status"] <= 599:
        raise ProtocolError("status must be between 100 and 599")
    try:
        return cls(**fields)
    except TypeError as exc:
        raise ProtocolError(f"bad {cls.__name__}: {exc}") from None


def decode(text: str | bytes) -> Message:
    try:
        data = json.loads(text)
    except (ValueError, UnicodeDecodeError):
        raise ProtocolError("message is not valid JSON") from None
    return from_dict(data)


def fits_inline(message: Message) -> bool:
    return len(encode(message)) <= INLINE_MESSAGE_LIMIT


def frames(text: str, size: int = MAX_FRAME_BYTES) -> list[str]:
    """Split an encoded message into frames API Gateway accepts (ASCII, so chars == bytes)."""
    return [text[i : i + size] for i in range(0, len(text), size)] or [""]


# Hop-by-hop headers (RFC 9110 7.6.1) are meaningful for one connection only; a proxy drops them,
# plus any header the Connection header names.
HOP_BY_HOP = frozenset(
    {
        "connection",
        "keep-alive",
        "proxy-authenticate",
        "proxy-authorization",
        "proxy-connection",
        "te",
        "trailer",
        "transfer-encoding",
        "upgrade",
    }
)


def strip_hop_by_hop(headers: Headers) -> Headers:
    named = {
        token.strip().lower() for name, value in headers if name.lower() == "connection" for token in value.split(",")
    }
    return [(k, v) for k, v in headers if k.lower() not in HOP_BY_HOP and k.lower() not in named]


def json_error(message: str) -> bytes:
    """The platform's error body shape, for errors the tunnel itself produces."""
    return json.dumps({"error": message}).encode()
