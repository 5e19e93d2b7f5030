"""Tunnel agent: expose a local HTTP app through a deployed (or local) tunnel, like ngrok.

    .venv/bin/python scripts/tunnel_agent.py login --url wss://ID.execute-api.REGION.amazonaws.com/dev --token TOKEN
    .venv/bin/python scripts/tunnel_agent.py 3000            # or HOST:PORT, http(s)://HOST[:PORT]
    .venv/bin/python scripts/tunnel_agent.py --url WSS_URL --token TOKEN --port 3000 [--subdomain NAME]

Prints the public URL and the inspector's, then one line per request (time, method, path and
query, status as the client saw it, response size, duration). Requests are replayed exactly: no
redirect following, no decompression, hop-by-hop headers stripped, X-Forwarded-For/Proto/Host
added. A response too large for one WebSocket message is uploaded with the request's presigned
POST, whose policy bounds its size. The connection is kept alive with Ping messages inside API
Gateway's 10-minute idle limit, re-opened with backoff when it drops, and replaced by a fresh one
before API Gateway's 2-hour limit (requests in flight finish on the old one). Ctrl-C lets
requests in flight finish for a few seconds, then closes. `--help` has examples.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import http.client
import os
import random
import re
import select
import signal
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from http import HTTPStatus
from pathlib import Path
from typing import Any, TextIO
from urllib.parse import urlsplit

if __package__ in (None, ""):  # run as `python scripts/tunnel_agent.py`: make `lambdas` importable
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed, InvalidHandshake, InvalidStatus, InvalidURI

from lambdas.tunnel import protocol as p
from lambdas.tunnel.tokens import valid_subdomain
from scripts import tunnel_agent_login as login_config
from scripts.tunnel_inspector import DEFAULT_KEEP, PORT_TRIES, Exchange, Inspector, RequestLog

SUBDOMAIN_RULE = "3-63 characters of a-z, 0-9 and hyphens, starting and ending with a letter or digit"

EXIT_FATAL = 1
# After Ctrl-C, how long answers just sent get to be stored before the connection closes.
SETTLE_SECONDS = 1.0
EXIT_USAGE = 2


def human_size(size: int) -> str:
    if size < 1024:
        return f"{size} B"
    if size < 1024 * 1024:
        return f"{size / 1024:.1f} KB"
    return f"{size / 1024 / 1024:.1f} MB"


def path_routed(public_url: str) -> bool:
    """Whether the tunnel lives under `/t/NAME` of a shared host (not `NAME.domain`)."""
    return urlsplit(public_url).path.rstrip("/").startswith("/t/")


class Fatal(Exception):
    """A problem retrying cannot fix (bad token, taken subdomain, unreachable URL at start)."""


@dataclass
class AgentConfig:
    url: str
    token: str
    port: int
    host: str = "127.0.0.1"
    scheme: str = "http"
    host_header: str | None = None  # None: keep the public Host; "rewrite": host:port; else a value
    subdomain: str | None = None
    replace: bool = False  # take the name over from another live agent (which is told and exits)
    concurrency: int = 16
    request_timeout: float = 25.0
    ping_interval: float = 300.0  # API Gateway drops connections idle for 10 minutes
    pong_timeout: float = 30.0
    rotate_after: float = 110 * 60.0  # API Gateway closes every connection after 2 hours
    drain_grace: float = 10.0
    max_backoff: float = 30.0
    handshake_timeout: float = 10.0
    stop_timeout: float = 5.0  # Ctrl-C: how long requests in flight may take to finish
    inspect_port: int | None = None  # the request inspector's first port to try; None: no inspector
    inspect_keep: int = DEFAULT_KEEP


class LocalForwarder:
    """Replays one HttpRequest against the local app (blocking; runs in a worker thread).

    http.client because it does exactly what it is told: no redirects, no decompression, the
    request target sent as given, every response header pair (each Set-Cookie) kept."""

    def __init__(self, config: AgentConfig) -> None:
        self.config = config

    def _host_header(self, original: str | None) -> str:
        target = f"{self.config.host}:{self.config.port}"
        if self.config.host_header == "rewrite" or (self.config.host_header is None and not original):
            return target
        return self.config.host_header or original or target

    def _headers(self, request: p.HttpRequest) -> tuple[str, p.Headers]:
        headers = p.strip_hop_by_hop(request.headers)
        lower = {k.lower(): v for k, v in headers}
        original_host = lower.get("host")
        out = [(k, v) for k, v in headers if k.lower() not in ("host", "content-length")]
        if "x-forwarded-for" not in lower and request.client_ip:
            out.append(("X-Forwarded-For", request.client_ip))
        if "x-forwarded-proto" not in lower:
            out.append(("X-Forwarded-Proto", "https"))
        if "x-forwarded-host" not in lower and original_host:
            out.append(("X-Forwarded-Host", original_host))
        return self._host_header(original_host), out

    def forward(self, request: p.HttpRequest) -> p.Message:
        """The app's answer as the tunnel takes it (a large body uploaded), or an Error."""
        answer = self.answer(request)
        return self.deliverable(request, answer) if isinstance(answer, p.HttpResponse) else answer

    def answer(self, request: p.HttpRequest) -> p.HttpResponse | p.Error:
        """The app's whole answer, or an Error. A body that came through S3 is fetched first and
        kept on the request (the inspector shows it and Replay sends it again)."""
        try:
            if request.body_url:
                with urllib.request.urlopen(request.body_url, timeout=30) as got:  # presigned S3 GET
                    request.body, request.body_url = got.read(p.MAX_BODY_BYTES + 1), None
            return self._call_app(request, request.body)
        except (OSError, http.client.HTTPException) as exc:
            kind = "upstream_timeout" if isinstance(exc, TimeoutError) else "upstream_unreachable"
            return p.Error(code=kind, message=f"{type(exc).__name__}: {exc}", request_id=request.request_id)
        except Exception as exc:  # a bad header value, say: answer instead of leaving the client hanging
            return p.Error(code="agent_error", message=f"{type(exc).__name__}: {exc}", request_id=request.request_id)

    def deliverable(self, request: p.HttpRequest, app_response: p.HttpResponse) -> p.Message:
        """The response message: inline, or with its body uploaded through the presigned POST."""
        response = p.HttpResponse(**vars(app_response))  # the app's answer stays whole for the inspector
        if not p.fits_inline(response):
            if not request.response_upload_url or request.response_upload_fields is None:
                return p.Error("response_too_large", "no upload form for a large body", request.request_id)
            try:
                upload_form(request.response_upload_url, request.response_upload_fields, response.body)
            except UploadRefused as exc:
                code = "response_too_large" if exc.code == "EntityTooLarge" else "upload_refused"
                return p.Error(code, str(exc), request.request_id)
            except OSError as exc:
                return p.Error("upload_failed", f"{type(exc).__name__}: {exc}", request.request_id)
            response.body, response.body_in_bucket = b"", True
        return response

    def _call_app(self, request: p.HttpRequest, body: bytes) -> p.HttpResponse:
        host_header, headers = self._headers(request)
        cls = http.client.HTTPSConnection if self.config.scheme == "https" else http.client.HTTPConnection
        conn = cls(self.config.host, self.config.port, timeout=self.config.request_timeout)
        try:
            conn.putrequest(request.method, request.target, skip_host=True, skip_accept_encoding=True)
            conn.putheader("Host", host_header)
            for name, value in headers:
                conn.putheader(name, value)
            if body or request.method in ("POST", "PUT", "PATCH"):
                conn.putheader("Content-Length", str(len(body)))
            conn.endheaders()
            self._send_body(conn, body)
            answer = conn.getresponse()
            data = answer.read(p.MAX_BODY_BYTES + 1)
            if len(data) > p.MAX_BODY_BYTES:
                return p.HttpResponse(
                    request.request_id, 502, [("content-type", "application/json")],
                    p.json_error("response body larger than the tunnel's 5 MiB limit"),
                )  # fmt: skip
            # Content-Length describes the body the gateway sends, except for HEAD, where it is
            # the size a GET would have (and there is no body to measure).
            keep_length = request.method == "HEAD"
            headers_out = [(k, v) for k, v in answer.getheaders() if keep_length or k.lower() != "content-length"]
            return p.HttpResponse(request.request_id, answer.status, p.strip_hop_by_hop(headers_out), data)
        finally:
            conn.close()

    @staticmethod
    def _send_body(conn: http.client.HTTPConnection, body: bytes) -> None:
        """Send the body in chunks, stopping early if the app has already answered (a 401, a 413,
        a redirect before reading an upload): its answer is what the client must get, and an app
        that closes after answering would otherwise turn it into a broken pipe."""
        sock = conn.sock
        view = memoryview(body)
        for start in range(0, len(body), 64 * 1024):
            if sock is None or select.select([sock], [], [], 0)[0]:
                return
            try:
                sock.sendall(view[start : start + 64 * 1024])
            except (BrokenPipeError, ConnectionResetError):
                return  # the app stopped reading: read whatever it answered


