"""HTTP API v2 shapes of the tunnel: which tunnel a request names, the request headers the agent
sees, and the response the gateway sends back. Pure functions: no AWS calls, no settings.

The tunnel is named by the Host header (`{sub}.{DOMAIN_NAME}`) or, with no custom domain, by the
path (`/t/{sub}/...`, prefix stripped). For a path tunnel, redirects and cookies are kept inside
the prefix so that tunnels sharing one host cannot reach each other's.
"""

from __future__ import annotations

import base64
import json
import re
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

from lambdas.common.responses import JSON, NO_STORE, error_body, proxy_response
from lambdas.tunnel import protocol as p

_PATH_ROUTE = re.compile(r"^/t/([^/]+)(/.*)?$")
# Lambda's synchronous response payload limit is 6 MB (of JSON, so of base64 for binary bodies).
LAMBDA_RESPONSE_LIMIT = 6 * 1024 * 1024 - 16 * 1024


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


def error_response(status: int, message: str) -> dict[str, Any]:
    """An error the tunnel itself answers: the platform's JSON error, spaced like the agent's own
    (`protocol.json_error`), header names lowercase like the ones forwarded from the agent."""
    return proxy_response(
        status,
        error_body(message, separators=None),
        {"content-type": JSON, "cache-control": NO_STORE},
        isBase64Encoded=False,
    )


def request_headers(event: dict[str, Any], route: Route) -> p.Headers:
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


def payload_size(body: str, encoded: bool) -> int:
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
