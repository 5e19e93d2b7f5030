"""WebSocket APIs (ProtocolType WEBSOCKET) on localhost, with the `@connections` management API on
the same host and port, as on AWS (`{api-id}.execute-api.{region}.amazonaws.com/{stage}` serves
both `wss://` clients and `https://.../@connections`).

aiohttp serves both on one port (the `websockets` server library cannot answer the management
API's POST requests with bodies); clients (tests, demo, bench) use `websockets`.

- `$connect`: the handler runs before the upgrade; a non-2xx answer or an error refuses the socket.
- Messages: the route is chosen by `RouteSelectionExpression` (`$request.body.action`), then
  `$default`; with neither, the client gets API Gateway's `{"message": "Forbidden"}`. A route with a
  route response sends the handler's `body` back.
- `$disconnect` runs when either side closes.
- `POST/GET/DELETE /{stage}/@connections/{id}`; an unknown connection answers 410 GoneException.
"""

from __future__ import annotations

import asyncio
import base64
import json
import os
import time
import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from aiohttp import WSMsgType, web

from scripts.local.apis import Api, LoopThread, Route, serve
from scripts.local.intrinsics import ACCOUNT
from scripts.local.invoke import Invoker


@dataclass
class Connection:
    id: str
    socket: web.WebSocketResponse
    source_ip: str
    user_agent: str
    connected_at: float = field(default_factory=time.time)
    last_active: float = field(default_factory=time.time)


