"""The tunnel end to end on the local runtime: the real agent CLI, a real local app, real HTTP and
WebSockets through the Tunnel stack's four handlers (moto behind them)."""

from __future__ import annotations

import http.client
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from email.message import Message
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest

from scripts.local.runtime import LocalRuntime
from tests.e2e.conftest import free_port_base
from tests.lambdas.tunnel.agent_peers import LocalApp

ROOT = Path(__file__).resolve().parents[2]
FORWARD_TIMEOUT_MS = 4000

pytestmark = pytest.mark.slow


def tunnel_only_app(app: Any, env_name: str, context: dict[str, Any]) -> None:
    """Only the Tunnel stack: these tests do not depend on the other systems starting."""
    from infrastructure.config import get_config
    from infrastructure.stacks.tunnel import TunnelStack

    config = get_config(env_name)
    TunnelStack(app, config.stack_name("Tunnel"), config=config)


@pytest.fixture(scope="module")
def runtime() -> Iterator[LocalRuntime]:
    rt = LocalRuntime(
        "dev",
        port_base=free_port_base(),
        app=f"{__name__}:tunnel_only_app",
        set_env={"tunnel-forward-dev": {"REQUEST_TIMEOUT_MS": str(FORWARD_TIMEOUT_MS)}},
    ).start()
    yield rt
    rt.stop()


@pytest.fixture(scope="module")
def app() -> Iterator[LocalApp]:
    local = LocalApp()
    yield local
    local.close()


def _tokens(runtime: LocalRuntime, *args: str) -> str:
    env = {
        **os.environ,
        "AWS_ENDPOINT_URL": runtime.moto_url,
        "AWS_DEFAULT_REGION": runtime.region,
        "AWS_ACCESS_KEY_ID": "local",
        "AWS_SECRET_ACCESS_KEY": "local",
    }
    table = runtime.outputs["Tunnel-dev"]["TokensTableName"]
    result = subprocess.run(
        [sys.executable, "scripts/tunnel_tokens.py", "--table", table, *args],
        cwd=ROOT, env=env, capture_output=True, text=True, check=True, timeout=60,
    )  # fmt: skip
    return result.stdout


def new_token(runtime: LocalRuntime) -> str:
    out = _tokens(runtime, "create", "--label", "e2e")
    return next(line.split()[-1] for line in out.splitlines() if line.startswith("token:"))


class AgentProcess:
    def __init__(self, runtime: LocalRuntime, token: str, port: int, *extra: str) -> None:
        self.proc = subprocess.Popen(
            [sys.executable, "scripts/tunnel_agent.py", "--url", runtime.outputs["Tunnel-dev"]["WebSocketUrl"],
             "--token", token, "--port", str(port), *extra],
            cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
            env={**os.environ, "PYTHONUNBUFFERED": "1"},
        )  # fmt: skip
        self.lines: list[str] = []
        self.public_url = ""

    def wait_url(self, timeout: float = 20) -> str:
        assert self.proc.stdout is not None
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            line = self.proc.stdout.readline()
            if not line:
                break
            self.lines.append(line)
            if line.startswith("Forwarding "):
                self.public_url = line.split()[1]
                return self.public_url
        raise AssertionError(f"no public URL; stderr: {self.proc.stderr.read() if self.proc.stderr else ''}")

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGINT)
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()


@pytest.fixture(scope="module")
def agent(runtime: LocalRuntime, app: LocalApp) -> Iterator[AgentProcess]:
    running = AgentProcess(runtime, new_token(runtime), app.port, "--subdomain", "e2edemo")
    running.wait_url()
    yield running
    running.stop()


@dataclass
class Reply:
    status: int
    headers: Message
    data: bytes


def call(url: str, method: str = "GET", body: bytes | None = None, headers: dict[str, str] | None = None) -> Reply:
    """One request with http.client: no redirect following, no decompression."""
    parts = urlsplit(url)
    conn = http.client.HTTPConnection(parts.hostname or "127.0.0.1", parts.port, timeout=30)
    target = parts.path + (f"?{parts.query}" if parts.query else "")
    try:
        conn.request(method, target, body=body, headers=headers or {})
        response = conn.getresponse()
        return Reply(response.status, response.headers, response.read())
    finally:
        conn.close()


