"""The agent CLI as its users meet it, on the local runtime: size-bounded uploads of large
responses (S3 itself refuses one over the limit), the request lines, the short form and `login`,
Ctrl-C that lets requests in flight finish, and the request inspector's JSON API."""

from __future__ import annotations

import json
import os
import re
import shlex
import signal
import subprocess
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from typing import Any

import pytest
import requests

from scripts.local.ports import free_port_base as free_ports
from scripts.local.runtime import LocalRuntime
from tests.e2e.tunnel_support import (
    ROOT,
    AgentProcess,
    aws_env,
    call,
    new_token,
    running_agent,
    token_in,
    tunnel_runtime,
)
from tests.lambdas.tunnel.agent_peers import LocalApp, sized_bytes

pytestmark = pytest.mark.slow

# Lowered so an upload over it is cheap to make; the protocol's own limit is 5 MiB.
MAX_RESPONSE_BYTES = 1024 * 1024
FORWARD_TIMEOUT_MS = 4000


@pytest.fixture(scope="module")
def runtime() -> Iterator[LocalRuntime]:
    yield from tunnel_runtime(MAX_RESPONSE_BYTES=str(MAX_RESPONSE_BYTES), REQUEST_TIMEOUT_MS=str(FORWARD_TIMEOUT_MS))


@pytest.fixture(scope="module")
def agent(runtime: LocalRuntime, app: LocalApp) -> Iterator[AgentProcess]:
    yield from running_agent(runtime, app, "e2eagent")


# --- large responses: a presigned POST bounded by the max response size --------------------------


def test_a_large_response_within_the_limit_passes_byte_for_byte(agent) -> None:
    size = MAX_RESPONSE_BYTES - 1000  # far over one WebSocket message: through the bucket
    response = call(f"{agent.public_url}/bytes?n={size}")
    assert response.status == 200
    assert response.data == sized_bytes(size)


def test_a_response_over_the_limit_is_refused_by_s3_and_the_client_gets_a_clear_502(agent) -> None:
    started = time.monotonic()
    response = call(f"{agent.public_url}/bytes?n={MAX_RESPONSE_BYTES + 1}")
    assert time.monotonic() - started < FORWARD_TIMEOUT_MS / 1000  # an answer, not the timeout
    assert response.status == 502
    assert json.loads(response.data) == {"error": "tunnel agent error: response_too_large"}


def test_the_local_s3_enforces_a_post_policys_size_range(runtime) -> None:
    """What the refusal above rests on: S3 (here the runtime's) checks the signed policy itself."""
    s3 = runtime.client("s3")
    bucket = runtime.outputs["Tunnel-dev"]["BodyBucketName"]
    form = s3.generate_presigned_post(
        bucket, "responses/policy-check", Conditions=[["content-length-range", 1, 100]], ExpiresIn=60
    )
    over = requests.post(form["url"], data=form["fields"], files={"file": b"x" * 101}, timeout=10)
    assert over.status_code == 400 and "<Code>EntityTooLarge</Code>" in over.text
    assert s3.list_objects_v2(Bucket=bucket, Prefix="responses/policy-check").get("KeyCount") == 0
    within = requests.post(form["url"], data=form["fields"], files={"file": b"x" * 100}, timeout=10)
    assert within.status_code == 204
    assert s3.get_object(Bucket=bucket, Key="responses/policy-check")["Body"].read() == b"x" * 100


# --- the agent's console: one line per request, as the client saw it -----------------------------

LINE = re.compile(
    r"(?P<time>\d\d:\d\d:\d\d)  (?P<method>\S+) +(?P<target>\S+) +(?P<status>\d{3}) (?P<reason>[A-Za-z ]+?) +"
    r"(?P<size>-|[\d.]+ (?:B|KB|MB)) +(?P<ms>\d+) ms(?:  \((?P<note>.*)\))?"
)


def _request_line(agent: AgentProcess, target: str, timeout: float = 15) -> re.Match[str]:
    """The agent's request line for `target` (earlier lines are skipped, and kept in agent.lines)."""
    assert agent.proc.stdout is not None
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        line = agent.proc.stdout.readline().rstrip("\n")
        agent.lines.append(line)
        match = LINE.fullmatch(line)
        if match and match["target"] == target:
            return match
    raise AssertionError(agent.lines[-5:])


def test_each_request_is_one_line_with_time_method_target_status_size_and_duration(agent) -> None:
    assert call(f"{agent.public_url}/echo?tag=a&tag=b", "POST", b"x" * 2048).status == 201
    line = _request_line(agent, "/echo?tag=a&tag=b")
    assert (line["method"], line["target"], line["status"], line["reason"]) == (
        "POST",
        "/echo?tag=a&tag=b",
        "201",
        "Created",
    )
    assert line["size"] == "2.0 KB" and line["note"] is None
    assert (
        abs(time.mktime(time.strptime(time.strftime("%Y-%m-%d ") + line["time"], "%Y-%m-%d %H:%M:%S")) - time.time())
        < 60
    )


