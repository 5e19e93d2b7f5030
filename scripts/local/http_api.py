"""HTTP APIs (ProtocolType HTTP) on localhost with API Gateway's Lambda proxy payload format 2.0.

Route selection follows API Gateway: the most specific path wins (literal segments over
`{param}` over `{proxy+}`), a method over ANY, and `$default` catches the rest. AWS_IAM routes
accept any SigV4-signed request (nothing checks signatures locally) and refuse unsigned ones.

Lambda REQUEST authorizers (AuthorizationType CUSTOM) run as API Gateway runs them: a missing or
empty identity source answers 401 `{"message":"Unauthorized"}` without invoking; the authorizer
gets the REQUEST event of its payload format (2.0: `type`, `routeArn`, `identitySource` list, the
request's headers, query, cookies, path parameters, requestContext; 1.0: REST's shape with
`methodArn`); a simple response (2.0 with EnableSimpleResponses) with `isAuthorized` false, or an
IAM policy that does not allow `execute-api:Invoke` on the route's ARN (an explicit Deny wins),
answers 403 `{"message":"Forbidden"}`; an error, a timeout or an answer of the wrong shape answers
500. The route's event carries the returned `context` as `requestContext.authorizer.lambda`.
Answers are cached per authorizer by identity-source values for `AuthorizerResultTtlInSeconds`
(0: never), denials included; a cached policy is evaluated against each request's route.

Not emulated locally: JWT authorizers (the route runs unchecked), stage variables (an identity
source naming one is always missing), mutual TLS, throttling and the 30 s integration timeout.
"""

from __future__ import annotations

import base64
import fnmatch
import json
import re
import time
import uuid
from collections import OrderedDict
from datetime import UTC, datetime
from typing import Any
from urllib.parse import parse_qsl, unquote

from aiohttp import web

from scripts.local.apis import Api, Authorizer, LoopThread, Route, serve
from scripts.local.functions import InvokeError
from scripts.local.intrinsics import ACCOUNT
from scripts.local.invoke import Invoker

# The shape of a SigV4 Authorization header (signatures themselves are not verified locally).
SIGV4 = re.compile(
    r"^AWS4-HMAC-SHA256 Credential=[A-Z0-9]{16,128}/\d{8}/[a-z0-9-]+/[a-z0-9-]+/aws4_request,\s*"
    r"SignedHeaders=[a-z0-9;-]+,\s*Signature=[0-9a-f]{64}$"
)
MAX_REQUEST_LINE = 10_240
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
    """The payload format 2.0 event API Gateway gives the route's function for this request."""
    raw_query = request.rel_url.raw_query_string
    cookies = [c.strip() for h in request.headers.getall("Cookie", []) for c in h.split(";") if c.strip()]
    event: dict[str, Any] = {
        "version": "2.0",
        "routeKey": route.key,
        "rawPath": path,
        "rawQueryString": raw_query,
        "headers": _joined(_forwarded_headers(request), lower=True),
        "requestContext": _request_context(api, route, request, path),
        "isBase64Encoded": False,
    }
    if cookies:
        event["cookies"] = cookies
    if raw_query:
        event["queryStringParameters"] = _joined(parse_qsl(raw_query, keep_blank_values=True), lower=False)
    if params:
        event["pathParameters"] = params
    if route.authorization == "AWS_IAM":
        event["requestContext"]["authorizer"] = _iam_authorizer(request)
    body = await request.read()
    if body:
        event.update(_body(body, request.headers.get("Content-Type", "")))
    return event


def _forwarded_headers(request: web.Request) -> list[tuple[str, str]]:
    """The request's headers but its cookies (the event has them apart), and the X-Forwarded-*
    headers API Gateway adds; handlers build absolute URLs from them (http locally)."""
    headers = [(k, v) for k, v in request.headers.items() if k.lower() != "cookie"]
    port = request.host.rpartition(":")[2] if ":" in request.host else "80"
    return [
        *headers,
        ("X-Forwarded-For", request.remote or "127.0.0.1"),
        ("X-Forwarded-Port", port),
        ("X-Forwarded-Proto", "http"),
    ]


