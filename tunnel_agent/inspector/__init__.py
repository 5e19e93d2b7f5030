"""The agent's request inspector: the last requests through the tunnel, on a local page.

A stdlib HTTP server on loopback (default http://127.0.0.1:4040, like ngrok's) with one static
page (`page.html`, `page.js`) and a small JSON API:

    GET  /api/requests              the last requests, newest first (headers, body previews)
    GET  /api/requests/ID           one of them
    POST /api/requests/ID/replay    send it to the local app again; the answer is a new entry

Bodies are the tunnel users' data and untrusted HTML: the API returns them as JSON strings and the
page only ever sets them as text. The server answers only to its own Host (no DNS rebinding) and
replays only with its `X-Inspector` header (which no cross-site form or simple fetch can send), so
a web page the developer visits can neither read the captured requests nor replay them.
"""

from __future__ import annotations

import contextlib
import itertools
import json
import threading
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

from lambdas.tunnel import protocol as p

PREVIEW_BYTES = 4096
# Request bodies kept whole for Replay; a larger one is kept as a preview and cannot be replayed.
REPLAY_BODY_BYTES = 1024 * 1024
DEFAULT_KEEP = 50
PORT_TRIES = 10  # 4040 busy: 4041, ... as ngrok does
_STATIC = {
    "/": ("page.html", "text/html; charset=utf-8"),
    "/page.js": ("page.js", "text/javascript; charset=utf-8"),
}
_CSP = "default-src 'none'; script-src 'self'; connect-src 'self'; style-src 'unsafe-inline'; base-uri 'none'"
REPLAY_HEADER = "X-Inspector"


@dataclass
class Exchange:
    """One request through the tunnel (or one replay) and what came of it."""

    id: int
    started: float  # epoch seconds
    method: str
    target: str
    request_headers: p.Headers
    request_body: bytes
    request_size: int
    status: int | None = None  # the app's status; None if the app never answered
    response_headers: p.Headers = field(default_factory=list)
    response_body: bytes = b""
    response_size: int = 0
    client_status: int | None = None  # what the public client got (504 after the tunnel's timeout)
    error: str = ""
    duration_ms: int = 0
    replay_of: int | None = None

    @property
    def replayable(self) -> bool:
        return len(self.request_body) == self.request_size

    def to_json(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "started": self.started,
            "method": self.method,
            "target": self.target,
            "status": self.status,
            "client_status": self.client_status,
            "error": self.error,
            "duration_ms": self.duration_ms,
            "replay_of": self.replay_of,
            "replayable": self.replayable,
            "request": {
                "headers": [[k, v] for k, v in self.request_headers],
                "size": self.request_size,
                "body": preview(self.request_body),
            },
            "response": {
                "headers": [[k, v] for k, v in self.response_headers],
                "size": self.response_size,
                "body": preview(self.response_body),
            },
        }


def preview(body: bytes) -> dict[str, Any]:
    """The first bytes as text when they are text, else a note that they are binary."""
    head = body[:PREVIEW_BYTES]
    try:
        text = head.decode("utf-8")
    except UnicodeDecodeError as exc:
        if exc.start < len(head) - 3:  # not just a character cut at the preview's end
            return {"binary": True, "text": "", "truncated": len(body) > PREVIEW_BYTES}
        text = head[: exc.start].decode("utf-8")
    binary = "\x00" in text
    return {"binary": binary, "text": "" if binary else text, "truncated": len(body) > PREVIEW_BYTES}


class RequestLog:
    """The last `keep` exchanges, shared by the agent's event loop and the inspector's threads."""

    def __init__(self, keep: int = DEFAULT_KEEP) -> None:
        self._items: deque[Exchange] = deque(maxlen=keep)
        self._ids = itertools.count(1)
        self._lock = threading.Lock()

    def record(
        self,
        request: p.HttpRequest,
        started: float,
        answer: p.HttpResponse | p.Error,
        client_status: int | None,
        duration_ms: int,
        replay_of: int | None = None,
    ) -> Exchange:
        """Keep one finished request: its app answer (or the error) and what the client got."""
        body = request.body
        exchange = Exchange(
            id=next(self._ids),
            started=started,
            method=request.method,
            target=request.target,
            request_headers=list(request.headers),
            request_body=body if len(body) <= REPLAY_BODY_BYTES else body[:PREVIEW_BYTES],
            request_size=len(body),
            client_status=client_status,
            duration_ms=duration_ms,
            replay_of=replay_of,
        )
        if isinstance(answer, p.HttpResponse):
            exchange.status = answer.status
            exchange.response_headers = list(answer.headers)
            exchange.response_body = answer.body[: PREVIEW_BYTES + 1]
            exchange.response_size = len(answer.body)
        else:
            exchange.error = f"{answer.code}: {answer.message}"
        with self._lock:
            self._items.append(exchange)
        return exchange

    def recent(self) -> list[Exchange]:
        with self._lock:
            return list(reversed(self._items))

    def get(self, exchange_id: int) -> Exchange | None:
        with self._lock:
            return next((e for e in self._items if e.id == exchange_id), None)