def test_a_request_the_tunnel_gave_up_on_is_shown_as_the_clients_504(agent) -> None:
    delay = FORWARD_TIMEOUT_MS / 1000 + 1.5
    assert call(f"{agent.public_url}/slow?late=1", headers={"X-Delay": str(delay)}).status == 504
    line = _request_line(agent, "/slow?late=1", timeout=delay + 10)
    assert (line["target"], line["status"], line["reason"]) == ("/slow?late=1", "504", "Gateway Timeout")
    assert line["note"].startswith("app answered 200; the tunnel stopped waiting after ")
    assert int(line["ms"]) >= delay * 1000


# --- the short form, the environment and `login` ----------------------------------------------------


def _cli(*args: str, env: dict[str, str]) -> subprocess.Popen[str]:
    clean = {k: v for k, v in os.environ.items() if k not in ("TUNNEL_URL", "TUNNEL_TOKEN", "XDG_CONFIG_HOME")}
    return subprocess.Popen(
        [".venv/bin/python", "scripts/tunnel_agent.py", *args],
        cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        env={**clean, "PYTHONUNBUFFERED": "1", **env},
    )  # fmt: skip


def _adopt(process: subprocess.Popen[str]) -> AgentProcess:
    """An AgentProcess around a process started another way (to reuse wait_url and stop)."""
    agent = AgentProcess.__new__(AgentProcess)
    agent.proc, agent.lines, agent.public_url, agent.port = process, [], "", 0
    return agent


def test_the_short_form_takes_url_and_token_from_the_environment(runtime, app, tmp_path) -> None:
    env = {
        "TUNNEL_URL": runtime.outputs["Tunnel-dev"]["WebSocketUrl"],
        "TUNNEL_TOKEN": new_token(runtime),
        "XDG_CONFIG_HOME": str(tmp_path),  # no saved login
    }
    agent = _adopt(_cli(str(app.port), "--subdomain", "e2eenv", env=env))
    try:
        url = agent.wait_url()
        assert agent.lines[-1].rstrip() == f"Forwarding {url} -> http://127.0.0.1:{app.port}"
        assert call(f"{url}/echo", "POST", b"from the env").data == b"from the env"
    finally:
        agent.stop()


def test_login_saves_a_private_file_and_the_short_form_uses_it(runtime, app, tmp_path) -> None:
    token = new_token(runtime)
    env = {"XDG_CONFIG_HOME": str(tmp_path)}
    saved = _cli("login", "--url", runtime.outputs["Tunnel-dev"]["WebSocketUrl"], "--token", token, env=env)
    out, err = saved.communicate(timeout=30)
    path = tmp_path / "tunnel-agent" / "config.json"
    assert saved.returncode == 0, err
    assert out.strip() == f"Saved the tunnel URL and token to {path} (readable by you only)"
    assert path.stat().st_mode & 0o777 == 0o600 and path.parent.stat().st_mode & 0o777 == 0o700
    assert json.loads(path.read_text())["token"] == token

    agent = _adopt(_cli(f"127.0.0.1:{app.port}", "--subdomain", "e2elogin", env=env))
    try:
        url = agent.wait_url()
        assert call(f"{url}/echo", "POST", b"from the file").data == b"from the file"
    finally:
        agent.stop()


def test_without_a_url_anywhere_the_short_form_says_where_to_put_one(tmp_path) -> None:
    process = _cli("3000", env={"XDG_CONFIG_HOME": str(tmp_path)})
    _, err = process.communicate(timeout=30)
    assert process.returncode == 2
    assert err.strip() == "error: no tunnel URL: pass --url, set TUNNEL_URL, or run `tunnel-agent login` once"


def test_help_has_examples() -> None:
    process = _cli("--help", env={})
    out, _ = process.communicate(timeout=30)
    assert process.returncode == 0
    assert out.startswith("usage: tunnel-agent ")  # the console script's name, however it was started
    assert "examples:" in out and "\n  tunnel-agent 3000\n" in out and "tunnel-agent login --url" in out


# --- Ctrl-C: requests in flight finish, within a bound ----------------------------------------------


def _slow_call(url: str, delay: float, result: dict[str, Any]) -> threading.Thread:
    def run() -> None:
        result["reply"] = call(f"{url}/slow?drain=1", headers={"X-Delay": str(delay)})

    thread = threading.Thread(target=run)
    thread.start()
    return thread