class UploadRefused(Exception):
    """S3 refused the upload form (EntityTooLarge past the policy's size bound, an expired form)."""

    def __init__(self, status: int, code: str, size: int) -> None:
        super().__init__(f"S3 refused the {size}-byte response body: HTTP {status} {code}")
        self.code = code


def upload_form(url: str, fields: dict[str, str], body: bytes) -> None:
    """POST `body` with the presigned form: multipart/form-data, every field before the file."""
    boundary = f"tunnel-{os.urandom(12).hex()}"
    parts = [
        f'--{boundary}\r\nContent-Disposition: form-data; name="{name}"\r\n\r\n{value}\r\n'.encode()
        for name, value in fields.items()
    ]
    head = f'--{boundary}\r\nContent-Disposition: form-data; name="file"; filename="body"\r\n'
    head += "Content-Type: application/octet-stream\r\n\r\n"
    data = b"".join([*parts, head.encode(), body, f"\r\n--{boundary}--\r\n".encode()])
    post = urllib.request.Request(
        url, data=data, method="POST", headers={"Content-Type": f"multipart/form-data; boundary={boundary}"}
    )
    try:
        with urllib.request.urlopen(post, timeout=20) as done:
            done.read()
    except urllib.error.HTTPError as exc:
        detail = exc.read(4096).decode("utf-8", "replace")
        match = re.search(r"<Code>([^<]+)</Code>", detail)
        raise UploadRefused(exc.code, match.group(1) if match else "error", len(body)) from None