def test_public_url_uses_the_http_api_path_form(runtime, agent) -> None:
    assert agent.public_url == f"{runtime.outputs['Tunnel-dev']['HttpApiUrl']}/t/e2edemo"


def test_status_codes_cookies_and_raw_query(agent, app) -> None:
    query = "tag=a&tag=b&q=caf%C3%A9%20au%20lait&x%5B%5D=1&empty="
    response = call(f"{agent.public_url}/echo/path%2Fpart?{query}", "POST", b"hello", {"X-Test": "1"})
    assert response.status == 201
    assert response.data == b"hello"
    assert response.headers.get_all("Set-Cookie") == ["a=1; Path=/", "b=2; HttpOnly"]
    seen = app.received[-1]
    assert seen["target"] == f"/echo/path%2Fpart?{query}"
    headers = {k.lower(): v for k, v in seen["headers"]}
    assert headers["x-test"] == "1" and headers["x-forwarded-prefix"] == "/t/e2edemo"
    assert call(f"{agent.public_url}/missing").status == 201  # the app answers every path
    assert call(f"{agent.public_url}/redirect").status == 302


def test_redirect_is_passed_through(agent) -> None:
    response = call(f"{agent.public_url}/redirect")
    assert response.status == 302 and response.headers["Location"] == "/target"


def test_three_megabyte_binary_body_both_ways(agent, app) -> None:
    body = os.urandom(3 * 1024 * 1024)
    response = call(f"{agent.public_url}/big", "POST", body, {"Content-Type": "application/octet-stream"})
    assert response.status == 200
    assert response.data == bytes(reversed(body))
    assert app.received[-1]["body"] == body


def test_unknown_tunnel_is_json_404(runtime) -> None:
    response = call(f"{runtime.outputs['Tunnel-dev']['HttpApiUrl']}/t/nobodyhere/")
    assert response.status == 404 and b'"error"' in response.data


def test_slow_app_is_504(agent) -> None:
    started = time.monotonic()
    response = call(f"{agent.public_url}/slow", headers={"X-Delay": str(FORWARD_TIMEOUT_MS / 1000 + 1.5)})
    assert response.status == 504 and b'"error"' in response.data
    assert time.monotonic() - started < FORWARD_TIMEOUT_MS / 1000 + 1.5


def test_wrong_token_is_refused(runtime, app) -> None:
    bad = AgentProcess(runtime, "abcdefghij.notarealsecretnotarealsecret", app.port)
    _, err = bad.proc.communicate(timeout=30)
    assert bad.proc.returncode == 1
    assert err.strip() == "error: the tunnel rejected the token (HTTP 401): check --token"


def test_killed_agent_mid_request_is_502_within_a_second(runtime, app) -> None:
    token = new_token(runtime)
    victim = AgentProcess(runtime, token, app.port, "--subdomain", "e2ekill")
    url = victim.wait_url()
    result: dict[str, Any] = {}

    def slow_request() -> None:
        result["response"] = call(f"{url}/slow", headers={"X-Delay": "10"})
        result["at"] = time.monotonic()

    seen = len(app.received)
    thread = threading.Thread(target=slow_request)
    thread.start()
    deadline = time.monotonic() + 10
    while len(app.received) == seen:  # the app is sleeping on it: the forwarder is waiting
        assert time.monotonic() < deadline, "the slow request never reached the app"
        time.sleep(0.01)
    killed_at = time.monotonic()
    victim.proc.kill()
    victim.proc.wait()
    thread.join(15)
    assert result["response"].status == 502
    assert result["at"] - killed_at < 1.0

    # Reconnecting with the same token keeps the subdomain; another token cannot take it.
    again = AgentProcess(runtime, token, app.port, "--subdomain", "e2ekill")
    try:
        assert again.wait_url() == url
        assert call(f"{url}/echo", "POST", b"back").data == b"back"
    finally:
        again.stop()
    thief = AgentProcess(runtime, new_token(runtime), app.port, "--subdomain", "e2ekill")
    _, err = thief.proc.communicate(timeout=30)
    assert thief.proc.returncode == 1 and "belongs to another token" in err