# Sends an exchange's request to the local app again and returns the new exchange.
Replayer = Callable[[Exchange], Exchange]


class Inspector:
    def __init__(self, log: RequestLog, replay: Replayer, host: str = "127.0.0.1") -> None:
        self.log = log
        self.replay = replay
        self.host = host
        self.server: ThreadingHTTPServer | None = None

    @property
    def url(self) -> str:
        assert self.server is not None
        return f"http://{self.host}:{self.server.server_address[1]}"

    def start(self, port: int, tries: int = PORT_TRIES) -> int | None:
        """Serve on `port`, or the next free one of `tries`; the port, or None if all were busy."""
        handler = _handler(self)
        for candidate in range(port, port + tries):
            try:
                self.server = ThreadingHTTPServer((self.host, candidate), handler)
            except OSError:
                continue
            self.server.daemon_threads = True
            threading.Thread(target=self.server.serve_forever, args=(0.2,), name="inspector", daemon=True).start()
            return candidate
        return None

    def stop(self) -> None:
        if self.server is not None:
            self.server.shutdown()
            self.server.server_close()
            self.server = None


def _handler(inspector: Inspector) -> type[BaseHTTPRequestHandler]:
    """The inspector's request handler class, bound to `inspector`. Over 60 lines because it is one
    class body (a method per HTTP verb and a small sender), each method short."""
    static = Path(__file__).parent

    class Handler(BaseHTTPRequestHandler):
        server_version = "tunnel-inspector"

        def _send(self, status: int, body: bytes, content_type: str = "application/json") -> None:
            self.send_response(status)
            self.send_header("Content-Type", content_type)
            self.send_header("Content-Length", str(len(body)))
            self.send_header("Cache-Control", "no-store")
            self.send_header("X-Content-Type-Options", "nosniff")
            self.send_header("Content-Security-Policy", _CSP)
            self.send_header("Referrer-Policy", "no-referrer")
            self.end_headers()
            self.wfile.write(body)

        def _json(self, status: int, value: Any) -> None:
            self._send(status, json.dumps(value).encode())

        def _own_host(self) -> bool:
            port = inspector.server.server_address[1] if inspector.server else 0
            return self.headers.get("Host", "") in (f"127.0.0.1:{port}", f"localhost:{port}", f"[::1]:{port}")

        def _exchange(self, raw: str) -> Exchange | None:
            with contextlib.suppress(ValueError):
                return inspector.log.get(int(raw))
            return None

        def do_GET(self) -> None:
            if not self._own_host():
                return self._json(403, {"error": "the inspector answers only at its own address"})
            path = self.path.split("?")[0]
            if path in _STATIC:
                name, content_type = _STATIC[path]
                return self._send(200, (static / name).read_bytes(), content_type)
            if path == "/api/requests":
                return self._json(200, {"requests": [e.to_json() for e in inspector.log.recent()]})
            parts = path.strip("/").split("/")
            if len(parts) == 3 and parts[:2] == ["api", "requests"]:
                exchange = self._exchange(parts[2])
                if exchange is not None:
                    return self._json(200, exchange.to_json())
                return self._json(404, {"error": "no such request (only the last ones are kept)"})
            return self._json(404, {"error": "not found"})

        def do_POST(self) -> None:
            if not self._own_host() or self.headers.get(REPLAY_HEADER) != "replay":
                return self._json(403, {"error": f"replay needs the inspector's own page ({REPLAY_HEADER} header)"})
            parts = self.path.split("?")[0].strip("/").split("/")
            if len(parts) != 4 or parts[:2] != ["api", "requests"] or parts[3] != "replay":
                return self._json(404, {"error": "not found"})
            exchange = self._exchange(parts[2])
            if exchange is None:
                return self._json(404, {"error": "no such request (only the last ones are kept)"})
            if not exchange.replayable:
                return self._json(409, {"error": f"the request body was over {REPLAY_BODY_BYTES} bytes: not kept"})
            return self._json(200, inspector.replay(exchange).to_json())

        def log_message(self, *args: Any) -> None:  # the agent's own lines are the log
            pass

    return Handler