class Session:
    """One WebSocket connection: handshake, message loop, pings, in-flight accounting."""

    def __init__(
        self, ws: ClientConnection, established: p.ConnectionEstablished, early: list[p.HttpRequest] | None = None
    ) -> None:
        self.ws = ws
        self.established = established
        # Requests that arrived before ConnectionEstablished: the response handler makes the
        # connection routable before it posts the handshake reply, so a forwarder can win the race.
        self.early = early or []
        self.opened_at = time.monotonic()
        self.last_seen = time.monotonic()
        self.inflight = 0
        self._send_lock = asyncio.Lock()

    @classmethod
    async def open(
        cls, config: AgentConfig, subdomain: str | None, replaces: str | None = None, replace: bool = False
    ) -> Session:
        headers = {"Authorization": f"Bearer {config.token}"}
        if subdomain:
            headers["X-Tunnel-Subdomain"] = subdomain
        if replaces:  # our own earlier connection (rotation, reconnect): not another agent
            headers["X-Tunnel-Rotate"] = replaces
        if replace:
            headers["X-Tunnel-Replace"] = "true"
        ws = await connect(
            config.url,
            additional_headers=headers,
            open_timeout=config.handshake_timeout,
            ping_interval=None,  # API Gateway does not count control frames as activity: Ping messages do
            compression=None,
            max_size=p.MAX_MESSAGE_BYTES * 2,
        )
        try:
            await ws.send(p.encode(p.Ready()))
            early: list[p.HttpRequest] = []
            async with asyncio.timeout(config.handshake_timeout):
                while True:
                    message = p.decode(await ws.recv())
                    if isinstance(message, p.ConnectionEstablished):
                        return cls(ws, message, early)
                    if isinstance(message, p.HttpRequest):
                        early.append(message)
                        continue
                    if isinstance(message, p.Error):
                        raise Fatal(f"tunnel refused the agent: {message.message}")
        except BaseException:
            await ws.close()
            raise

    async def send(self, message: p.Message) -> None:
        # API Gateway takes at most 32 KB per frame: larger messages go out fragmented.
        async with self._send_lock:
            await self.ws.send(p.frames(p.encode(message)))

    async def close(self) -> None:
        await self.ws.close()


