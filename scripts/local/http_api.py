"""HTTP APIs (ProtocolType HTTP) on localhost with API Gateway's Lambda proxy payload format 2.0.

Route selection follows API Gateway: the most specific path wins (literal segments over
`{param}` over `{proxy+}`), a method over ANY, and `$default` catches the rest. AWS_IAM routes
accept any SigV4-signed request (nothing checks signatures locally) and refuse unsigned ones.
"""

from __future__ import annotations

import base64
import re
import time
import uuid
from datetime import UTC, datetime
from typing import Any
from urllib.parse import parse_qsl, unquote

from aiohttp import web

from scripts.local.apis import Api, LoopThread, Route, serve
from scripts.local.intrinsics import ACCOUNT
from scripts.local.invoke import Invoker

_TEXT_TYPES = re.compile(r"^(text/|application/(json|xml|javascript|x-www-form-urlencoded|.*\+json|.*\+xml))")


def _compile(path: str) -> tuple[re.Pattern[str], int, bool]:
    parts, literal, greedy = [], 0, False
    for segment in path.strip("/").split("/") if path.strip("/") else []:
        if segment.startswith("{") and segment.endswith("+}"):
            parts.append(f"(?P<{segment[1:-2]}>.+)")
            greedy = True
        elif segment.startswith("{") and segment.endswith("}"):
            parts.append(f"(?P<{segment[1:-1]}>[^/]+)")
        else:
            parts.append(re.escape(segment))
            literal += 1
    return re.compile("^/" + "/".join(parts) + "$"), literal, greedy


def match_route(routes: list[Route], method: str, path: str) -> tuple[Route, dict[str, str]] | None:
    best: tuple[tuple[int, int, int], Route, dict[str, str]] | None = None
    for route in routes:
        if " " not in route.key:
            continue
        route_method, route_path = route.key.split(" ", 1)
        if route_method not in (method, "ANY"):
            continue
        pattern, literal, greedy = _compile(route_path)
        found = pattern.match(path)
        if not found:
            continue
        score = (0 if greedy else 1, literal, 1 if route_method == method else 0)
        if best is None or score > best[0]:
            best = (score, route, {k: unquote(v) for k, v in found.groupdict().items()})
    if best is not None:
        return best[1], best[2]
    default = next((r for r in routes if r.key == "$default"), None)
    return (default, {}) if default else None


def _joined(pairs: list[tuple[str, str]], lower: bool) -> dict[str, str]:
    joined: dict[str, str] = {}
    for key, value in pairs:
        key = key.lower() if lower else key
        joined[key] = f"{joined[key]},{value}" if key in joined else value
    return joined


async def build_event(
    api: Api, route: Route, params: dict[str, str], request: web.Request, path: str
) -> dict[str, Any]:
    raw_query = request.rel_url.raw_query_string
    headers = [(k, v) for k, v in request.headers.items() if k.lower() != "cookie"]
    # API Gateway adds these; handlers build absolute URLs from them (http locally).
    port = request.host.rpartition(":")[2] if ":" in request.host else "80"
    headers += [
        ("X-Forwarded-For", request.remote or "127.0.0.1"),
        ("X-Forwarded-Port", port),
        ("X-Forwarded-Proto", "http"),
    ]
    cookies = [c.strip() for h in request.headers.getall("Cookie", []) for c in h.split(";") if c.strip()]
    body = await request.read()
    now = time.time()
    event: dict[str, Any] = {
        "version": "2.0",
        "routeKey": route.key,
        "rawPath": path,
        "rawQueryString": raw_query,
        "headers": _joined(headers, lower=True),
        "requestContext": {
            "accountId": ACCOUNT,
            "apiId": api.id,
            "domainName": request.host,
            "domainPrefix": request.host.split(".")[0],
            "http": {
                "method": request.method,
                "path": path,
                "protocol": f"HTTP/{request.version.major}.{request.version.minor}",
                "sourceIp": request.remote or "127.0.0.1",
                "userAgent": request.headers.get("User-Agent", ""),
            },
            "requestId": base64.b32encode(uuid.uuid4().bytes).decode()[:16],
            "routeKey": route.key,
            "stage": api.stage,
            "time": datetime.fromtimestamp(now, UTC).strftime("%d/%b/%Y:%H:%M:%S +0000"),
            "timeEpoch": int(now * 1000),
        },
        "isBase64Encoded": False,
    }
    if cookies:
        event["cookies"] = cookies
    if raw_query:
        event["queryStringParameters"] = _joined(parse_qsl(raw_query, keep_blank_values=True), lower=False)
    if params:
        event["pathParameters"] = params
    if route.authorization == "AWS_IAM":
        credential = re.search(r"Credential=([^/]+)/", request.headers.get("Authorization", ""))
        access_key = credential.group(1) if credential else ""
        event["requestContext"]["authorizer"] = {
            "iam": {
                "accessKey": access_key,
                "accountId": ACCOUNT,
                "callerId": access_key,
                "principalOrgId": None,
                "userArn": f"arn:aws:iam::{ACCOUNT}:user/local",
                "userId": access_key,
            }
        }
    if body:
        if _TEXT_TYPES.match(request.headers.get("Content-Type", "").lower()):
            event["body"] = body.decode("utf-8", errors="replace")
        else:
            event["body"] = base64.b64encode(body).decode()
            event["isBase64Encoded"] = True
    return event