def _iso(ts: float) -> str:
    return datetime.fromtimestamp(ts, UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def select_route(expression: str, body: str) -> str | None:
    """Evaluate `$request.body.a.b` against a JSON message; None if it does not apply."""
    if not expression.startswith("$request.body."):
        return None
    try:
        value: Any = json.loads(body)
    except ValueError:
        return None
    for part in expression.removeprefix("$request.body.").split("."):
        if not isinstance(value, dict) or part not in value:
            return None
        value = value[part]
    return value if isinstance(value, str) else None


class WebSocketApiServer:
    def __init__(self, api: Api, invoker: Invoker, loop: LoopThread) -> None:
        self.api = api
        self.invoker = invoker
        self.loop = loop
        self.connections: dict[str, Connection] = {}
        self._runner: web.AppRunner | None = None
        self._routes = {r.key: r for r in api.routes}

    async def start(self) -> None:
        app = web.Application()
        stage = f"/{self.api.stage}"
        app.router.add_route("*", stage + "/@connections/{connection_id}", self.manage)
        app.router.add_get(stage, self.connect)
        app.router.add_get(stage + "/", self.connect)
        self._runner = await serve(app, self.api.port)

    async def stop(self) -> None:
        for connection in list(self.connections.values()):
            await connection.socket.close()
        if self._runner is not None:
            await self._runner.cleanup()

    def _context(
        self, connection_id: str, route_key: str, event_type: str, request: web.Request | None
    ) -> dict[str, Any]:
        now = time.time()
        connection = self.connections.get(connection_id)
        return {
            "routeKey": route_key,
            "eventType": event_type,
            "extendedRequestId": uuid.uuid4().hex[:16],
            "requestTime": datetime.fromtimestamp(now, UTC).strftime("%d/%b/%Y:%H:%M:%S +0000"),
            "messageDirection": "IN",
            "stage": self.api.stage,
            "connectedAt": int((connection.connected_at if connection else now) * 1000),
            "requestTimeEpoch": int(now * 1000),
            "identity": {
                "sourceIp": connection.source_ip if connection else (request.remote if request else "127.0.0.1"),
                "userAgent": connection.user_agent
                if connection
                else (request.headers.get("User-Agent", "") if request else ""),
            },
            "requestId": uuid.uuid4().hex[:16],
            "domainName": request.host if request else self.api.address,
            "connectionId": connection_id,
            "apiId": self.api.id,
            "accountId": ACCOUNT,
        }

    async def _invoke(self, route: Route, event: dict[str, Any]) -> Any:
        assert route.function is not None
        return await self.loop.loop.run_in_executor(
            self.loop.executor_for(route.function), self.invoker.invoke, route.function, event
        )

    async def connect(self, request: web.Request) -> web.StreamResponse:
        connection_id = base64.b64encode(os.urandom(11)).decode().replace("/", "_").replace("+", "-")
        route = self._routes.get("$connect")
        if route is not None and route.function is not None:
            query = list(request.rel_url.query.items())
            event = {
                "headers": dict(request.headers.items()),
                "multiValueHeaders": {k: request.headers.getall(k) for k in request.headers},
                "queryStringParameters": dict(query) or None,
                "multiValueQueryStringParameters": {k: request.rel_url.query.getall(k) for k in request.rel_url.query}
                or None,
                "requestContext": self._context(connection_id, "$connect", "CONNECT", request),
                "isBase64Encoded": False,
            }
            invocation = await self._invoke(route, event)
            status = 500 if invocation.failed else _status(invocation.result)
            if not 200 <= status < 300:
                self.invoker.trace("ws.refused", {"api": self.api.name, "status": status})
                return web.json_response(
                    {"message": "Forbidden" if status == 403 else "Connection refused"}, status=status
                )
        socket = web.WebSocketResponse(autoping=True)
        try:
            await socket.prepare(request)
        except ConnectionResetError:
            # The client left during the handshake (a page closed or reloaded): API Gateway would
            # just never see the socket; the $connect already ran, so run $disconnect for symmetry.
            await self._disconnect(connection_id, socket)
            return socket
        self.connections[connection_id] = Connection(
            connection_id, socket, request.remote or "127.0.0.1", request.headers.get("User-Agent", "")
        )
        self.invoker.trace("ws.connected", {"api": self.api.name, "connection": connection_id})
        tasks: set[asyncio.Task[None]] = set()
        try:
            async for message in socket:
                if message.type not in (WSMsgType.TEXT, WSMsgType.BINARY):
                    continue
                self.connections[connection_id].last_active = time.time()
                text = message.data if message.type == WSMsgType.TEXT else base64.b64encode(message.data).decode()
                task = asyncio.ensure_future(self._message(connection_id, text, message.type == WSMsgType.BINARY))
                tasks.add(task)
                task.add_done_callback(tasks.discard)
        finally:
            self.connections.pop(connection_id, None)
            await self._disconnect(connection_id, socket)
        return socket

    async def _message(self, connection_id: str, body: str, binary: bool) -> None:
        selected = select_route(self.api.route_selection, body)
        route = self._routes.get(selected or "") or self._routes.get("$default")
        connection = self.connections.get(connection_id)
        if connection is None:
            return
        if route is None or route.function is None:
            await connection.socket.send_str(
                json.dumps({"message": "Forbidden", "connectionId": connection_id, "requestId": uuid.uuid4().hex[:16]})
            )
            return
        context = self._context(connection_id, route.key, "MESSAGE", None)
        context["messageId"] = uuid.uuid4().hex[:16]
        event = {"requestContext": context, "body": body, "isBase64Encoded": binary}
        invocation = await self._invoke(route, event)
        if invocation.failed:
            await connection.socket.send_str(
                json.dumps(
                    {
                        "message": "Internal server error",
                        "connectionId": connection_id,
                        "requestId": context["requestId"],
                    }
                )
            )
        elif (
            route.returns_response and isinstance(invocation.result, dict) and invocation.result.get("body") is not None
        ):
            await connection.socket.send_str(str(invocation.result["body"]))

    async def _disconnect(self, connection_id: str, socket: web.WebSocketResponse) -> None:
        route = self._routes.get("$disconnect")
        self.invoker.trace("ws.disconnected", {"api": self.api.name, "connection": connection_id})
        if route is None or route.function is None:
            return
        context = self._context(connection_id, "$disconnect", "DISCONNECT", None)
        context["disconnectStatusCode"] = socket.close_code or 1005
        context["disconnectReason"] = ""
        event = {"headers": {}, "requestContext": context, "isBase64Encoded": False}
        try:
            await self._invoke(route, event)
        except Exception:  # the runtime may be stopping; $disconnect is best effort on AWS too
            return

    async def manage(self, request: web.Request) -> web.Response:
        connection_id = request.match_info["connection_id"]
        connection = self.connections.get(connection_id)
        received = time.time()
        if connection is None or connection.socket.closed:
            return web.Response(
                status=410,
                body=b'{"message":null}',
                headers={"x-amzn-ErrorType": "GoneException", "Content-Type": "application/json"},
            )
        if request.method == "POST":
            data = await request.read()
            try:
                await connection.socket.send_str(data.decode("utf-8"))
            except UnicodeDecodeError:
                await connection.socket.send_bytes(data)
            except ConnectionError:
                return web.Response(status=410, headers={"x-amzn-ErrorType": "GoneException"})
            self.invoker.trace(
                "connections.post", {"connection": connection_id, "received": received, "sent": time.time()}
            )
            return web.Response(status=200)
        if request.method == "GET":
            return web.json_response(
                {
                    "connectedAt": _iso(connection.connected_at),
                    "identity": {"sourceIp": connection.source_ip, "userAgent": connection.user_agent},
                    "lastActiveAt": _iso(connection.last_active),
                }
            )
        if request.method == "DELETE":
            await connection.socket.close()
            return web.Response(status=204)
        return web.Response(status=405)


def _status(result: Any) -> int:
    if isinstance(result, dict) and "statusCode" in result:
        try:
            return int(result["statusCode"])
        except (TypeError, ValueError):
            return 500
    return 200
