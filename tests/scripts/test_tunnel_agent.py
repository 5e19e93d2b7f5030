"""The agent CLI against a real local HTTP app and a real local WebSocket peer."""

from __future__ import annotations

import asyncio
import gzip
import os
import re
import signal
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from lambdas.tunnel import protocol as p
from tests.lambdas.tunnel.agent_peers import (
    BINARY,
    GOOD_TOKEN,
    AgentThread,
    FakeTunnel,
    LocalApp,
    request,
    until,
)
from tunnel_agent.agent import AgentConfig

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture
def app() -> Iterator[LocalApp]:
    local = LocalApp()
    yield local
    local.close()


@pytest.fixture
def tunnel() -> Iterator[FakeTunnel]:
    peer = FakeTunnel()
    yield peer
    peer.close()


def _config(tunnel: FakeTunnel, app: LocalApp, **kwargs) -> AgentConfig:
    return AgentConfig(url=f"ws://127.0.0.1:{tunnel.port}", token=GOOD_TOKEN, port=app.port, **kwargs)


@pytest.fixture
def agent(tunnel: FakeTunnel, app: LocalApp, request: pytest.FixtureRequest) -> Iterator[AgentThread]:
    options = getattr(request, "param", {})
    running = AgentThread(_config(tunnel, app, **options))
    tunnel.wait_connections(1)
    yield running
    assert running.stop() == 0


def test_request_and_response_fidelity(tunnel, app, agent) -> None:
    headers = [
        ("host", "demo.tunnel.test"),
        ("x-forwarded-for", "198.51.100.23"),
        ("accept", "text/html"),
        ("accept", "application/json"),
        ("cookie", "session=s3cr3t; theme=dark"),
        ("connection", "keep-alive, x-hop"),
        ("x-hop", "must not reach the app"),
        ("te", "trailers"),
        ("upgrade", "h2c"),
        ("content-length", "999"),
    ]
    body = bytes(range(256))
    req = request("r1", "/echo/caf%C3%A9", method="POST", query="a=1&a=2&q=x%20y%2Bz&e=", headers=headers, body=body)
    response = tunnel.request(req)
    assert isinstance(response, p.HttpResponse)

    [seen] = app.received
    assert seen["method"] == "POST"
    assert seen["target"] == "/echo/caf%C3%A9?a=1&a=2&q=x%20y%2Bz&e="
    assert seen["body"] == body
    got = [(k.lower(), v) for k, v in seen["headers"]]
    assert ("accept", "text/html") in got and ("accept", "application/json") in got
    assert ("cookie", "session=s3cr3t; theme=dark") in got
    assert ("host", "demo.tunnel.test") in got  # the public host by default
    assert ("x-forwarded-for", "198.51.100.23") in got
    assert ("x-forwarded-proto", "https") in got
    assert ("x-forwarded-host", "demo.tunnel.test") in got
    assert ("content-length", "256") in got  # recomputed, not the client's
    names = {k for k, _ in got}
    assert not names & {"connection", "x-hop", "te", "upgrade", "accept-encoding"}

    assert response.status == 201 and response.body == body
    assert [v for k, v in response.headers if k.lower() == "set-cookie"] == ["a=1; Path=/", "b=2; HttpOnly"]
    response_names = {k.lower() for k, _ in response.headers}
    assert "x-echo" in response_names
    assert not response_names & {"connection", "keep-alive", "x-internal"}
    [line] = [line for line in agent.lines() if " POST " in line]
    assert re.fullmatch(
        r"\d\d:\d\d:\d\d  POST    /echo/caf%C3%A9\?a=1&a=2&q=x%20y%2Bz&e= +201 Created +256 B +\d+ ms", line
    ), line


def test_client_ip_becomes_x_forwarded_for_when_absent(tunnel, app, agent) -> None:
    tunnel.request(request("r1", headers=[("host", "demo.tunnel.test")], client_ip="203.0.113.9"))
    got = [(k.lower(), v) for k, v in app.received[0]["headers"]]
    assert ("x-forwarded-for", "203.0.113.9") in got


@pytest.mark.parametrize("agent", [{"host_header": "rewrite"}], indirect=True)
def test_host_header_rewrite(tunnel, app, agent) -> None:
    tunnel.request(request("r1", headers=[("host", "demo.tunnel.test")]))
    got = dict((k.lower(), v) for k, v in app.received[0]["headers"])
    assert got["host"] == f"127.0.0.1:{app.port}"
    assert got["x-forwarded-host"] == "demo.tunnel.test"