def _wait_for_app(app: LocalApp, seen: int) -> None:
    deadline = time.monotonic() + 10
    while len(app.received) == seen:
        assert time.monotonic() < deadline, "the request never reached the app"
        time.sleep(0.01)


def _interrupt_mid_request(agent: AgentProcess, app: LocalApp, delay: float) -> tuple[str, float, dict[str, Any]]:
    """Ctrl-C to the agent while the app holds a request for `delay` seconds: what the agent
    printed, how long it took to exit, and the request's reply (once the request is over)."""
    url = agent.wait_url()
    result: dict[str, Any] = {}
    seen = len(app.received)
    thread = _slow_call(url, delay, result)
    _wait_for_app(app, seen)
    interrupted = time.monotonic()
    agent.proc.send_signal(signal.SIGINT)
    out, _ = agent.proc.communicate(timeout=15)
    exited = time.monotonic() - interrupted
    thread.join(15)
    return out, exited, result


def test_ctrl_c_lets_a_request_in_flight_finish_then_exits(runtime, app) -> None:
    agent = AgentProcess(runtime, new_token(runtime), app.port, "--subdomain", "e2edrain")
    try:
        out, exited, result = _interrupt_mid_request(agent, app, 2.0)
        assert result["reply"].status == 200 and result["reply"].data == b"slow"
        assert agent.proc.returncode == 0
        assert 1.0 < exited < 5.0, exited  # waited for the request (and its answer to land), not for the bound
        assert "Stopping: waiting up to 5 s for 1 request in flight" in out
        assert re.search(r"GET +/slow\?drain=1 +200 OK", out) and "Tunnel closed" in out
    finally:
        agent.stop()


def test_ctrl_c_waits_no_longer_than_the_bound(runtime, app) -> None:
    agent = AgentProcess(runtime, new_token(runtime), app.port, "--subdomain", "e2ebound", "--stop-timeout", "1")
    try:
        out, exited, result = _interrupt_mid_request(agent, app, 3.5)
        assert exited < 2.5
        assert "1 request still in flight: closing without them" in out
        assert result["reply"].status == 502  # the agent went away with it: an answer, not a hang
    finally:
        agent.stop()


# --- the inspector's JSON API -------------------------------------------------------------------------


def _get(url: str, headers: dict[str, str] | None = None) -> tuple[int, Any]:
    try:
        with urllib.request.urlopen(urllib.request.Request(url, headers=headers or {}), timeout=10) as answer:
            return answer.status, json.loads(answer.read())
    except urllib.error.HTTPError as exc:
        return exc.code, json.loads(exc.read())


def _post(url: str, headers: dict[str, str] | None = None) -> tuple[int, Any]:
    request = urllib.request.Request(url, data=b"", method="POST", headers=headers or {})
    try:
        with urllib.request.urlopen(request, timeout=10) as answer:
            return answer.status, json.loads(answer.read())
    except urllib.error.HTTPError as exc:
        return exc.code, json.loads(exc.read())


@pytest.fixture(scope="module")
def inspected(runtime: LocalRuntime, app: LocalApp) -> Iterator[tuple[AgentProcess, str]]:
    port = free_ports(1)
    running = AgentProcess(
        runtime, new_token(runtime), app.port, "--subdomain", "e2einspect", "--inspect-port", str(port)
    )
    running.wait_url()
    assert running.proc.stdout is not None
    line = running.proc.stdout.readline().strip()
    assert line == f"Inspector  http://127.0.0.1:{port}"  # printed beside the public URL
    yield running, f"http://127.0.0.1:{port}"
    running.stop()


def test_the_inspector_lists_requests_with_headers_and_body_previews(inspected, app) -> None:
    agent, inspector = inspected
    html = b"<script>alert('x')</script><b>untrusted</b>"
    assert call(f"{agent.public_url}/echo?via=tunnel", "POST", html, {"X-Mark": "seen"}).status == 201
    status, listing = _get(f"{inspector}/api/requests")
    assert status == 200
    newest = listing["requests"][0]
    assert (newest["method"], newest["target"], newest["status"], newest["client_status"]) == (
        "POST", "/echo?via=tunnel", 201, 201,
    )  # fmt: skip
    assert ["x-mark", "seen"] in newest["request"]["headers"]  # as the HTTP API passed them: lower case
    assert newest["request"]["body"] == {"binary": False, "text": html.decode(), "truncated": False}
    assert newest["response"]["body"]["text"] == html.decode()  # as data, for the page to show as text
    assert ["X-Echo", "yes"] in newest["response"]["headers"] and newest["response"]["size"] == len(html)
    status, one = _get(f"{inspector}/api/requests/{newest['id']}")
    assert status == 200 and one == newest


