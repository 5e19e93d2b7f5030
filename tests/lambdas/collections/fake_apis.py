"""A local HTTP server standing in for api.anthropic.com and api.voyageai.com.

Tests queue responses (status, JSON body, headers) per path; the real SDKs are pointed at it
through their base URLs, so request building, error mapping and parsing are the SDKs' own.
Every request is recorded (path, headers, JSON body) for assertions.
"""

from __future__ import annotations

import json
import threading
from collections import defaultdict, deque
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

Responder = Callable[[dict[str, Any]], tuple[int, Any, dict[str, str]]]


class FakeApis:
    def __init__(self) -> None:
        self.queued: dict[str, deque[tuple[int, Any, dict[str, str]] | Responder]] = defaultdict(deque)
        self.requests: list[tuple[str, dict[str, str], Any]] = []
        fake = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args: Any) -> None:
                pass

            def do_GET(self) -> None:
                self.do_POST()

            def do_POST(self) -> None:
                raw_body = self.rfile.read(int(self.headers.get("content-length", 0)))
                try:
                    body = json.loads(raw_body or b"null")
                except ValueError:  # compressed or multipart bodies are recorded as bytes
                    body = raw_body
                fake.requests.append((self.path, {k.lower(): v for k, v in self.headers.items()}, body))
                queue = fake.queued[self.path]
                if not queue:
                    # Unexpected calls fail loudly (599), except GETs such as SDK capability probes.
                    status = 404 if self.command == "GET" else 599
                    payload = {"error": f"nothing queued for {self.command} {self.path}"}
                    headers: dict[str, str] = {}
                else:
                    item = queue.popleft()
                    status, payload, headers = item(body) if callable(item) else item
                raw = json.dumps(payload).encode()
                self.send_response(status)
                self.send_header("content-type", "application/json")
                self.send_header("content-length", str(len(raw)))
                for k, v in headers.items():
                    self.send_header(k, v)
                self.end_headers()
                self.wfile.write(raw)

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def queue(self, path: str, *responses: tuple[int, Any, dict[str, str]] | Responder) -> None:
        self.queued[path].extend(responses)

    def bodies(self, path: str) -> list[Any]:
        return [body for p, _, body in self.requests if p == path]

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


MESSAGES = "/v1/messages"
EMBEDDINGS = "/v1/embeddings"
LANGSMITH_RUNS = "/runs"
CHAT_COMPLETIONS = "/v1/chat/completions"


def tool_use(
    tool_input: dict[str, Any],
    *,
    stop_reason: str = "tool_use",
    name: str = "record_image_analysis",
    input_tokens: int = 1500,
    output_tokens: int = 250,
) -> tuple[int, Any, dict[str, str]]:
    return (
        200,
        {
            "id": "msg_01XFDUDYJgAACzvnptvVoYEL",
            "type": "message",
            "role": "assistant",
            "model": "claude-sonnet-4-5",
            "stop_sequence": None,
            "stop_reason": stop_reason,
            "content": [{"type": "tool_use", "id": "toolu_01A09q90qw90lq917835lq9", "name": name, "input": tool_input}],
            "usage": {"input_tokens": input_tokens, "output_tokens": output_tokens},
        },
        {"request-id": "req_011CSHoEeqs5C35K2UUqR7Fy"},
    )


def anthropic_error(status: int, kind: str, headers: dict[str, str] | None = None) -> tuple[int, Any, dict[str, str]]:
    return status, {"type": "error", "error": {"type": kind, "message": f"{kind} (fake)"}}, headers or {}


def voyage_embeddings(vectors: list[list[float]], tokens: int = 12) -> tuple[int, Any, dict[str, str]]:
    return (
        200,
        {
            "object": "list",
            "model": "voyage-3.5-lite",
            "usage": {"total_tokens": tokens},
            "data": [{"object": "embedding", "embedding": v, "index": i} for i, v in enumerate(vectors)],
        },
        {},
    )


VALID_ANALYSIS = {
    "category": "food",
    "subcategories": ["dessert", "baking"],
    "headline": "Strawberry tart on a marble counter",
    "summary": "A homemade strawberry tart with glazed berries sits on a white marble counter. "
    "Soft daylight comes from the left.",
    "image_details": {
        "objects": ["tart", "strawberries", "counter"],
        "colors": ["red", "white"],
        "setting": "kitchen",
        "text": "",
        "mood": "cheerful",
    },
    "media_metadata": {"media_type": "photo", "orientation": "landscape", "quality": "high"},
}


def openai_call(
    arguments: str, *, finish_reason: str = "stop", prompt_tokens: int = 1200, completion_tokens: int = 180
) -> tuple[int, Any, dict[str, str]]:
    return (
        200,
        {
            "id": "chatcmpl-AbC123",
            "object": "chat.completion",
            "created": 1795460400,
            "model": "gpt-4.1",
            "choices": [
                {
                    "index": 0,
                    "finish_reason": finish_reason,
                    "logprobs": None,
                    "message": {
                        "role": "assistant",
                        "content": None,
                        "refusal": None,
                        "tool_calls": [
                            {
                                "id": "call_Xy12",
                                "type": "function",
                                "function": {"name": "record_image_analysis", "arguments": arguments},
                            }
                        ],
                    },
                }
            ],
            "usage": {
                "prompt_tokens": prompt_tokens,
                "completion_tokens": completion_tokens,
                "total_tokens": prompt_tokens + completion_tokens,
            },
        },
        {},
    )