def test_redirects_are_passed_through_not_followed(tunnel, app, agent) -> None:
    response = tunnel.request(request("r1", "/redirect"))
    assert isinstance(response, p.HttpResponse)
    assert response.status == 302 and ("Location", "/target") in response.headers
    assert [r["target"] for r in app.received] == ["/redirect"]


def test_compressed_bodies_are_not_decompressed(tunnel, app, agent) -> None:
    response = tunnel.request(request("r1", "/gzip", headers=[("accept-encoding", "gzip")]))
    assert isinstance(response, p.HttpResponse)
    assert ("Content-Encoding", "gzip") in response.headers
    assert gzip.decompress(response.body) == b"hello " * 100


def test_binary_and_large_bodies_use_presigned_urls_both_ways(tunnel, app, agent) -> None:
    big = BINARY * 40  # 640 KB: beyond one WebSocket message
    app.stored["/__s3/req"] = big
    req = request(
        "r1",
        "/big",
        method="PUT",
        body_url=f"{app.url}/__s3/req",
        response_upload_url=f"{app.url}/__s3/resp",
        response_upload_fields={"key": "responses/r1", "policy": "signed-policy"},
    )
    response = tunnel.request(req)
    assert isinstance(response, p.HttpResponse)
    assert app.received[0]["body"] == big
    assert response.body_in_bucket and response.body == b""
    assert app.stored["/__s3/resp"] == bytes(reversed(big))
    # A presigned POST form: every signed field, in order, before the file (S3 requires it last).
    assert list(app.forms["/__s3/resp"].items())[:2] == [("key", b"responses/r1"), ("policy", b"signed-policy")]
    assert list(app.forms["/__s3/resp"])[-1] == "file"


def test_app_response_over_5_mib_becomes_a_502(tunnel, app, agent) -> None:
    app.stored["/__s3/huge"] = b"z" * (p.MAX_BODY_BYTES + 1)
    req = request("r1", "/big", method="PUT", body_url=f"{app.url}/__s3/huge", response_upload_url=f"{app.url}/__s3/r")
    response = tunnel.request(req)
    assert isinstance(response, p.HttpResponse) and response.status == 502
    assert b"5 MiB" in response.body


def test_medium_response_is_sent_inline_in_fragments(tunnel, app, agent) -> None:
    # 16 KB of binary is ~22 KB of base64 but the reply (echo of 60 KB) needs several 32 KB frames.
    body = BINARY * 3 + b"x" * 40_000
    response = tunnel.request(request("r1", method="POST", body=body))
    assert isinstance(response, p.HttpResponse)
    assert not response.body_in_bucket and response.body == body
    assert len(p.encode(response)) > p.MAX_FRAME_BYTES


def test_unreachable_app_is_reported_as_error(tunnel, app) -> None:
    running = AgentThread(AgentConfig(url=f"ws://127.0.0.1:{tunnel.port}", token=GOOD_TOKEN, port=1))
    tunnel.wait_connections(1)
    try:
        response = tunnel.request(request("r1"))
        assert isinstance(response, p.Error)
        assert response.code == "upstream_unreachable" and response.request_id == "r1"
    finally:
        assert running.stop() == 0


def test_request_arriving_before_the_handshake_reply_is_served(tunnel, app) -> None:
    tunnel.before_established.append(request("early"))
    running = AgentThread(AgentConfig(url=f"ws://127.0.0.1:{tunnel.port}", token=GOOD_TOKEN, port=app.port))
    try:
        until(lambda: any(getattr(m, "request_id", None) == "early" for _, m in tunnel.received))
        (response,) = [m for _, m in tunnel.received if getattr(m, "request_id", None) == "early"]
        assert isinstance(response, p.HttpResponse) and response.status == 201
    finally:
        assert running.stop() == 0


@pytest.mark.parametrize("agent", [{"concurrency": 2}], indirect=True)
def test_concurrency_cap(tunnel, app, agent) -> None:
    async def burst():
        return await asyncio.gather(
            *(tunnel._request(-1, request(f"r{i}", "/slow", headers=[("x-delay", "0.3")]), 10) for i in range(5))
        )

    results = tunnel.call(burst())
    assert all(isinstance(m, p.HttpResponse) and m.status == 200 for _, m in results)
    assert app.max_active == 2


@pytest.mark.parametrize("agent", [{"ping_interval": 0.2, "pong_timeout": 0.5}], indirect=True)
def test_pings_keep_the_connection_alive(tunnel, app, agent) -> None:
    until(lambda: sum(isinstance(m, p.Ping) for _, m in tunnel.received) >= 2)
    assert len(tunnel.connections) == 1