def test_replay_sends_the_request_to_the_app_again(inspected, app) -> None:
    agent, inspector = inspected
    assert call(f"{agent.public_url}/echo?replay=me", "POST", b"again").status == 201
    original = _get(f"{inspector}/api/requests")[1]["requests"][0]
    hits = sum(r["target"] == "/echo?replay=me" for r in app.received)
    status, replayed = _post(f"{inspector}/api/requests/{original['id']}/replay", {"X-Inspector": "replay"})
    assert status == 200
    assert (replayed["replay_of"], replayed["status"], replayed["target"]) == (original["id"], 201, "/echo?replay=me")
    assert sum(r["target"] == "/echo?replay=me" for r in app.received) == hits + 1
    assert app.received[-1]["body"] == b"again"
    assert _get(f"{inspector}/api/requests")[1]["requests"][0]["id"] == replayed["id"]


def test_the_inspector_refuses_other_sites(inspected, app) -> None:
    agent, inspector = inspected
    assert call(f"{agent.public_url}/echo", "POST", b"secret").status == 201
    newest = _get(f"{inspector}/api/requests")[1]["requests"][0]
    hits = len(app.received)
    # A cross-site form or simple fetch cannot add the header: no replay.
    assert _post(f"{inspector}/api/requests/{newest['id']}/replay")[0] == 403
    # A rebound DNS name reaching loopback is not the inspector's own host: nothing to read.
    assert _get(f"{inspector}/api/requests", {"Host": "attacker.example:80"})[0] == 403
    assert len(app.received) == hits
    assert _get(f"{inspector}/api/requests/999999")[0] == 404


def test_a_busy_inspector_port_moves_to_the_next_one_and_says_so(runtime, app) -> None:
    port = free_ports(2)
    import socket

    with socket.socket() as taken:
        taken.bind(("127.0.0.1", port))
        taken.listen()
        agent = AgentProcess(
            runtime, new_token(runtime), app.port, "--subdomain", "e2ebusy", "--inspect-port", str(port)
        )
        try:
            url = agent.wait_url()
            assert agent.proc.stdout is not None
            assert agent.proc.stdout.readline().strip() == f"inspector: port {port} is busy; using {port + 1}"
            assert agent.proc.stdout.readline().strip() == f"Inspector  http://127.0.0.1:{port + 1}"
            assert call(f"{url}/echo", "POST", b"still tunnelling").status == 201
            assert _get(f"http://127.0.0.1:{port + 1}/api/requests")[1]["requests"][0]["target"] == "/echo"
        finally:
            agent.stop()


# --- tunnel_tokens.py against the local runtime, without --table -----------------------------------


def _tokens_cli(runtime: LocalRuntime, *args: str) -> subprocess.CompletedProcess[str]:
    """As `make local` says to: its AWS environment, no table or URL flags."""
    return subprocess.run(
        [".venv/bin/python", "scripts/tunnel_tokens.py", *args],
        cwd=ROOT, env=aws_env(runtime.moto_url, runtime.region, "testing"), capture_output=True, text=True, timeout=60,
    )  # fmt: skip


def test_tunnel_tokens_finds_the_local_tables_from_the_stack_outputs(runtime, app, tmp_path) -> None:
    created = _tokens_cli(runtime, "create", "--label", "no-table-flag")
    assert created.returncode == 0, created.stderr
    token = token_in(created.stdout)
    login = next(line.strip() for line in created.stdout.splitlines() if " login --url " in line)
    assert login == (
        f".venv/bin/tunnel-agent login --url {runtime.outputs['Tunnel-dev']['WebSocketUrl']} --token {token}"
    )  # the WebSocket URL comes from the outputs too
    env = {k: v for k, v in os.environ.items() if k not in ("TUNNEL_URL", "TUNNEL_TOKEN")}
    saved = subprocess.run(
        shlex.split(login), cwd=ROOT, env={**env, "XDG_CONFIG_HOME": str(tmp_path)},
        capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert saved.returncode == 0, saved.stderr  # runs as printed
    token_id = token.split(".")[0]
    listed = _tokens_cli(runtime, "list")
    assert listed.returncode == 0, listed.stderr
    [row] = [line for line in listed.stdout.splitlines() if line.startswith(token_id)]
    assert "no-table-flag" in row

    agent = _adopt(_cli(str(app.port), "--subdomain", "e2enoflags", env={"XDG_CONFIG_HOME": str(tmp_path)}))
    try:
        url = agent.wait_url()
        assert "e2enoflags" in _tokens_cli(runtime, "list").stdout
        revoked = _tokens_cli(runtime, "revoke", token_id)  # the connections table and URL: from the outputs
        assert revoked.returncode == 0 and revoked.stdout.strip() == f"revoked {token_id}; closed 1 open connection"
        assert agent.proc.wait(timeout=20) == 1
        assert call(f"{url}/echo").status == 404
    finally:
        agent.stop()
