"""Real peers for the agent tests: a local HTTP app and a WebSocket server speaking the tunnel
protocol the way API Gateway plus the tunnel handlers do (token check on the upgrade, Ready ->
ConnectionEstablished, Ping -> Pong). Each runs on its own thread so tests stay synchronous."""

from __future__ import annotations

import asyncio
import gzip
import io
import json
import threading
import time
from collections.abc import Callable
from concurrent.futures import Future
from email.parser import BytesParser
from email.policy import default
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from websockets.asyncio.server import ServerConnection, serve
from websockets.http11 import Request, Response

from lambdas.tunnel import protocol as p
from tunnel_agent.agent import Agent, AgentConfig

GOOD_TOKEN = "abcdefghij.secretsecretsecretsecretsecret"
BINARY = bytes(range(256)) * 64
# ~5 MB of UTF-8 HTML: over the ~4.7 MB a base64 body can have in Lambda's 6 MB response.
BIG_TEXT = ("<li>caf\u00e9 " + "item " * 40 + "</li>\n").encode() * 24_000


class LocalApp:
    """The app behind the tunnel; records what it received and how many requests ran at once."""

    def __init__(self) -> None:
        self.received: list[dict[str, Any]] = []
        self.stored: dict[str, bytes] = {}  # plays S3 for presigned URLs under /__s3/
        self.forms: dict[str, dict[str, bytes]] = {}  # every part of each POST form, by name
        self.active = 0
        self.max_active = 0
        self.lock = threading.Lock()
        app = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def _reply(self, status: int, headers: list[tuple[str, str]], body: bytes) -> None:
                self.send_response(status)
                for name, value in headers:
                    self.send_header(name, value)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def _handle(self) -> None:
                if self.path.startswith("/early"):
                    # Like many servers refusing an upload: answer at once, never read the body, close.
                    app.received.append({"method": self.command, "target": self.path, "headers": self.headers.items()})
                    self.close_connection = True
                    return self._reply(401, [("Content-Type", "text/plain"), ("Connection", "close")], b"login first")
                body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                if self.path.startswith("/__s3/"):
                    if self.command == "POST":  # a presigned POST form: keep the file part
                        app.forms[self.path] = form = multipart_form(self.headers["Content-Type"], body)
                        app.stored[self.path] = form["file"]
                        return self._reply(204, [], b"")
                    return self._reply(200, [], app.stored[self.path])
                app.received.append(
                    {"method": self.command, "target": self.path, "headers": self.headers.items(), "body": body}
                )
                with app.lock:
                    app.active += 1
                    app.max_active = max(app.max_active, app.active)
                try:
                    self._route(body)
                finally:
                    with app.lock:
                        app.active -= 1

            def _route(self, body: bytes) -> None:
                path = self.path.split("?")[0]
                if path == "/redirect":
                    return self._reply(302, [("Location", "/target")], b"")
                if path == "/absolute-redirect":  # an absolute URL built from the Host the app was given
                    return self._reply(302, [("Location", f"http://{self.headers['Host']}/login?next=%2F")], b"")
                if path == "/elsewhere":
                    return self._reply(302, [("Location", "https://example.org/x")], b"")
                if path == "/scoped-cookies":
                    cookies = [
                        ("Set-Cookie", "s=1; Path=/; Domain=localhost; HttpOnly"),
                        ("Set-Cookie", "t=2; path=/admin"),
                        ("Set-Cookie", "u=3"),
                    ]
                    return self._reply(200, cookies, b"ok")
                if path == "/gzip":
                    data = gzip.compress(b"hello " * 100)
                    return self._reply(200, [("Content-Encoding", "gzip")], data)
                if path == "/binary":
                    return self._reply(200, [("Content-Type", "application/octet-stream")], BINARY)
                if path == "/big":
                    return self._reply(200, [], bytes(reversed(body)) or BINARY * 20)
                if path == "/sized":  # HEAD answers the size a GET would have, without the body
                    data = b"0123456789" * 100
                    self.send_response(200)
                    self.send_header("Content-Length", str(len(data)))
                    self.end_headers()
                    if self.command != "HEAD":
                        self.wfile.write(data)
                    return None
                if path == "/bytes":  # ?n=SIZE: that many bytes, the same ones on every call
                    size = int(self.path.partition("n=")[2] or 0)
                    return self._reply(200, [("Content-Type", "application/octet-stream")], sized_bytes(size))
                if path == "/bigtext":
                    return self._reply(200, [("Content-Type", "text/html; charset=utf-8")], BIG_TEXT)
                if path == "/slow":
                    time.sleep(float(self.headers.get("X-Delay", "0.3")))
                    return self._reply(200, [], b"slow")
                cookies = [("Set-Cookie", "a=1; Path=/"), ("Set-Cookie", "b=2; HttpOnly")]
                hop = [("Connection", "X-Internal"), ("X-Internal", "secret"), ("Keep-Alive", "timeout=5")]
                return self._reply(201, cookies + hop + [("X-Echo", "yes")], body)

            do_GET = do_POST = do_PUT = do_DELETE = do_PATCH = do_HEAD = _handle

            def log_message(self, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.port = self.server.server_address[1]
        self.url = f"http://127.0.0.1:{self.port}"
        threading.Thread(target=self.server.serve_forever, args=(0.05,), daemon=True).start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


def sized_bytes(size: int) -> bytes:
    """`size` bytes that vary (no run of one byte a bug could produce by accident)."""
    return (BINARY * (size // len(BINARY) + 1))[:size]


def multipart_form(content_type: str, body: bytes) -> dict[str, bytes]:
    """The parts of a multipart/form-data body by name (in order), parsed by the stdlib."""
    message = BytesParser(policy=default).parsebytes(f"Content-Type: {content_type}\r\n\r\n".encode() + body)
    return {
        str(part.get_param("name", header="content-disposition")): part.get_payload(decode=True)
        for part in message.iter_parts()
    }


class FakeTunnel:
    """The tunnel side of the WebSocket, on its own event loop thread."""

    def __init__(self, token: str = GOOD_TOKEN, path_base: str | None = None) -> None:
        self.token = token
        self.path_base = path_base  # answer `{path_base}/t/{sub}` (path routing) instead of a host
        self.connections: list[ServerConnection] = []
        self.subdomains_asked: list[str | None] = []
        self.received: list[tuple[int, p.Message]] = []
        # Sent after the agent's Ready but before ConnectionEstablished, as a forwarder can on AWS.
        self.before_established: list[p.HttpRequest] = []
        self.waiters: dict[str, asyncio.Future[tuple[int, p.Message]]] = {}
        self.loop = asyncio.new_event_loop()
        self.ready = threading.Event()
        self.thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self.thread.start()
        self.port = self.call(self._start())

    def call(self, coro: Any, timeout: float = 10) -> Any:
        future: Future[Any] = asyncio.run_coroutine_threadsafe(coro, self.loop)
        return future.result(timeout)

    async def _start(self) -> int:
        self.server = await serve(self._session, "127.0.0.1", 0, process_request=self._check, compression=None)
        return int(self.server.sockets[0].getsockname()[1])

    def _check(self, connection: ServerConnection, request: Request) -> Response | None:
        if request.headers.get("Authorization") != f"Bearer {self.token}":
            return connection.respond(HTTPStatus.UNAUTHORIZED, "invalid or missing tunnel token\n")
        return None

    async def _session(self, ws: ServerConnection) -> None:
        index = len(self.connections)
        self.connections.append(ws)
        asked = ws.request.headers.get("X-Tunnel-Subdomain") if ws.request else None
        self.subdomains_asked.append(asked)
        ready = p.decode(await ws.recv())
        assert isinstance(ready, p.Ready)
        sub = asked or "k3v9x2m7q1wz"
        for early in self.before_established:
            await ws.send(p.encode(early))
        public = f"{self.path_base}/t/{sub}" if self.path_base else f"https://{sub}.tunnel.test"
        await ws.send(p.encode(p.ConnectionEstablished(f"conn-{index}", sub, public)))
        async for raw in ws:
            message = p.decode(raw)
            self.received.append((index, message))
            if isinstance(message, p.Ping):
                await ws.send(p.encode(p.Pong(message.timestamp)))
            rid = getattr(message, "request_id", None)
            if rid in self.waiters:
                self.waiters.pop(rid).set_result((index, message))

    def wait_connections(self, count: int, timeout: float = 10) -> None:
        deadline = time.monotonic() + timeout
        while len(self.connections) < count or not self._established(count - 1):
            assert time.monotonic() < deadline, f"only {len(self.connections)} connection(s)"
            time.sleep(0.01)

    def _established(self, index: int) -> bool:
        return len(self.connections) > index and self.connections[index].state.name == "OPEN"

    async def _request(self, index: int, request: p.HttpRequest, timeout: float) -> tuple[int, p.Message]:
        waiter = self.loop.create_future()
        self.waiters[request.request_id] = waiter
        await self.connections[index].send(p.encode(request))
        return await asyncio.wait_for(waiter, timeout)

    def request(self, request: p.HttpRequest, index: int = -1, timeout: float = 10) -> p.Message:
        return self.call(self._request(index, request, timeout), timeout + 1)[1]

    def request_on(self, request: p.HttpRequest, index: int = -1, timeout: float = 10) -> tuple[int, p.Message]:
        result: tuple[int, p.Message] = self.call(self._request(index, request, timeout), timeout + 1)
        return result

    def drop(self, index: int = -1) -> None:
        self.call(self.connections[index].close(1001, "going away"))

    def close(self) -> None:
        async def _stop() -> None:
            self.server.close()
            await self.server.wait_closed()

        self.call(_stop())
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(5)


class AgentThread:
    """The real Agent on its own event loop thread, stopped like Ctrl-C would (stop event)."""

    def __init__(self, config: AgentConfig) -> None:
        self.out = io.StringIO()
        self.err = io.StringIO()
        self.agent = Agent(config, out=self.out, err=self.err)
        self.exit_code: int | None = None
        self.loop: asyncio.AbstractEventLoop | None = None
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()

    def _run(self) -> None:
        from tunnel_agent.agent import run_agent

        async def main() -> int:
            self.loop = asyncio.get_running_loop()
            return await run_agent(self.agent)

        self.exit_code = asyncio.run(main())

    def stop(self, timeout: float = 10) -> int | None:
        while self.loop is None:
            time.sleep(0.01)
        self.loop.call_soon_threadsafe(self.agent.stop.set)
        self.thread.join(timeout)
        return self.exit_code

    def lines(self) -> list[str]:
        return self.out.getvalue().splitlines()


def request(request_id: str, path: str = "/echo", **kwargs: Any) -> p.HttpRequest:
    return p.HttpRequest(request_id, kwargs.pop("method", "GET"), path, **kwargs)


def as_json(body: bytes) -> Any:
    return json.loads(body)


def until(check: Callable[[], bool], timeout: float = 5) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        assert time.monotonic() < deadline, "condition not met in time"
        time.sleep(0.01)