def test_reconnects_with_the_same_subdomain_after_a_drop(tunnel, app, agent) -> None:
    until(lambda: agent.lines())  # the agent prints once it is connected
    assert agent.lines()[0] == f"Forwarding https://k3v9x2m7q1wz.tunnel.test -> http://127.0.0.1:{app.port}"
    tunnel.drop(0)
    tunnel.wait_connections(2)
    assert tunnel.subdomains_asked == [None, "k3v9x2m7q1wz"]
    response = tunnel.request(request("r1"), index=1)
    assert isinstance(response, p.HttpResponse) and response.status == 201
    # Same URL, so it is not printed again.
    assert sum(line.startswith("Forwarding") for line in agent.lines()) == 1


@pytest.mark.parametrize("agent", [{"rotate_after": 0.6, "drain_grace": 0.2}], indirect=True)
def test_rotation_opens_a_fresh_connection_without_dropping_requests(tunnel, app, agent) -> None:
    async def slow_then_rotate():
        # A request in flight on the first connection while the agent replaces it.
        return await tunnel._request(0, request("slow", "/slow", headers=[("x-delay", "0.8")]), 10)

    index, response = tunnel.call(slow_then_rotate(), 15)
    assert index == 0 and isinstance(response, p.HttpResponse) and response.status == 200
    tunnel.wait_connections(2)
    assert tunnel.subdomains_asked[1] == "k3v9x2m7q1wz"
    _, fresh = tunnel.request_on(request("r2"), index=1)
    assert isinstance(fresh, p.HttpResponse) and fresh.status == 201
    until(lambda: tunnel.connections[0].state.name == "CLOSED")


# The CLI as a user runs it: a subprocess, its exit code and its output.


def _cli(*args: str) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "scripts/tunnel_agent.py", *args],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env={**os.environ, "PYTHONUNBUFFERED": "1"},
    )


def test_ctrl_c_exits_cleanly(tunnel, app) -> None:
    proc = _cli("--url", f"ws://127.0.0.1:{tunnel.port}", "--token", GOOD_TOKEN, "--port", str(app.port))
    try:
        assert proc.stdout is not None
        first = proc.stdout.readline()
        assert first.startswith("Forwarding https://k3v9x2m7q1wz.tunnel.test -> ")
        response = tunnel.request(request("r1"))
        assert isinstance(response, p.HttpResponse) and response.status == 201
        proc.send_signal(signal.SIGINT)
        out, err = proc.communicate(timeout=10)
    finally:
        proc.kill() if proc.poll() is None else None
    assert proc.returncode == 0, err
    assert "Tunnel closed" in out and "Traceback" not in err
    until(lambda: tunnel.connections[0].state.name == "CLOSED")


def test_bad_token_is_one_clear_line_and_nonzero(tunnel, app) -> None:
    proc = _cli("--url", f"ws://127.0.0.1:{tunnel.port}", "--token", "wrong.token", "--port", str(app.port))
    _, err = proc.communicate(timeout=15)
    assert proc.returncode == 1
    assert err.strip().splitlines() == ["error: the tunnel rejected the token (HTTP 401): check --token"]
    assert tunnel.connections == []


@pytest.mark.parametrize(
    ("url", "code", "message"),
    [
        ("https://example.com", 2, "error: --url must be a ws:// or wss:// URL"),
        ("ws://127.0.0.1:1/dev", 1, "error: cannot connect to ws://127.0.0.1:1/dev"),
    ],
)
def test_bad_url_is_one_clear_line_and_nonzero(url, code, message) -> None:
    proc = _cli("--url", url, "--token", GOOD_TOKEN, "--port", "3000")
    _, err = proc.communicate(timeout=15)
    assert proc.returncode == code
    assert len(err.strip().splitlines()) == 1 and err.startswith(message)


def test_a_path_tunnel_prints_a_one_line_shared_origin_warning(app) -> None:
    peer = FakeTunnel(path_base="https://abc.execute-api.eu-west-1.amazonaws.com")
    try:
        running = AgentThread(_config(peer, app))
        peer.wait_connections(1)
        until(lambda: len(running.lines()) >= 2)
        assert running.lines()[0].startswith("Forwarding https://abc.execute-api.eu-west-1.amazonaws.com/t/")
        assert running.lines()[1].startswith("warning: path tunnels (/t/NAME/) share one browser origin")
        assert running.stop() == 0
    finally:
        peer.close()


def test_a_host_tunnel_prints_no_origin_warning(tunnel, app, agent) -> None:
    until(lambda: len(agent.lines()) >= 1)
    tunnel.request(request("r1"))
    assert not any("share one browser origin" in line for line in agent.lines())
