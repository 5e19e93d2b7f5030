"""A small client for Voyage's embeddings HTTP API, for the embedder (documents) and search (queries).

The voyageai SDK imports numpy, tokenizers, langchain's text splitters, aiohttp, requests and
Pillow: most of a second before the first search after a cold start can answer, and about 90 MB
of asset. Embedding is one POST. This client sends what the SDK's `Client.embed` sends
(`POST {base}/embeddings`, `truncation: true`, `encoding_format: "base64"`) and decodes the same
little-endian float32 values; tests hold it to the SDK's request, vectors and error classes
against one stand-in server, so vectors stored before the SDK was dropped stay comparable.

One connection per container is kept open (warm calls skip the TLS handshake); a request that
finds it closed by the server is sent once more on a new one (embedding is idempotent).
"""

from __future__ import annotations

import base64
import http.client
import json
import struct
from typing import Any
from urllib.parse import urlsplit

from lambdas.collections.pipeline import RetryableError

DEFAULT_BASE_URL = "https://api.voyageai.com/v1"
# Errors worth retrying later, as the SDK classifies them (RateLimitError, ServerError, ...).
_RETRYABLE_STATUS = 429


class VoyageRequestError(RuntimeError):
    """Voyage refused the request (4xx other than 429): retrying the same request cannot help."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(f"voyage: HTTP {status}: {message}")
        self.status = status


class VoyageHttpEmbedder:
    provider = "voyage"

    def __init__(self, key: str, model: str, dimensions: int, *, base_url: str | None, timeout: float) -> None:
        self.model = model
        self.dimensions = dimensions
        url = urlsplit((base_url or DEFAULT_BASE_URL).rstrip("/"))
        if url.scheme not in ("https", "http") or not url.hostname:
            raise ValueError(f"VOYAGE_BASE_URL must be an http(s) URL, not {base_url!r}")
        self._https = url.scheme == "https"
        self._host, self._port = url.hostname, url.port
        self._path = f"{url.path}/embeddings"
        self._timeout = timeout
        self._headers = {"authorization": f"Bearer {key}", "content-type": "application/json"}
        self._connection: http.client.HTTPConnection | None = None

    def embed(self, texts: list[str], input_type: str) -> list[list[float]]:
        body = json.dumps(
            {
                "input": texts,
                "model": self.model,
                "input_type": input_type,
                "truncation": True,
                "output_dimension": self.dimensions,
                "encoding_format": "base64",
            }
        ).encode()
        status, payload = self._post(body)
        if status == _RETRYABLE_STATUS or status >= 500:
            raise RetryableError(f"voyage: HTTP {status}: {_detail(payload)}")
        if status != 200:
            raise VoyageRequestError(status, _detail(payload))
        try:
            vectors = [_vector(item["embedding"]) for item in json.loads(payload)["data"]]
        except (ValueError, KeyError, TypeError, struct.error) as exc:
            raise RetryableError(f"voyage: unreadable response: {exc}") from exc
        if len(vectors) != len(texts) or any(len(v) != self.dimensions for v in vectors):
            raise RetryableError(f"voyage returned {len(vectors)} vectors of unexpected size")
        return vectors

    def _post(self, body: bytes) -> tuple[int, bytes]:
        reused = self._connection is not None
        try:
            return self._send(body)
        except (http.client.RemoteDisconnected, ConnectionResetError, BrokenPipeError) as exc:
            self._close()
            if not reused:
                raise RetryableError(f"voyage: connection failed: {exc}") from exc
        except (OSError, http.client.HTTPException) as exc:  # timeouts, refused connections, bad replies
            self._close()
            raise RetryableError(f"voyage: {type(exc).__name__}: {exc}") from exc
        # The kept connection had been closed by the server while idle: once more on a new one.
        try:
            return self._send(body)
        except (OSError, http.client.HTTPException) as exc:
            self._close()
            raise RetryableError(f"voyage: {type(exc).__name__}: {exc}") from exc

    def _send(self, body: bytes) -> tuple[int, bytes]:
        if self._connection is None:
            kind = http.client.HTTPSConnection if self._https else http.client.HTTPConnection
            self._connection = kind(self._host, self._port, timeout=self._timeout)
        self._connection.request("POST", self._path, body=body, headers=self._headers)
        response = self._connection.getresponse()
        payload = response.read()
        if response.will_close:
            self._close()
        return response.status, payload

    def _close(self) -> None:
        if self._connection is not None:
            self._connection.close()
            self._connection = None


def _vector(embedding: Any) -> list[float]:
    # The SDK decodes base64 as float32 (numpy.frombuffer, then .tolist()); plain lists pass as floats.
    if isinstance(embedding, str):
        raw = base64.b64decode(embedding)
        return list(struct.unpack(f"<{len(raw) // 4}f", raw))
    return [float(v) for v in embedding]


def _detail(payload: bytes) -> str:
    try:
        parsed = json.loads(payload)
    except ValueError:
        return payload[:200].decode("utf-8", "replace")
    if isinstance(parsed, dict):
        return str(parsed.get("detail") or parsed.get("error") or parsed)[:200]
    return str(parsed)[:200]
