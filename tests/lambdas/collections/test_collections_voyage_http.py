"""The platform's small Voyage client against the voyageai SDK: one stand-in server, the same
recorded responses (base64 float32, as the API answers the SDK's default request), the same vectors,
the same request and the same retryable/non-retryable split. The SDK is the reference here only (it
is a dev requirement, not bundled: lambdas/collections/embeddings.py says why)."""

from __future__ import annotations

import json
import os
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest
from conftest import load_event, put_parameter
from fake_apis import EMBEDDINGS

from lambdas.collections import embeddings
from lambdas.collections.pipeline import RetryableError
from lambdas.collections.voyage_http import VoyageHttpEmbedder, VoyageRequestError

KEY = "pa-test-key"
MODEL = "voyage-3.5-lite"
RECORDED = {
    "query": ("voyage_embeddings_query.json", ["red strawberry tart"]),
    "document": (
        "voyage_embeddings_documents.json",
        ["Strawberry tart. A homemade tart with glazed berries.", "Beach at sunset. Blue sea and sand."],
    ),
}


class SdkReference:
    """voyageai's `Client.embed`, called as the embedder called it while it bundled the SDK."""

    def __init__(self, small: VoyageHttpEmbedder) -> None:
        import voyageai

        self._client = voyageai.Client(api_key=KEY, max_retries=0, base_url=os.environ["VOYAGE_BASE_URL"])
        self._model, self._dimensions = small.model, small.dimensions

    def embed(self, texts: list[str], input_type: str) -> list[list[float]]:
        result: Any = self._client.embed(
            texts, model=self._model, input_type=input_type, output_dimension=self._dimensions
        )
        return [list(map(float, v)) for v in result.embeddings]


def _clients() -> tuple[SdkReference, VoyageHttpEmbedder]:
    """The platform's client built from the functions' own configuration (the key from SSM,
    VOYAGE_BASE_URL at the stand-in of the fake_apis fixture, the model and dimensions from the
    environment's defaults), and the SDK aimed at the same server with the same model."""
    put_parameter("VOYAGE_API_KEY", KEY)
    small = embeddings.embedder()
    assert isinstance(small, VoyageHttpEmbedder)
    return SdkReference(small), small


@pytest.mark.parametrize("input_type", ["query", "document"])
def test_same_vectors_and_same_request_as_the_sdk(aws_env, fake_apis, input_type: str) -> None:
    fixture, texts = RECORDED[input_type]
    recorded = load_event(fixture)
    fake_apis.queue(EMBEDDINGS, (200, recorded, {}), (200, recorded, {}))
    sdk, small = _clients()

    from_sdk = sdk.embed(texts, input_type)
    from_small = small.embed(texts, input_type)

    assert from_small == from_sdk
    assert len(from_small) == len(texts) and all(len(v) == 1024 for v in from_small)
    assert len({tuple(v) for v in from_small}) == len(texts)
    (sdk_path, sdk_headers, sdk_body), (path, headers, body) = fake_apis.requests
    assert path == sdk_path == "/v1/embeddings"
    assert headers["authorization"] == sdk_headers["authorization"] == f"Bearer {KEY}"
    assert body == {k: v for k, v in sdk_body.items() if v is not None}  # the SDK sends output_dtype: null
    assert (body["model"], body["input_type"], body["truncation"], body["output_dimension"]) == (
        MODEL,
        input_type,
        True,
        1024,
    )
    assert body["input"] == texts and body["encoding_format"] == "base64"


def test_plain_float_lists_are_read_too(aws_env, fake_apis) -> None:
    vector = [0.5, -0.25] + [0.0] * 1022
    fake_apis.queue(EMBEDDINGS, (200, {"data": [{"embedding": vector, "index": 0}], "model": MODEL}, {}))
    _, small = _clients()
    assert small.embed(["q"], "query") == [vector]


@pytest.mark.parametrize(("status", "retryable"), [(429, True), (500, True), (503, True), (400, False), (401, False)])
def test_errors_are_classified_like_the_sdk(aws_env, fake_apis, status: int, retryable: bool) -> None:
    error = (status, {"detail": f"status {status} (fake)"}, {})
    fake_apis.queue(EMBEDDINGS, error, error)
    sdk, small = _clients()
    expected = RetryableError if retryable else VoyageRequestError
    with pytest.raises(expected, match=str(status)):
        small.embed(["q"], "query")
    from voyageai import error

    with pytest.raises(error.VoyageError) as sdk_raised:
        sdk.embed(["q"], "query")
    # The SDK's classes for what is worth retrying later (its own retry loop retries these).
    sdk_retryable = (error.RateLimitError, error.ServiceUnavailableError, error.ServerError, error.TryAgain)
    assert isinstance(sdk_raised.value, sdk_retryable) == retryable, type(sdk_raised.value)


@pytest.mark.parametrize(
    "payload", [{"data": [{"embedding": [1.0, 0.0], "index": 0}]}, {"data": []}, {"detail": "no data"}]
)
def test_unexpected_answers_are_retryable(aws_env, fake_apis, payload: dict[str, Any]) -> None:
    fake_apis.queue(EMBEDDINGS, (200, payload, {}))
    _, small = _clients()
    with pytest.raises(RetryableError):
        small.embed(["q"], "query")


def test_nothing_listening_is_retryable() -> None:
    server = ThreadingHTTPServer(("127.0.0.1", 0), BaseHTTPRequestHandler)
    port = server.server_address[1]
    server.server_close()
    small = VoyageHttpEmbedder(KEY, MODEL, 1024, base_url=f"http://127.0.0.1:{port}/v1", timeout=2)
    with pytest.raises(RetryableError):
        small.embed(["q"], "query")


def test_kept_connection_is_reused_and_replaced_when_the_server_closed_it() -> None:
    """HTTP/1.1 keep-alive: warm searches reuse one connection; one the server dropped while idle
    (as load balancers do after their idle timeout) costs a new connection, not an error."""
    raw = json.dumps(load_event("voyage_embeddings_query.json")).encode()
    connections: list[int] = []

    class KeepAlive(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, *args: Any) -> None:
            pass

        def setup(self) -> None:
            super().setup()
            connections.append(id(self))
            self.served = 0

        def do_POST(self) -> None:
            self.rfile.read(int(self.headers["content-length"]))
            self.send_response(200)
            self.send_header("content-type", "application/json")
            self.send_header("content-length", str(len(raw)))
            self.end_headers()
            self.wfile.write(raw)
            self.served += 1
            # After two requests the server closes without announcing it (no `connection: close`).
            self.close_connection = self.served == 2

    server = ThreadingHTTPServer(("127.0.0.1", 0), KeepAlive)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        url = f"http://127.0.0.1:{server.server_address[1]}/v1"
        small = VoyageHttpEmbedder(KEY, MODEL, 1024, base_url=url, timeout=5)
        first = small.embed(["q"], "query")
        assert small.embed(["q"], "query") == first and len(connections) == 1
        assert small.embed(["q"], "query") == first and len(connections) == 2
    finally:
        server.shutdown()
        server.server_close()