class Agent:
    def __init__(self, config: AgentConfig, out: TextIO = sys.stdout, err: TextIO = sys.stderr) -> None:
        self.config = config
        self.out, self.err = out, err
        self.forwarder = LocalForwarder(config)
        self.pool = ThreadPoolExecutor(max_workers=config.concurrency, thread_name_prefix="tunnel")
        self.slots = asyncio.Semaphore(config.concurrency)
        self.subdomain = config.subdomain
        self.public_url: str | None = None
        self.stop = asyncio.Event()
        self.tasks: set[asyncio.Task[Any]] = set()
        self.connections_opened = 0
        self.last_connection: str | None = None
        self.replaced = False
        self.force = asyncio.Event()  # a second Ctrl-C: stop without waiting for requests in flight
        self.handling: set[asyncio.Task[Any]] = set()
        self.log = RequestLog(config.inspect_keep)
        self.inspector: Inspector | None = None
        self.inspector_notes: list[str] = []  # said under the Forwarding line

    def start_inspector(self) -> None:
        """Serve the inspector on the configured port or the next free one; say so if it moved."""
        first = self.config.inspect_port
        if first is None:
            return
        inspector = Inspector(self.log, self.replay)
        port = inspector.start(first)
        if port is None:
            last = first + PORT_TRIES - 1
            self.inspector_notes.append(f"inspector: ports {first}-{last} are busy; tunnelling without it")
            return
        if port != first:
            self.inspector_notes.append(f"inspector: port {first} is busy; using {port}")
        self.inspector = inspector
        self.inspector_notes.append(f"Inspector  {inspector.url}")

    def replay(self, exchange: Exchange) -> Exchange:
        """Send a logged request to the local app again (the inspector's thread; blocking)."""
        path, _, query = exchange.target.partition("?")
        request = p.HttpRequest(
            f"replay-{exchange.id}", exchange.method, path, query, list(exchange.request_headers),
            exchange.request_body,
        )  # fmt: skip
        started, wall = time.monotonic(), time.time()
        answer = self.forwarder.answer(request)
        ms = round((time.monotonic() - started) * 1000)
        status = answer.status if isinstance(answer, p.HttpResponse) else None
        replayed = self.log.record(request, wall, answer, status, ms, replay_of=exchange.id)
        self.say(self._line(replayed, f"replay of #{exchange.id}"))
        return replayed

    def say(self, line: str) -> None:
        print(line, file=self.out, flush=True)

    def _spawn(self, coro: Any) -> asyncio.Task[Any]:
        task = asyncio.create_task(coro)
        self.tasks.add(task)
        task.add_done_callback(self.tasks.discard)
        return task

    async def _open(self) -> Session:
        try:
            session = await Session.open(
                self.config, self.subdomain, self.last_connection, self.config.replace and not self.connections_opened
            )
        except InvalidStatus as exc:
            status = exc.response.status_code
            if status in (401, 403):
                raise Fatal(f"the tunnel rejected the token (HTTP {status}): check --token") from None
            if status == 409:
                raise Fatal(f"subdomain {self.subdomain!r} belongs to another token") from None
            if status == 423:
                raise Fatal(
                    f"tunnel {self.subdomain or 'of this token'!r} is already served by another agent: "
                    "stop that one, or add --replace to take it over"
                ) from None
            if status == 422:
                raise Fatal("this token already holds the most names it may: reuse one with --subdomain") from None
            if status == 400:
                raise Fatal(f"the tunnel refused --subdomain {self.subdomain!r}: {SUBDOMAIN_RULE}") from None
            raise
        self.connections_opened += 1
        self.last_connection = session.established.connection_id
        self.subdomain = session.established.subdomain
        if session.established.public_url != self.public_url:
            self.public_url = session.established.public_url
            target = f"{self.config.scheme}://{self.config.host}:{self.config.port}"
            self.say(f"Forwarding {self.public_url} -> {target}")
            for note in self.inspector_notes:
                self.say(note)
            self.inspector_notes = []
            if path_routed(self.public_url):
                self.say(
                    "warning: path tunnels (/t/NAME/) share one browser origin with every other tunnel on this "
                    "host (cookies, storage, fetch); a tunnel domain gives each tunnel its own"
                )
        self._spawn(self._receive(session))
        self._spawn(self._keepalive(session))
        return session

    async def _connect(self, first: bool) -> Session | None:
        """A new session, retrying with capped exponential backoff (and jitter) unless fatal."""
        delay = 1.0
        while not self.stop.is_set():
            try:
                return await self._open()
            except Fatal:
                raise
            except (OSError, InvalidHandshake, TimeoutError, ConnectionClosed, p.ProtocolError) as exc:
                if first:
                    raise Fatal(f"cannot connect to {self.config.url}: {exc}") from None
                self.say(f"connection failed ({exc}); retrying in {delay:.0f}s")
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self.stop.wait(), delay * random.uniform(0.8, 1.2))
            delay = min(delay * 2, self.config.max_backoff)
        return None

    async def _receive(self, session: Session) -> None:
        for request in session.early:
            session.inflight += 1
            self.handling.add(self._spawn(self._handle(session, request)))
        session.early = []
        with contextlib.suppress(ConnectionClosed):
            async for raw in session.ws:
                session.last_seen = time.monotonic()
                try:
                    message = p.decode(raw)
                except p.ProtocolError as exc:
                    self.say(f"ignored a bad message from the tunnel: {exc}")
                    continue
                if isinstance(message, p.HttpRequest):
                    session.inflight += 1
                    self.handling.add(self._spawn(self._handle(session, message)))
                elif isinstance(message, p.Ping):
                    await session.send(p.Pong(timestamp=message.timestamp))
                elif isinstance(message, p.Error) and message.code == "replaced":
                    self.say(f"Replaced: {message.message}; exiting")
                    self.replaced = True
                    self.stop.set()
                elif isinstance(message, p.Error):
                    self.say(f"tunnel error: {message.code}: {message.message}")

    async def _keepalive(self, session: Session) -> None:
        while session.ws.state.name == "OPEN":
            await asyncio.sleep(self.config.ping_interval)
            sent = time.monotonic()
            try:
                await session.send(p.Ping())
            except ConnectionClosed:
                return
            await asyncio.sleep(self.config.pong_timeout)
            if session.last_seen < sent:  # not even the Pong came back
                self.say("tunnel stopped answering; reconnecting")
                await session.close()
                return

    async def _handle(self, session: Session, request: p.HttpRequest) -> None:
        started, wall = time.monotonic(), time.time()
        # Past this the tunnel has answered the client 504 and drops a late answer.
        budget = request.timeout_ms / 1000 if request.timeout_ms is not None else self.config.request_timeout
        try:
            if self.stop.is_set():  # stopping: finish what is in flight, take nothing new
                refused = p.Error("agent_stopping", "the agent is shutting down", request.request_id)
                with contextlib.suppress(ConnectionClosed):
                    await session.send(refused)
                self.say(self._line(self.log.record(request, wall, refused, 502, 0), "agent stopping"))
                return
            loop = asyncio.get_running_loop()
            async with self.slots:
                answer = await loop.run_in_executor(self.pool, self.forwarder.answer, request)
                late = time.monotonic() - started > budget
                message: p.Message = answer
                if isinstance(answer, p.HttpResponse) and not late:
                    message = await loop.run_in_executor(self.pool, self.forwarder.deliverable, request, answer)
            ms = round((time.monotonic() - started) * 1000)
            if late:
                client_status, note = 504, f"the tunnel stopped waiting after {budget:.1f} s"
            elif isinstance(message, p.HttpResponse):
                message.processing_time_ms = ms
                client_status, note = message.status, ""
            else:
                client_status, note = 502, getattr(message, "code", "error")
            exchange = self.log.record(request, wall, answer, client_status, ms)
            self.say(self._line(exchange, note))
            if not late:
                with contextlib.suppress(ConnectionClosed):
                    await session.send(message)
        finally:
            session.inflight -= 1

    @staticmethod
    def _line(exchange: Exchange, note: str = "") -> str:
        """One ngrok-like line: time, method, path and query, status the client saw, size, duration."""
        status = exchange.client_status or exchange.status or 502
        status_text = str(status)
        with contextlib.suppress(ValueError):
            status_text = f"{status} {HTTPStatus(status).phrase}"
        if exchange.status is not None and exchange.status != status:
            note = f"app answered {exchange.status}" + (f"; {note}" if note else "")
        clock = time.strftime("%H:%M:%S", time.localtime(exchange.started))
        size = human_size(exchange.response_size) if exchange.status is not None else "-"
        line = f"{clock}  {exchange.method:<7} {exchange.target:<30} {status_text:<24} {size:>8} {exchange.duration_ms:>6} ms"
        return f"{line}  ({note})" if note else line

    async def _drain(self, session: Session) -> None:
        """Close a replaced connection once its requests are done (new ones go to the new one)."""
        deadline = time.monotonic() + self.config.request_timeout + self.config.drain_grace
        await asyncio.sleep(self.config.drain_grace)
        while session.inflight and time.monotonic() < deadline:
            await asyncio.sleep(0.05)
        await session.close()

    async def run(self) -> None:
        self.start_inspector()
        session = await self._connect(first=True)
        while session is not None and not self.stop.is_set():
            rotate_in = session.opened_at + self.config.rotate_after - time.monotonic()
            stop = asyncio.ensure_future(self.stop.wait())
            closed = asyncio.ensure_future(session.ws.wait_closed())
            await asyncio.wait({stop, closed}, timeout=max(rotate_in, 0), return_when=asyncio.FIRST_COMPLETED)
            stop.cancel()
            closed.cancel()
            if self.stop.is_set():
                break
            if session.ws.state.name != "OPEN":
                await asyncio.sleep(0.2)  # let the receiver read what came before the close (a "replaced")
                if self.stop.is_set():
                    break
                self.say("connection lost; reconnecting")
                session = await self._connect(first=False)
                continue
            try:  # rotation: the fresh connection takes new requests, the old one drains
                fresh = await self._open()
            except Fatal:
                raise
            except Exception as exc:
                self.say(f"could not open a fresh connection ({exc}); keeping the current one")
                session.opened_at = time.monotonic() - self.config.rotate_after + 30
                continue
            self._spawn(self._drain(session))
            session = fresh
        await self.shutdown(session)

    async def _finish_in_flight(self) -> None:
        """Ctrl-C: let requests in flight finish, for at most `stop_timeout` (a second Ctrl-C: now)."""
        running = [task for task in self.handling if not task.done()]
        if not running or self.force.is_set():
            return
        count = f"{len(running)} request{'s' if len(running) != 1 else ''}"
        self.say(
            f"Stopping: waiting up to {self.config.stop_timeout:g} s for {count} in flight (Ctrl-C again to quit now)"
        )
        everything = asyncio.ensure_future(asyncio.wait(running))
        forced = asyncio.ensure_future(self.force.wait())
        await asyncio.wait({everything, forced}, timeout=self.config.stop_timeout, return_when=asyncio.FIRST_COMPLETED)
        everything.cancel()
        forced.cancel()
        left = sum(not task.done() for task in running)
        if left:
            self.say(f"{left} request{'s' if left != 1 else ''} still in flight: closing without them")
        if left < len(running) and not self.force.is_set():
            # The gateway hands the last answers and our close to separate handler invocations,
            # in no fixed order; a $disconnect that ran first would fail those requests with 502.
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self.force.wait(), SETTLE_SECONDS)

    async def shutdown(self, session: Session | None) -> None:
        await self._finish_in_flight()
        if session is not None:
            await session.close()
        if self.inspector is not None:
            await asyncio.get_running_loop().run_in_executor(None, self.inspector.stop)
        for task in list(self.tasks):
            task.cancel()
        await asyncio.gather(*self.tasks, return_exceptions=True)
        self.pool.shutdown(wait=False, cancel_futures=True)