def to_response(result: Any) -> web.Response:
    if not isinstance(result, dict) or "statusCode" not in result:
        # Payload 2.0 without statusCode: API Gateway assumes 200 and a JSON body.
        import json

        body = result if isinstance(result, str) else json.dumps(result)
        return web.Response(status=200, body=body.encode(), headers={"Content-Type": "application/json"})
    response = web.Response(status=int(result["statusCode"]))
    for key, value in (result.get("headers") or {}).items():
        response.headers[key] = str(value)
    for key, values in (result.get("multiValueHeaders") or {}).items():
        for value in values:
            response.headers.add(key, str(value))
    for cookie in result.get("cookies") or []:
        response.headers.add("Set-Cookie", cookie)
    body = result.get("body") or ""
    response.body = base64.b64decode(body) if result.get("isBase64Encoded") else str(body).encode()
    if "Content-Type" not in response.headers and body:
        response.headers["Content-Type"] = "application/json"
    return response


def _error(status: int, message: str) -> web.Response:
    return web.json_response({"message": message}, status=status)


class HttpApiServer:
    def __init__(self, api: Api, invoker: Invoker, loop: LoopThread) -> None:
        self.api = api
        self.invoker = invoker
        self.loop = loop
        self._runner: web.AppRunner | None = None

    async def start(self) -> None:
        app = web.Application(client_max_size=10 * 1024 * 1024)
        app.router.add_route("*", "/{tail:.*}", self.handle)
        self._runner = await serve(app, self.api.port)

    async def stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()

    def _cors(self, request: web.Request, response: web.StreamResponse) -> None:
        cors, origin = self.api.cors, request.headers.get("Origin")
        if not cors or not origin:
            return
        allowed = cors.get("AllowOrigins") or []
        if "*" in allowed or origin in allowed:
            response.headers["Access-Control-Allow-Origin"] = "*" if "*" in allowed else origin
            if cors.get("AllowCredentials"):
                response.headers["Access-Control-Allow-Credentials"] = "true"
            if cors.get("ExposeHeaders"):
                response.headers["Access-Control-Expose-Headers"] = ",".join(cors["ExposeHeaders"])

    async def handle(self, request: web.Request) -> web.StreamResponse:
        path = request.rel_url.raw_path
        if self.api.stage != "$default":
            prefix = f"/{self.api.stage}"
            if not (path == prefix or path.startswith(prefix + "/")):
                return _error(404, "Not Found")
            path = path[len(prefix) :] or "/"
        if request.method == "OPTIONS" and self.api.cors and "Access-Control-Request-Method" in request.headers:
            response = web.Response(status=204)
            self._cors(request, response)
            response.headers["Access-Control-Allow-Methods"] = ",".join(self.api.cors.get("AllowMethods") or ["*"])
            response.headers["Access-Control-Allow-Headers"] = ",".join(self.api.cors.get("AllowHeaders") or ["*"])
            return response
        found = match_route(self.api.routes, request.method, path)
        if found is None:
            return _error(404, "Not Found")
        route, params = found
        if route.authorization == "AWS_IAM" and not request.headers.get("Authorization", "").startswith(
            "AWS4-HMAC-SHA256"
        ):
            return _error(403, "Forbidden")
        if route.function is None:
            return _error(500, "Internal Server Error")
        event = await build_event(self.api, route, params, request, path)
        started = time.time()
        invocation = await self.loop.loop.run_in_executor(
            self.loop.executor, self.invoker.invoke, route.function, event
        )
        if invocation.failed:
            response = _error(500, "Internal Server Error")
        else:
            try:
                response = to_response(invocation.result)
            except (ValueError, TypeError):
                response = _error(502, "Internal Server Error")
        self._cors(request, response)
        self.invoker.trace(
            "http",
            {
                "api": self.api.name,
                "method": request.method,
                "path": path,
                "status": response.status,
                "ms": round((time.time() - started) * 1000),
            },
        )
        return response