def _request_context(api: Api, route: Route, request: web.Request, path: str) -> dict[str, Any]:
    now = time.time()
    return {
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
    }


def _iam_authorizer(request: web.Request) -> dict[str, Any]:
    """An AWS_IAM route's caller, named by the access key of its SigV4 signature."""
    credential = re.search(r"Credential=([^/]+)/", request.headers.get("Authorization", ""))
    access_key = credential.group(1) if credential else ""
    return {
        "iam": {
            "accessKey": access_key,
            "accountId": ACCOUNT,
            "callerId": access_key,
            "principalOrgId": None,
            "userArn": f"arn:aws:iam::{ACCOUNT}:user/local",
            "userId": access_key,
        }
    }


def _body(body: bytes, content_type: str) -> dict[str, Any]:
    text = _utf8(body) if _TEXT_TYPES.match(content_type.lower()) else None
    if text is not None:
        return {"body": text}
    # binary, or "text" that is not valid UTF-8: base64 keeps every byte
    return {"body": base64.b64encode(body).decode(), "isBase64Encoded": True}


def _utf8(data: bytes) -> str | None:
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError:
        return None


class _ExactResponse(web.Response):
    """A response with exactly the headers the handler gave: aiohttp would add
    `Content-Type: application/octet-stream` to a body without one, and drop a HEAD answer's
    Content-Length; API Gateway does neither."""

    keep_without_type = False
    head_length: str | None = None

    async def _prepare_headers(self) -> None:
        await super()._prepare_headers()
        if self.keep_without_type:
            self._headers.popall("Content-Type", None)
        if self.head_length is not None:
            self._headers["Content-Length"] = self.head_length


def to_response(result: Any, method: str = "GET") -> web.Response:
    if not isinstance(result, dict) or "statusCode" not in result:
        # Payload 2.0 without statusCode: API Gateway assumes 200 and a JSON body.
        body = result if isinstance(result, str) else json.dumps(result)
        return web.Response(status=200, body=body.encode(), headers={"Content-Type": "application/json"})
    response = _ExactResponse(status=int(result["statusCode"]))
    for key, value in (result.get("headers") or {}).items():
        response.headers[key] = str(value)
    for key, values in (result.get("multiValueHeaders") or {}).items():
        for value in values:
            response.headers.add(key, str(value))
    for cookie in result.get("cookies") or []:
        response.headers.add("Set-Cookie", cookie)
    body = result.get("body") or ""
    length = response.headers.get("Content-Length")
    response.body = base64.b64decode(body) if result.get("isBase64Encoded") else str(body).encode()
    response.keep_without_type = "Content-Type" not in response.headers
    if method == "HEAD" and length is not None and not body:
        response.head_length = length
    return response


def _error(status: int, message: str) -> web.Response:
    return web.json_response({"message": message}, status=status)


def identity_values(sources: list[str], event: dict[str, Any]) -> list[str] | None:
    """The identity sources' values from a route event, None if one is missing or empty."""
    values = []
    for source in sources:
        value: Any = None
        if source.startswith("$request.header."):
            value = event["headers"].get(source.removeprefix("$request.header.").lower())
        elif source.startswith("$request.querystring."):
            value = (event.get("queryStringParameters") or {}).get(source.removeprefix("$request.querystring."))
        elif source.startswith("$context."):
            value = event["requestContext"]
            for part in source.removeprefix("$context.").split("."):
                value = value.get(part) if isinstance(value, dict) else None
        if value is None or value == "":
            return None
        values.append(str(value))
    return values