EXAMPLES = """\
examples:
  # once: keep the tunnel's URL and token (mode 0600, see "login --help" for where)
  tunnel_agent.py login --url wss://ID.execute-api.REGION.amazonaws.com/dev --token TOKEN
  # then expose the app on port 3000 (or "localhost:8080", "https://127.0.0.1:8443")
  tunnel_agent.py 3000
  # a stable name, taken over from another agent serving it
  tunnel_agent.py 3000 --subdomain my-demo --replace
  # without login: flags, or TUNNEL_URL and TUNNEL_TOKEN in the environment
  TUNNEL_URL=wss://... TUNNEL_TOKEN=TOKEN tunnel_agent.py 3000
  tunnel_agent.py --url wss://... --token TOKEN --port 3000

Each request prints one line: time, method, path and query, the status the client got (504 when
the app answered after the tunnel stopped waiting), response size and duration. The inspector at
http://127.0.0.1:4040 (the next free port if taken) lists the last requests with their headers
and bodies and replays one on a click. Ctrl-C lets requests in flight finish (--stop-timeout
seconds), a second Ctrl-C quits at once.
"""


def parse_target(text: str) -> tuple[str, str, int]:
    """(scheme, host, port) from `3000`, `HOST:PORT` or `http(s)://HOST[:PORT]`."""
    if text.isdigit():
        return "http", "127.0.0.1", int(text)
    parts = urlsplit(text if "://" in text else f"http://{text}")
    try:
        port = parts.port or (443 if parts.scheme == "https" else 80)
    except ValueError:
        raise ValueError(f"bad port in {text!r}") from None
    if parts.scheme not in ("http", "https") or not parts.hostname or parts.path not in ("", "/"):
        raise ValueError(f"expected a port, HOST:PORT or http(s)://HOST[:PORT], got {text!r}")
    return parts.scheme, parts.hostname, port


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="tunnel_agent.py",
        description="Expose a local HTTP app through the tunnel (`login` saves the URL and token once).",
        epilog=EXAMPLES,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("target", nargs="?", help="the local app: PORT, HOST:PORT or http(s)://HOST[:PORT]")
    parser.add_argument("--url", help=f"tunnel WebSocket URL, wss://... (or {login_config.URL_ENV}, or login)")
    parser.add_argument("--token", help=f"agent token (or {login_config.TOKEN_ENV}, or login)")
    parser.add_argument("--port", type=int, help="local port (the same as a PORT target)")
    parser.add_argument("--host", help="target host (default 127.0.0.1)")
    parser.add_argument("--scheme", choices=("http", "https"), help="target scheme (default http)")
    parser.add_argument(
        "--host-header", help="'rewrite' to send HOST:PORT as Host, or a literal value (default: public host)"
    )
    parser.add_argument("--subdomain", help="ask for a stable subdomain (first token to claim it owns it)")
    parser.add_argument(
        "--replace", action="store_true", help="take the name over from another agent serving it (it exits)"
    )
    parser.add_argument("--concurrency", type=int, default=16, help="requests forwarded at once (default 16)")
    parser.add_argument(
        "--inspect-port", type=int, default=4040, help="request inspector port (default 4040; busy: the next free)"
    )
    parser.add_argument("--no-inspect", action="store_true", help="no request inspector")
    parser.add_argument(
        "--stop-timeout", type=float, default=5.0, help="Ctrl-C: seconds requests in flight may take (default 5)"
    )
    parser.add_argument("--config", type=Path, help=f"saved login (default {login_config.config_path()})")
    # For tests and operators who need shorter cycles than API Gateway's limits.
    parser.add_argument("--ping-interval", type=float, default=300.0, help=argparse.SUPPRESS)
    parser.add_argument("--rotate-after", type=float, default=110 * 60.0, help=argparse.SUPPRESS)
    return parser


