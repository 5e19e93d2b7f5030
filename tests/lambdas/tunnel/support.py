"""Test support for the tunnel: the tables as the stack defines them, events, a fake `@connections`.

`FakeManagementApi` is a real HTTP server speaking the API Gateway management API's wire format,
so the handlers' boto3 client talks to it for real (moto accepts posts but delivers nothing).
Each posted message is handed to a callback on its own thread, as a real agent would answer
asynchronously while the forwarder polls.
"""

from __future__ import annotations

import json
import re
import threading
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import unquote

from lambdas.common import aws
from tests.lambdas.common.fakes import load_event

CONNECTIONS = "tunnel-connections"
PENDING = "tunnel-pending"
TOKENS = "tunnel-tokens"
BUCKET = "tunnel-bodies"


def event(name: str) -> dict[str, Any]:
    return load_event("tunnel", f"{name}.json")


def create_tokens_table(name: str = TOKENS) -> None:
    aws.client("dynamodb").create_table(
        TableName=name,
        KeySchema=[{"AttributeName": "pk", "KeyType": "HASH"}, {"AttributeName": "sk", "KeyType": "RANGE"}],
        AttributeDefinitions=[
            {"AttributeName": "pk", "AttributeType": "S"},
            {"AttributeName": "sk", "AttributeType": "S"},
        ],
        BillingMode="PAY_PER_REQUEST",
    )


def create_resources() -> None:
    ddb = aws.client("dynamodb")
    ddb.create_table(
        TableName=CONNECTIONS,
        KeySchema=[{"AttributeName": "connectionId", "KeyType": "HASH"}],
        AttributeDefinitions=[
            {"AttributeName": "connectionId", "AttributeType": "S"},
            {"AttributeName": "publicSubdomain", "AttributeType": "S"},
            {"AttributeName": "createdAt", "AttributeType": "N"},
            {"AttributeName": "tokenId", "AttributeType": "S"},
        ],
        GlobalSecondaryIndexes=[
            {
                "IndexName": "subdomain-index",
                "KeySchema": [
                    {"AttributeName": "publicSubdomain", "KeyType": "HASH"},
                    {"AttributeName": "createdAt", "KeyType": "RANGE"},
                ],
                "Projection": {"ProjectionType": "KEYS_ONLY"},
            },
            {
                "IndexName": "token-index",
                "KeySchema": [{"AttributeName": "tokenId", "KeyType": "HASH"}],
                "Projection": {"ProjectionType": "KEYS_ONLY"},
            },
        ],
        BillingMode="PAY_PER_REQUEST",
    )
    ddb.create_table(
        TableName=PENDING,
        KeySchema=[{"AttributeName": "requestId", "KeyType": "HASH"}],
        AttributeDefinitions=[
            {"AttributeName": "requestId", "AttributeType": "S"},
            {"AttributeName": "connectionId", "AttributeType": "S"},
        ],
        GlobalSecondaryIndexes=[
            {
                "IndexName": "connection-index",
                "KeySchema": [{"AttributeName": "connectionId", "KeyType": "HASH"}],
                "Projection": {"ProjectionType": "KEYS_ONLY"},
            }
        ],
        BillingMode="PAY_PER_REQUEST",
    )
    create_tokens_table()
    aws.client("s3").create_bucket(Bucket=BUCKET)


