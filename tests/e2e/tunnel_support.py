"""What the tunnel's end-to-end tests share: a tunnel-only local runtime, the local app and the agent
CLI as a running process, the token CLI, and one HTTP request seen as a client sees it."""

from __future__ import annotations

import http.client
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from email.message import Message
from pathlib import Path
from urllib.parse import urlsplit

from scripts.local.runtime import LocalRuntime
from scripts.local.synth import TUNNEL_ONLY_APP
from tests.e2e.conftest import free_port_base
from tests.lambdas.tunnel.agent_peers import LocalApp

ROOT = Path(__file__).resolve().parents[2]


def tunnel_runtime(**forward_env: str) -> Iterator[LocalRuntime]:
    """For a module fixture: the Tunnel stack alone, its forwarder with `forward_env` set."""
    rt = LocalRuntime(
        "dev", port_base=free_port_base(), app=TUNNEL_ONLY_APP, set_env={"tunnel-forward-dev": forward_env}
    ).start()
    yield rt
    rt.stop()


def aws_env(endpoint_url: str, region: str, access_key: str = "local") -> dict[str, str]:
    """This environment pointed at a local runtime's moto."""
    return {
        **os.environ,
        "AWS_ENDPOINT_URL": endpoint_url,
        "AWS_DEFAULT_REGION": region,
        "AWS_ACCESS_KEY_ID": access_key,
        "AWS_SECRET_ACCESS_KEY": access_key,
    }


def token_cli(endpoint_url: str, region: str, table: str, *args: str) -> str:
    """What `scripts/tunnel_tokens.py --table TABLE ARGS...` prints (it must succeed)."""
    result = subprocess.run(
        [sys.executable, "scripts/tunnel_tokens.py", "--table", table, *args],
        cwd=ROOT, env=aws_env(endpoint_url, region), capture_output=True, text=True, check=True, timeout=60,
    )  # fmt: skip
    return result.stdout


def tokens(runtime: LocalRuntime, *args: str) -> str:
    return token_cli(runtime.moto_url, runtime.region, runtime.outputs["Tunnel-dev"]["TokensTableName"], *args)


def token_in(output: str) -> str:
    """The token `tunnel_tokens.py create` printed."""
    return next(line.split()[-1] for line in output.splitlines() if line.startswith("token:"))


def new_token(runtime: LocalRuntime) -> str:
    return token_in(tokens(runtime, "create", "--label", "e2e"))


class AgentProcess:
    def __init__(self, runtime: LocalRuntime | None, token: str, port: int, *extra: str, url: str = "") -> None:
        self.port = port
        url = url or (runtime.outputs["Tunnel-dev"]["WebSocketUrl"] if runtime else "")
        self.proc = subprocess.Popen(
            [sys.executable, "scripts/tunnel_agent.py", "--url", url,
             "--token", token, "--port", str(port), *extra,
             *(() if "--inspect-port" in extra else ("--no-inspect",))],  # 4040 is for people
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


def running_agent(runtime: LocalRuntime, app: LocalApp, subdomain: str) -> Iterator[AgentProcess]:
    """For a module fixture: an agent with a new token serving `subdomain`, connected."""
    running = AgentProcess(runtime, new_token(runtime), app.port, "--subdomain", subdomain)
    running.wait_url()
    yield running
    running.stop()


@dataclass
class Reply:
    status: int
    headers: Message
    data: bytes


def call(url: str, method: str = "GET", body: bytes | None = None, headers: dict[str, str] | None = None) -> Reply:
    """One request with http.client: no redirect following, no decompression. `NAME.localhost`
    goes to loopback with its Host header, as browsers and curl do (Python's resolver may not)."""
    parts = urlsplit(url)
    hostname = parts.hostname or "127.0.0.1"
    headers = dict(headers or {})
    if hostname.endswith(".localhost"):
        headers.setdefault("Host", parts.netloc)
        hostname = "127.0.0.1"
    conn = http.client.HTTPConnection(hostname, parts.port, timeout=30)
    target = parts.path + (f"?{parts.query}" if parts.query else "")
    try:
        conn.request(method, target, body=body, headers=headers)
        response = conn.getresponse()
        return Reply(response.status, response.headers, response.read())
    finally:
        conn.close()
