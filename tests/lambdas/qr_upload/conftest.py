"""Fixtures for the QR-upload handler tests: moto resources with the stack's key schema, and a
local `@connections` endpoint (real HTTP) standing in for API Gateway's management API."""

from __future__ import annotations

import json
import logging
import os
import sys
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import unquote

import pytest
from moto import mock_aws

from lambdas.common import containers

from .helpers import BUCKET, KEY_PAIR_ID, PHOTO_LINKS_URL, REGION, SIGNING_SECRET, TABLE, create_resources

# Powertools reads these when the handler modules are imported (at collection), so set them now.
os.environ.setdefault("POWERTOOLS_SERVICE_NAME", "qr-upload")
os.environ.setdefault("POWERTOOLS_METRICS_NAMESPACE", "QrUploadTests")
os.environ.setdefault("POWERTOOLS_TRACE_DISABLED", "true")


class _CurrentStdout:
    def write(self, text: str) -> int:
        return sys.stdout.write(text)

    def flush(self) -> None:
        sys.stdout.flush()


@pytest.fixture(autouse=True)
def qr_env(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    for name, value in {
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
        "AWS_SESSION_TOKEN": "testing",
        "AWS_DEFAULT_REGION": REGION,
        "AWS_REGION": REGION,
        "SESSIONS_TABLE_NAME": TABLE,
        "UPLOAD_BUCKET_NAME": BUCKET,
        "WS_API_ENDPOINT": "w9x8y7z6v5.execute-api.eu-west-1.amazonaws.com/dev",
        "PHOTO_LINKS_URL": PHOTO_LINKS_URL,
        "PHOTO_KEY_PAIR_ID": KEY_PAIR_ID,
        "PHOTO_SIGNING_SECRET_ARN": SIGNING_SECRET,
    }.items():
        monkeypatch.setenv(name, value)
    for name in ("AWS_ENDPOINT_URL", "MAX_UPLOAD_BYTES", "SESSION_TTL_SECONDS", "AWS_PROFILE"):
        monkeypatch.delenv(name, raising=False)
    # Powertools' handler keeps the sys.stdout of its creation; make it follow pytest's capture
    # of whichever test runs (setStream would flush the old, possibly closed, stream).
    for module in ("lambdas.qr_upload.http_api", "lambdas.qr_upload.websocket_events"):
        if module in sys.modules:
            for handler in sys.modules[module].logger.handlers:
                if isinstance(handler, logging.StreamHandler):
                    handler.stream = _CurrentStdout()
    yield


@pytest.fixture
def aws() -> Iterator[None]:
    with mock_aws():
        create_resources()
        yield


class ConnectionsServer(ThreadingHTTPServer):
    """Answers `POST /{stage}/@connections/{id}` like API Gateway: 200, 410 Gone, or 500."""

    def __init__(self) -> None:
        super().__init__(("127.0.0.1", 0), _ConnectionsHandler)
        self.posts: list[tuple[str, str, dict[str, Any]]] = []  # (path stage, connection id, message)
        self.gone: set[str] = set()
        self.failures = 0  # how many next requests answer 500
        self.before_gone: Any = None  # callable(connection_id) run before answering 410
        self.lock = threading.Lock()

    @property
    def endpoint(self) -> str:
        return f"http://127.0.0.1:{self.server_address[1]}/dev"


class _ConnectionsHandler(BaseHTTPRequestHandler):
    server: ConnectionsServer

    def do_POST(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length)
        parts = self.path.split("/")  # ['', 'dev', '@connections', '<id>']
        if len(parts) != 4 or unquote(parts[2]) != "@connections":
            return self._reply(404, "NotFoundException", "no such route")
        connection_id = unquote(parts[3])
        with self.server.lock:
            if self.server.failures > 0:
                self.server.failures -= 1
                return self._reply(500, "InternalServerErrorException", "try again")
            if connection_id in self.server.gone:
                if self.server.before_gone:
                    self.server.before_gone(connection_id)
                return self._reply(410, "GoneException", "connection is gone")
            self.server.posts.append((parts[1], connection_id, json.loads(body)))
        self._reply(200, None, None)

    def _reply(self, status: int, error: str | None, message: str | None) -> None:
        payload = json.dumps({"message": message}).encode() if error else b""
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        if error:
            self.send_header("x-amzn-ErrorType", error)
        self.send_header("Content-Length", str(len(payload)))
        self.end_headers()
        self.wfile.write(payload)

    def log_message(self, format: str, *args: Any) -> None:
        pass


@pytest.fixture
def connections(monkeypatch: pytest.MonkeyPatch) -> Iterator[ConnectionsServer]:
    server = ConnectionsServer()
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    monkeypatch.setenv("WS_API_ENDPOINT", server.endpoint)
    containers.reset()  # settings were read before the endpoint changed
    try:
        yield server
    finally:
        server.shutdown()
        server.server_close()
        thread.join(5)