def _check_url(parser: argparse.ArgumentParser, url: str) -> None:
    parts = urlsplit(url)
    if parts.scheme not in ("ws", "wss") or not parts.hostname:
        parser.exit(EXIT_USAGE, f"error: --url must be a ws:// or wss:// URL, got {url!r}\n")


def _parse(argv: list[str] | None) -> AgentConfig:
    parser = _parser()
    args = parser.parse_args(argv)
    try:
        saved = login_config.load(args.config or login_config.config_path())
    except login_config.ConfigError as exc:
        parser.exit(EXIT_USAGE, f"error: {exc}\n")
    url = login_config.resolve(args.url, login_config.URL_ENV, saved, "url")
    token = login_config.resolve(args.token, login_config.TOKEN_ENV, saved, "token")
    if not url:
        parser.exit(
            EXIT_USAGE,
            f"error: no tunnel URL: pass --url, set {login_config.URL_ENV}, or run `tunnel_agent.py login` once\n",
        )
    _check_url(parser, url)
    if not token:
        parser.exit(
            EXIT_USAGE, f"error: --token (or {login_config.TOKEN_ENV}, or `tunnel_agent.py login`) is required\n"
        )
    if args.target and args.port:
        parser.exit(EXIT_USAGE, "error: give the local app once: a target or --port, not both\n")
    if not args.target and not args.port:
        parser.exit(EXIT_USAGE, "error: which local app? e.g. `tunnel_agent.py 3000` (or --port 3000)\n")
    try:
        scheme, host, port = parse_target(args.target) if args.target else ("http", "127.0.0.1", args.port)
    except ValueError as exc:
        parser.exit(EXIT_USAGE, f"error: {exc}\n")
    if args.subdomain and not valid_subdomain(args.subdomain.lower()):
        parser.exit(EXIT_USAGE, f"error: --subdomain {args.subdomain!r}: {SUBDOMAIN_RULE}\n")
    if not 0 < port < 65536 or args.concurrency < 1 or not 0 < args.inspect_port < 65536:
        parser.exit(EXIT_USAGE, "error: ports must be 1-65535 and --concurrency at least 1\n")
    return AgentConfig(
        url=url,
        token=token,
        port=port,
        host=args.host or host,
        scheme=args.scheme or scheme,
        host_header=args.host_header,
        subdomain=args.subdomain.lower() if args.subdomain else None,
        replace=args.replace,
        concurrency=args.concurrency,
        ping_interval=args.ping_interval,
        rotate_after=args.rotate_after,
        stop_timeout=max(0.0, args.stop_timeout),
        inspect_port=None if args.no_inspect else args.inspect_port,
    )


