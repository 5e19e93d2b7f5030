"""The tunnel bench's helpers: level parsing, the agent's URL line, loopback for `*.localhost`, the
counting of answers, and the load client against real local HTTP servers."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest

from scripts.bench.bench_tunnel import (
    NO_ANSWER,
    WRONG_BODY,
    LevelResult,
    _bench_app,
    forwarding_url,
    load,
    loopback_target,
    parse_levels,
    table_row,
)
from scripts.bench.foundation import percentile


def test_percentile_is_nearest_rank() -> None:
    values = [float(v) for v in range(1, 101)]
    assert percentile(values, 0.5) == 51.0
    assert percentile(values, 0.99) == 99.0
    assert percentile(values, 1.0) == 100.0
    assert percentile([7.0], 0.99) == 7.0
    with pytest.raises(ValueError):
        percentile([], 0.5)


def test_levels_parse_and_bad_levels_are_refused() -> None:
    assert parse_levels("1:100, 10:200,200:400") == [(1, 100), (10, 200), (200, 400)]
    for bad in ("0:10", "10:5", "ten:100", "10", "10:", ""):
        with pytest.raises(ValueError, match="CONCURRENT:REQUESTS"):
            parse_levels(bad)


def test_forwarding_url_takes_the_public_url_from_the_forwarding_line_only() -> None:
    assert forwarding_url("Forwarding http://abc.localhost:8000 -> http://127.0.0.1:3000\n") == (
        "http://abc.localhost:8000"
    )
    assert forwarding_url("Forwarding    https://abc.tunnel.example.com -> http://127.0.0.1:3000") == (
        "https://abc.tunnel.example.com"
    )
    assert forwarding_url("Web Interface http://127.0.0.1:4040") is None
    assert forwarding_url("GET     /x 200 3ms") is None
    assert forwarding_url("") is None


def test_localhost_names_go_to_loopback_with_their_host_header() -> None:
    assert loopback_target("http://abc.localhost:8123/t?x=1") == (
        "http://127.0.0.1:8123/t?x=1",
        {"Host": "abc.localhost:8123"},
    )
    assert loopback_target("http://127.0.0.1:9000/t/abc") == ("http://127.0.0.1:9000/t/abc", {})


def test_answers_are_counted_as_ok_throttled_or_errors() -> None:
    result = LevelResult(
        [(200, 10.0), (201, 30.0), (429, 1.0), (500, 5.0), (WRONG_BODY, 4.0), (NO_ANSWER, 60000.0)], seconds=2.0
    )
    assert result.ok == [10.0, 30.0]
    assert result.throttled == 1
    assert result.errors == 3
    assert result.latency() == "20.0 / 30.0"
    assert result.per_second() == 3.0
    refused = LevelResult([(429, 1.0), (429, 2.0)], seconds=1.0)
    assert refused.latency() == "-" and refused.errors == 0
    row = table_row("GET", 2, result, refused)
    assert row == "| GET | 2 | 2 | 20.0 / 30.0 | 3 | - | - | 0 | 2 | 2 |"


@pytest.fixture
def echo() -> Iterator[Any]:
    server = _bench_app()
    yield server
    server.shutdown()
    server.server_close()


def test_load_sends_every_request_and_checks_the_bodies(echo: Any) -> None:
    port = echo.server_address[1]
    gets = load(f"http://127.0.0.1:{port}", 5, 23, None)
    assert len(gets.outcomes) == 23 and len(gets.ok) == 23 and gets.errors == gets.throttled == 0
    posts = load(f"http://bench.localhost:{port}/", 3, 6, b"x" * 100_000)  # loopback, Host kept
    assert len(posts.ok) == 6


class _Unruly(BaseHTTPRequestHandler):
    """Answers by request number: 429, 503, a wrong body, a dropped connection, or the right body."""

    protocol_version = "HTTP/1.1"

    def do_GET(self) -> None:
        i = int(parse_qs(urlsplit(self.path).query)["i"][0])
        if i % 5 == 3:
            self.close_connection = True  # closed without an answer
            return
        status, body = {0: (429, b"busy"), 1: (503, b"offline"), 2: (200, b"not the path")}.get(
            i % 5, (200, self.path.encode())
        )
        self.send_response(status)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args: Any) -> None:
        pass


def test_load_counts_throttles_errors_wrong_bodies_and_dropped_connections() -> None:
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Unruly)
    threading.Thread(target=server.serve_forever, args=(0.05,), daemon=True).start()
    try:
        result = load(f"http://127.0.0.1:{server.server_address[1]}", 4, 20, None)
    finally:
        server.shutdown()
        server.server_close()
    statuses = sorted(status for status, _ in result.outcomes)
    assert statuses == sorted([429] * 4 + [503] * 4 + [WRONG_BODY] * 4 + [NO_ANSWER] * 4 + [200] * 4)
    assert len(result.ok) == 4 and result.throttled == 4 and result.errors == 12
