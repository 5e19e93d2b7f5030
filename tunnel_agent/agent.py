"""Tunnel agent: expose a local HTTP app through a deployed (or local) tunnel, like ngrok.

    tunnel-agent login --url wss://ID.execute-api.REGION.amazonaws.com/dev --token TOKEN
    tunnel-agent 3000            # or HOST:PORT, http(s)://HOST[:PORT]
    tunnel-agent --url WSS_URL --token TOKEN --port 3000 [--subdomain NAME]

(`make setup` installs `tunnel-agent` into .venv/bin; `python -m tunnel_agent` and
`python scripts/tunnel_agent.py` with the same arguments are the same command.)

Prints the public URL and the inspector's, then one line per request (time, method, path and
query, status as the client saw it, response size, duration). Requests are replayed exactly: no
redirect following, no decompression, hop-by-hop headers stripped, X-Forwarded-For/Proto/Host
added. A response too large for one WebSocket message is uploaded with the request's presigned
POST, whose policy bounds its size. The connection is kept alive with Ping messages inside API
Gateway's 10-minute idle limit, re-opened with backoff when it drops, and replaced by a fresh one
before API Gateway's 2-hour limit (requests in flight finish on the old one). Ctrl-C lets
requests in flight finish for a few seconds, then closes. `--help` has examples.

Beside it in this package: `cli` (arguments, `login` and its file), `forwarder` (calls to the
local app, uploads), `inspector/` (the inspector's server and page).
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import random
import signal
import sys
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from http import HTTPStatus
from typing import Any, TextIO
from urllib.parse import urlsplit

from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed, InvalidHandshake, InvalidStatus, InvalidURI

from lambdas.tunnel import protocol as p
from tunnel_agent.cli import EXIT_FATAL, EXIT_USAGE, SUBDOMAIN_RULE, login, parse_args
from tunnel_agent.forwarder import AgentConfig, LocalForwarder
from tunnel_agent.inspector import PORT_TRIES, Exchange, Inspector, RequestLog

__all__ = ["Agent", "AgentConfig", "main", "run_agent"]

# After Ctrl-C, how long answers just sent get to be stored before the connection closes.
SETTLE_SECONDS = 1.0


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
    config = parse_args(argv)

    async def _main() -> int:
        return await run_agent(Agent(config), _signals)

    code = asyncio.run(_main())
    # A request still in the app past --stop-timeout holds a worker thread, which the interpreter
    # would wait for at exit: everything is closed and said by now, so leave at once.
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(code)