def login(argv: list[str]) -> int:
    """`login --url URL --token TOKEN`: save them for the short form (`tunnel_agent.py 3000`)."""
    path = login_config.config_path()
    parser = argparse.ArgumentParser(
        prog="tunnel_agent.py login",
        description=f"Save the tunnel's WebSocket URL and token to {path} (mode 0600; under "
        "$XDG_CONFIG_HOME when set), so that `tunnel_agent.py PORT` needs neither.",
    )
    parser.add_argument("--url", required=True, help="tunnel WebSocket URL (wss://...)")
    parser.add_argument("--token", default=os.environ.get(login_config.TOKEN_ENV), help="agent token")
    parser.add_argument("--config", type=Path, default=path, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    _check_url(parser, args.url)
    if not args.token:
        parser.exit(EXIT_USAGE, f"error: --token (or {login_config.TOKEN_ENV}) is required\n")
    try:
        login_config.save(args.config, args.url, args.token)
    except OSError as exc:
        parser.exit(EXIT_FATAL, f"error: cannot write {args.config}: {exc}\n")
    print(f"Saved the tunnel URL and token to {args.config} (readable by you only)")
    return 0


async def run_agent(agent: Agent, install_signals: Callable[[Agent], None] | None = None) -> int:
    if install_signals:
        install_signals(agent)
    try:
        await agent.run()
    except Fatal as exc:
        await agent.shutdown(None)
        print(f"error: {exc}", file=agent.err, flush=True)
        return EXIT_FATAL
    except InvalidURI as exc:
        await agent.shutdown(None)
        print(f"error: bad --url: {exc}", file=agent.err, flush=True)
        return EXIT_USAGE
    agent.say("Tunnel closed")
    return EXIT_FATAL if agent.replaced else 0


def _signals(agent: Agent) -> None:
    """The first Ctrl-C (or SIGTERM) stops, letting requests in flight finish; a second one forces."""

    def interrupted() -> None:
        (agent.force if agent.stop.is_set() else agent.stop).set()

    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, interrupted)


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if argv[:1] == ["login"]:
        return login(argv[1:])
    config = _parse(argv)

    async def _main() -> int:
        return await run_agent(Agent(config), _signals)

    code = asyncio.run(_main())
    # A request still in the app past --stop-timeout holds a worker thread, which the interpreter
    # would wait for at exit: everything is closed and said by now, so leave at once.
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(code)


if __name__ == "__main__":
    sys.exit(main())