class FakeManagementApi:
    """`POST /{stage}/@connections/{id}`: 200 and a callback, or 410 GoneException."""

    def __init__(self, on_message: Callable[[str, bytes], None] | None = None) -> None:
        self.on_message = on_message
        self.gone: set[str] = set()
        self.posts: list[tuple[str, bytes]] = []
        self.threads: list[threading.Thread] = []
        self.ready = False
        api = self

        class Handler(BaseHTTPRequestHandler):
            def _json(self, status: int, body: bytes, *extra: tuple[str, str]) -> None:
                self.send_response(status)
                for name, value in extra:
                    self.send_header(name, value)
                self.send_header("content-type", "application/json")
                self.send_header("content-length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def _gone(self) -> None:
                self._json(410, b'{"message":"Gone"}', ("x-amzn-ErrorType", "GoneException"))

            def _connection_id(self) -> str | None:
                match = re.match(r"^/[^/]+/@connections/([^/?]+)$", self.path)
                return unquote(match.group(1)) if match else None

            def do_POST(self) -> None:
                length = int(self.headers.get("content-length", "0"))
                data = self.rfile.read(length)
                connection_id = self._connection_id()
                if connection_id is None:
                    self.send_response(404)
                    self.end_headers()
                    return
                if connection_id in api.gone:
                    self._gone()
                    return
                api.posts.append((connection_id, data))
                self.send_response(200)
                self.send_header("content-length", "0")
                self.end_headers()
                if api.on_message:
                    thread = threading.Thread(target=api.on_message, args=(connection_id, data), daemon=True)
                    api.threads.append(thread)
                    thread.start()

            def _lookup(self) -> str | None:
                connection_id = self._connection_id()
                if connection_id is None or connection_id in api.gone:
                    self._gone()
                    return None
                return connection_id

            def do_GET(self) -> None:  # GetConnection
                if self._lookup() is not None:
                    self._json(200, b'{"connectedAt":"2026-01-01T00:00:00.000Z","identity":{"sourceIp":"127.0.0.1"}}')

            def do_DELETE(self) -> None:  # DeleteConnection: the connection is gone afterwards
                connection_id = self._lookup()
                if connection_id is not None:
                    api.deleted.append(connection_id)
                    api.gone.add(connection_id)
                    self.send_response(204)
                    self.end_headers()

            def log_message(self, *args: Any) -> None:
                pass

        self.deleted: list[str] = []
        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.endpoint = f"http://127.0.0.1:{self.server.server_address[1]}/dev"
        self._thread = threading.Thread(target=self.server.serve_forever, args=(0.05,), daemon=True)

    def reset(self) -> None:
        for thread in self.threads:
            thread.join(timeout=5)
        self.on_message = None
        self.gone.clear()
        self.deleted.clear()
        self.posts.clear()
        self.threads.clear()
        self.ready = False

    def __enter__(self) -> FakeManagementApi:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.shutdown()
        self.server.server_close()
        for thread in self.threads:
            thread.join(timeout=5)

    def messages(self, connection_id: str | None = None) -> list[dict[str, Any]]:
        return [json.loads(data) for cid, data in self.posts if connection_id in (None, cid)]


class FakeAgent:
    """Answers each HttpRequest posted to the fake management API through the real response
    handler, moving large bodies through the presigned URLs exactly as the agent CLI does."""

    def __init__(self, answer: Callable[[Any], Any], context: Any) -> None:
        self.answer = answer
        self.context = context
        self.requests: list[Any] = []
        self.errors: list[BaseException] = []

    def __call__(self, connection_id: str, data: bytes) -> None:
        import requests

        from lambdas.tunnel import protocol as p
        from lambdas.tunnel import response as response_handler

        try:
            message = p.decode(data)
            if not isinstance(message, p.HttpRequest):
                return
            if message.body_url:
                got = requests.get(message.body_url, timeout=5)
                got.raise_for_status()
                message.body = got.content
            self.requests.append(message)
            reply = self.answer(message)
            if reply is None:
                return
            if isinstance(reply, p.HttpResponse) and not p.fits_inline(reply):
                assert message.response_upload_url and message.response_upload_fields is not None
                form = requests.post(
                    message.response_upload_url, data=message.response_upload_fields, files={"file": reply.body},
                    timeout=5,
                )  # fmt: skip
                form.raise_for_status()
                reply.body, reply.body_in_bucket = b"", True
            send(response_handler.handler, connection_id, p.encode(reply), self.context)
        except BaseException as exc:  # surfaced by the test through .errors
            self.errors.append(exc)


def send(handler: Callable[..., Any], connection_id: str, body: str, context: Any) -> Any:
    evt = event("message")
    evt["requestContext"]["connectionId"] = connection_id
    evt["body"] = body
    return handler(evt, context)


def connect_event(
    connection_id: str, token: str | None, subdomain: str | None = None, **headers: str
) -> dict[str, Any]:
    evt = event("connect")
    evt["requestContext"]["connectionId"] = connection_id
    if token is not None:
        evt["headers"]["Authorization"] = f"Bearer {token}"
    if subdomain is not None:
        evt["headers"]["X-Tunnel-Subdomain"] = subdomain
    for name, value in headers.items():  # x_tunnel_replace="true" -> X-Tunnel-Replace: true
        evt["headers"]["-".join(part.capitalize() for part in name.split("_"))] = value
    return evt


def new_token(label: str = "test") -> str:
    from lambdas.tunnel.store import TokenStore
    from lambdas.tunnel.tokens import new_token as make

    token_id, token, secret_hash = make()
    TokenStore(TOKENS).put(token_id, secret_hash, label)
    return token