def authorizer_event(api: Api, route: Route, event: dict[str, Any], identity: list[str], region: str) -> dict[str, Any]:
    """API Gateway's payload 2.0 REQUEST authorizer event for a route event."""
    context = {k: v for k, v in event["requestContext"].items() if k != "authorizer"}
    method = context["http"]["method"]
    found: dict[str, Any] = {
        "version": "2.0",
        "type": "REQUEST",
        "routeArn": f"arn:aws:execute-api:{region}:{ACCOUNT}:{api.id}/{api.stage}/{method}{event['rawPath']}",
        "identitySource": identity,
        "routeKey": route.key,
        "rawPath": event["rawPath"],
        "rawQueryString": event["rawQueryString"],
        "headers": event["headers"],
        "requestContext": context,
    }
    for key in ("cookies", "queryStringParameters", "pathParameters", "stageVariables"):
        if key in event:
            found[key] = event[key]
    return found


def authorizer_event_v1(
    api: Api, route: Route, event: dict[str, Any], identity: list[str], region: str
) -> dict[str, Any]:
    """API Gateway's payload 1.0 REQUEST authorizer event (REST's request authorizer shape)."""
    context = event["requestContext"]
    method = context["http"]["method"]
    resource = route.key.split(" ", 1)[1] if " " in route.key else route.key
    return {
        "version": "1.0",
        "type": "REQUEST",
        "methodArn": f"arn:aws:execute-api:{region}:{ACCOUNT}:{api.id}/{api.stage}/{method}{event['rawPath']}",
        "identitySource": ",".join(identity),
        "authorizationToken": ",".join(identity),
        "resource": resource,
        "path": event["rawPath"],
        "httpMethod": method,
        "headers": event["headers"],
        "queryStringParameters": event.get("queryStringParameters") or {},
        "pathParameters": event.get("pathParameters") or {},
        "stageVariables": {},
        "requestContext": {
            "path": event["rawPath"],
            "accountId": ACCOUNT,
            "resourceId": route.key,
            "stage": api.stage,
            "requestId": context["requestId"],
            "identity": {"sourceIp": context["http"]["sourceIp"], "userAgent": context["http"]["userAgent"]},
            "resourcePath": resource,
            "httpMethod": method,
            "apiId": api.id,
        },
    }


def policy_allows(policy: Any, route_arn: str) -> bool | None:
    """Whether an IAM policy allows `execute-api:Invoke` on the route; None if it is malformed."""
    if not isinstance(policy, dict):
        return None
    statements = policy.get("Statement")
    statements = [statements] if isinstance(statements, dict) else statements
    if not isinstance(statements, list):
        return None
    allowed = False
    for statement in statements:
        if not isinstance(statement, dict):
            return None
        actions = statement.get("Action", [])
        resources = statement.get("Resource", [])
        actions = [actions] if isinstance(actions, str) else actions
        resources = [resources] if isinstance(resources, str) else resources
        if not any(fnmatch.fnmatchcase("execute-api:Invoke", str(a)) for a in actions):
            continue
        if any(fnmatch.fnmatchcase(route_arn, str(r)) for r in resources):
            if statement.get("Effect") == "Deny":
                return False
            if statement.get("Effect") == "Allow":
                allowed = True
    return allowed


class HttpApiServer:
    CACHE_ENTRIES = 10_000  # per authorizer

    def __init__(self, api: Api, invoker: Invoker, loop: LoopThread) -> None:
        self.api = api
        self.invoker = invoker
        self.loop = loop
        self._runner: web.AppRunner | None = None
        # authorizer id -> identity values -> (expires, answer); touched on the loop's thread only
        self._cache: dict[str, OrderedDict[tuple[str, ...], tuple[float, dict[str, Any]]]] = {}

    async def _authorize(self, route: Route, authorizer: Authorizer, event: dict[str, Any]) -> web.Response | None:
        """Run (or recall) the route's Lambda authorizer: None if the request may go on, else the
        answer API Gateway gives. On success the route event gets `requestContext.authorizer`."""
        identity = identity_values(authorizer.identity_sources, event)
        if identity is None:
            return _error(401, "Unauthorized")
        region = self.invoker.resolver.region
        if authorizer.payload_version == "1.0":
            auth_event = authorizer_event_v1(self.api, route, event, identity, region)
            route_arn = auth_event["methodArn"]
        else:
            auth_event = authorizer_event(self.api, route, event, identity, region)
            route_arn = auth_event["routeArn"]
        cache = self._cache.setdefault(authorizer.id, OrderedDict())
        key = tuple(identity)
        cached = cache.get(key) if authorizer.ttl > 0 and identity else None
        if cached is not None and cached[0] > time.time():
            answer = cached[1]
            self.invoker.trace("authorizer", {"authorizer": authorizer.name, "cached": True})
        else:
            fresh = await self._run_authorizer(authorizer, auth_event)
            if fresh is None:
                return _error(500, "Internal Server Error")
            answer = fresh
            if authorizer.ttl > 0 and identity:
                cache[key] = (time.time() + authorizer.ttl, answer)
                cache.move_to_end(key)
                while len(cache) > self.CACHE_ENTRIES:
                    cache.popitem(last=False)
        if self._simple(authorizer):
            allowed: bool | None = answer["isAuthorized"]
        else:
            allowed = policy_allows(answer.get("policyDocument"), route_arn)
            if allowed is None:
                return _error(500, "Internal Server Error")
        if not allowed:
            return _error(403, "Forbidden")
        event["requestContext"]["authorizer"] = {"lambda": answer.get("context")}
        return None

    @staticmethod
    def _simple(authorizer: Authorizer) -> bool:
        return authorizer.simple_responses and authorizer.payload_version == "2.0"

    async def _run_authorizer(self, authorizer: Authorizer, event: dict[str, Any]) -> dict[str, Any] | None:
        """The authorizer's answer if it has the configured shape, else None (API Gateway's 500)."""
        if authorizer.function is None or authorizer.payload_version not in ("1.0", "2.0"):
            self.invoker.trace("authorizer.unsupported", {"authorizer": authorizer.name})
            return None
        try:
            invocation = await self.loop.loop.run_in_executor(
                self.loop.executor_for(authorizer.function), self.invoker.invoke, authorizer.function, event
            )
        except InvokeError:
            return None
        self.invoker.trace("authorizer", {"authorizer": authorizer.name, "cached": False})
        answer = invocation.result
        if invocation.failed or not isinstance(answer, dict):
            return None
        if self._simple(authorizer) and not isinstance(answer.get("isAuthorized"), bool):
            return None
        if not self._simple(authorizer) and not isinstance(answer.get("policyDocument"), dict):
            return None
        context = answer.get("context")
        if context is not None and not isinstance(context, dict):
            return None
        return answer

    async def start(self) -> None:
        app = web.Application(client_max_size=10 * 1024 * 1024)
        app.router.add_route("*", "/{tail:.*}", self.handle)
        # API Gateway's own limit is the request line plus headers (10,240 bytes): parse up to more
        # than that so a longer URL gets its 414 here rather than a parser error.
        self._runner = await serve(app, self.api.port, max_line_size=4 * MAX_REQUEST_LINE, max_field_size=16_384)

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
        if len(request.raw_path) > MAX_REQUEST_LINE:
            self.invoker.trace(
                "http",
                {"api": self.api.name, "method": request.method, "path": path[:60] + "...", "status": 414, "ms": 0},
            )
            return _error(414, "Request-URI Too Long")
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
        if route.authorization == "AWS_IAM" and not SIGV4.match(request.headers.get("Authorization", "")):
            return _error(403, "Forbidden")
        if route.function is None:
            return _error(500, "Internal Server Error")
        event = await build_event(self.api, route, params, request, path)
        started = time.time()
        denied = None
        if route.authorization == "CUSTOM" and route.authorizer is not None and route.authorizer.type == "REQUEST":
            denied = await self._authorize(route, route.authorizer, event)
        if denied is not None:
            response = denied
        else:
            invocation = await self.loop.loop.run_in_executor(
                self.loop.executor_for(route.function), self.invoker.invoke, route.function, event
            )
            if invocation.failed:
                response = _error(500, "Internal Server Error")
            else:
                try:
                    response = to_response(invocation.result, request.method)
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
