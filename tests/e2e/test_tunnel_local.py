"""The tunnel end to end on the local runtime: the real agent CLI, a real local app, real HTTP and
WebSockets through the Tunnel stack's four handlers (moto behind them)."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from typing import Any
from urllib.parse import urlsplit

import pytest

from scripts.local.runtime import LocalRuntime
from tests.e2e.conftest import free_port_base
from tests.e2e.tunnel_support import (
    ROOT,
    AgentProcess,
    Reply,
    call,
    new_token,
    running_agent,
    token_cli,
    token_in,
    tokens,
    tunnel_runtime,
)
from tests.lambdas.tunnel.agent_peers import LocalApp

FORWARD_TIMEOUT_MS = 4000

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def runtime() -> Iterator[LocalRuntime]:
    yield from tunnel_runtime(REQUEST_TIMEOUT_MS=str(FORWARD_TIMEOUT_MS))


@pytest.fixture(scope="module")
def agent(runtime: LocalRuntime, app: LocalApp) -> Iterator[AgentProcess]:
    yield from running_agent(runtime, app, "e2edemo")


def test_public_url_is_the_tunnels_own_localhost_host(runtime, agent) -> None:
    port = urlsplit(runtime.outputs["Tunnel-dev"]["HttpApiUrl"]).port
    assert agent.public_url == f"http://e2edemo.localhost:{port}"
    assert not any("share one browser origin" in line for line in agent.lines)


def path_url(runtime: LocalRuntime, name: str = "e2edemo") -> str:
    return f"{runtime.outputs['Tunnel-dev']['HttpApiUrl']}/t/{name}"


def test_path_tunnel_redirects_stay_inside_the_prefix(runtime, agent) -> None:
    base = path_url(runtime)
    assert call(f"{base}/redirect").headers["Location"] == "/t/e2edemo/target"
    host = urlsplit(base).netloc
    assert call(f"{base}/absolute-redirect").headers["Location"] == f"http://{host}/t/e2edemo/login?next=%2F"
    assert call(f"{base}/elsewhere").headers["Location"] == "https://example.org/x"  # another site: untouched
    # Host routing passes the app's answer unchanged: the tunnel is the whole origin.
    assert call(f"{agent.public_url}/absolute-redirect").headers["Location"].startswith(f"{agent.public_url}/login")


def test_path_tunnel_cookies_are_scoped_to_the_prefix_without_domain(runtime, agent) -> None:
    cookies = call(f"{path_url(runtime)}/scoped-cookies").headers.get_all("Set-Cookie")
    assert cookies == ["s=1; Path=/t/e2edemo; HttpOnly", "t=2; Path=/t/e2edemo/admin", "u=3"]
    direct = call(f"{agent.public_url}/scoped-cookies").headers.get_all("Set-Cookie")
    assert direct[0] == "s=1; Path=/; Domain=localhost; HttpOnly"


def test_status_codes_cookies_and_raw_query(runtime, agent, app) -> None:
    query = "tag=a&tag=b&q=caf%C3%A9%20au%20lait&x%5B%5D=1&empty="
    response = call(f"{agent.public_url}/echo/path%2Fpart?{query}", "POST", b"hello", {"X-Test": "1"})
    assert response.status == 201
    assert response.data == b"hello"
    assert response.headers.get_all("Set-Cookie") == ["a=1; Path=/", "b=2; HttpOnly"]
    seen = app.received[-1]
    assert seen["target"] == f"/echo/path%2Fpart?{query}"
    headers = {k.lower(): v for k, v in seen["headers"]}
    assert headers["x-test"] == "1" and "x-forwarded-prefix" not in headers  # host routing: no prefix
    call(f"{path_url(runtime)}/echo", "POST", b"x")
    assert {k.lower(): v for k, v in app.received[-1]["headers"]}["x-forwarded-prefix"] == "/t/e2edemo"
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
    # New requests for the name, still claimed by its token, are told the agent is offline.
    offline = call(f"{url}/echo")
    assert offline.status == 503
    assert json.loads(offline.data) == {"error": "tunnel 'e2ekill' is offline: its agent is not connected"}

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


def _concurrently(count: int, one: Any) -> list[Any]:
    results: list[Any] = [None] * count

    def run(i: int) -> None:
        try:
            results[i] = one(i)
        except Exception as exc:  # recorded, asserted on by the caller
            results[i] = exc

    threads = [threading.Thread(target=run, args=(i,)) for i in range(count)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    return results


def test_two_hundred_concurrent_requests_through_one_agent_while_other_apis_answer(runtime, agent) -> None:
    load: dict[str, Any] = {}

    def one(i: int) -> Reply:
        return call(f"{agent.public_url}/echo?i={i}", "POST", f"body {i}".encode())

    thread = threading.Thread(target=lambda: load.update(results=_concurrently(200, one)))
    started = time.monotonic()
    thread.start()
    time.sleep(0.5)  # the load is on: the forwarder's workers are busy and callers queue for them
    # Other APIs of the runtime keep answering: the WebSocket API takes a new agent, the Lambda API lists.
    other = AgentProcess(runtime, new_token(runtime), agent.port, "--subdomain", "e2eside")
    try:
        side_started = time.monotonic()
        other.wait_url(timeout=15)
        side_seconds = time.monotonic() - side_started
    finally:
        other.stop()
    listed = runtime.client("lambda").list_functions()  # raises if the Lambda API does not answer
    assert thread.is_alive(), "the load should still be running while the other APIs answer"
    thread.join(90)
    elapsed = time.monotonic() - started
    results = load["results"]
    failures = [
        r if isinstance(r, Exception) else r.status for r in results if isinstance(r, Exception) or r.status != 201
    ]
    assert not failures, failures[:5]
    assert [r.data for r in results] == [f"body {i}".encode() for i in range(200)]
    assert listed["ResponseMetadata"]["HTTPStatusCode"] == 200
    assert side_seconds < 10, f"a new agent took {side_seconds:.1f} s to connect under load"
    assert elapsed < 45, f"200 requests took {elapsed:.1f} s"


_RUNTIME_DRIVER = """
import json, signal, sys, threading
from scripts.local.runtime import LocalRuntime
stop = threading.Event()
runtime = LocalRuntime("dev", port_base=int(sys.argv[1]), app="scripts.local.synth:tunnel_only_app")
runtime.start()
signal.signal(signal.SIGINT, lambda *_: stop.set())  # what `python -m scripts.local` does
print(json.dumps(runtime.outputs["Tunnel-dev"]), flush=True)
while not stop.wait(0.5):
    pass
runtime.stop()
"""


def test_ctrl_c_stops_the_runtime_within_five_seconds_under_load(app) -> None:
    process = subprocess.Popen(
        [sys.executable, "-c", _RUNTIME_DRIVER, str(free_port_base())],
        cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True,
    )  # fmt: skip
    agent: AgentProcess | None = None
    try:
        assert process.stdout is not None
        outputs = json.loads(process.stdout.readline())
        token = _create_token_against(outputs)
        agent = AgentProcess(None, token, app.port, "--subdomain", "e2estop", url=outputs["WebSocketUrl"])
        url = agent.wait_url()
        seen = len(app.received)
        load = threading.Thread(
            target=_concurrently, args=(200, lambda i: call(f"{url}/slow?i={i}", headers={"X-Delay": "2"})), daemon=True
        )
        load.start()
        deadline = time.monotonic() + 10
        while len(app.received) < seen + 8:  # requests are in flight at the app
            assert time.monotonic() < deadline, "the load never reached the app"
            time.sleep(0.02)
        interrupted = time.monotonic()
        process.send_signal(signal.SIGINT)
        process.wait(timeout=15)
        assert time.monotonic() - interrupted < 5
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
        if agent is not None:
            agent.stop()


def _create_token_against(outputs: dict[str, str]) -> str:
    """A token in the driver's moto (its port is the HTTP API's port + 100)."""
    from scripts.local.runtime import MOTO_OFFSET

    port = int(urlsplit(outputs["HttpApiUrl"]).port or 0) + MOTO_OFFSET
    return token_in(token_cli(f"http://127.0.0.1:{port}", "us-east-1", outputs["TokensTableName"], "create"))


def test_app_answering_a_big_upload_early_gets_its_own_answer_back(agent, app) -> None:
    import requests  # urllib3 reads an answer that arrives while it is still sending (http.client does not)

    body = os.urandom(4 * 1024 * 1024)
    headers = {"Content-Type": "application/octet-stream"}
    direct = requests.post(f"{app.url}/early", data=body, headers=headers, timeout=30)
    public = urlsplit(agent.public_url)  # NAME.localhost, sent to loopback as curl and browsers do
    tunnelled = requests.post(
        f"http://127.0.0.1:{public.port}/early", data=body, headers={**headers, "Host": public.netloc}, timeout=30
    )
    assert (tunnelled.status_code, tunnelled.content) == (direct.status_code, direct.content) == (401, b"login first")


def test_head_keeps_content_length_and_no_content_type_is_added(agent, app) -> None:
    direct, tunnelled = call(f"{app.url}/sized", "HEAD"), call(f"{agent.public_url}/sized", "HEAD")
    assert tunnelled.status == direct.status == 200
    assert tunnelled.headers["Content-Length"] == direct.headers["Content-Length"] == "1000"
    assert tunnelled.data == b""
    # The app's echo sets no Content-Type: nobody on the way may invent one.
    echoed = call(f"{agent.public_url}/echo", "POST", b"plain bytes")
    assert echoed.status == 201 and echoed.headers["Content-Type"] is None
    assert call(f"{app.url}/echo", "POST", b"plain bytes").headers["Content-Type"] is None


def test_text_bodies_pass_byte_for_byte_even_when_not_utf8(agent, app) -> None:
    odd = b"caf\xe9 \xff\xfe latin-1, not UTF-8"
    response = call(f"{agent.public_url}/echo", "POST", odd, {"Content-Type": "text/plain"})
    assert app.received[-1]["body"] == odd
    assert response.data == odd


def test_text_response_over_the_binary_limit_passes(agent, app) -> None:
    from tests.lambdas.tunnel.agent_peers import BIG_TEXT

    response = call(f"{agent.public_url}/bigtext")
    assert response.status == 200 and response.data == BIG_TEXT
    assert response.headers["Content-Type"] == "text/html; charset=utf-8"


def test_one_agent_per_name_and_replace_takes_over(runtime, app) -> None:
    token = new_token(runtime)
    first = AgentProcess(runtime, token, app.port, "--subdomain", "e2eone")
    url = first.wait_url()
    try:
        second = AgentProcess(runtime, token, app.port, "--subdomain", "e2eone")
        _, err = second.proc.communicate(timeout=30)
        assert second.proc.returncode == 1
        assert err.strip().splitlines() == [
            "error: tunnel 'e2eone' is already served by another agent: stop that one, or add --replace to take it over"
        ]
        third = AgentProcess(runtime, token, app.port, "--subdomain", "e2eone", "--replace")
        try:
            assert third.wait_url() == url
            out, _ = first.proc.communicate(timeout=15)
            assert first.proc.returncode == 1
            assert "Replaced: another agent took over 'e2eone'; exiting" in out
            assert call(f"{url}/echo", "POST", b"to the new agent").data == b"to the new agent"
        finally:
            third.stop()
    finally:
        first.stop()


def test_invalid_subdomain_prints_the_rule(runtime, app) -> None:
    bad = AgentProcess(runtime, new_token(runtime), app.port, "--subdomain", "Not_Valid!")
    _, err = bad.proc.communicate(timeout=30)
    assert bad.proc.returncode == 2
    assert err.strip() == (
        "error: --subdomain 'Not_Valid!': 3-63 characters of a-z, 0-9 and hyphens, "
        "starting and ending with a letter or digit"
    )


def test_the_agent_command_make_local_prints_runs_as_printed(runtime, app) -> None:
    import shlex

    from scripts.local.__main__ import hints

    [line] = [h for h in hints(runtime) if h.startswith("tunnel agent (Tunnel-dev): ")]
    command = shlex.split(line.split(": ", 1)[1].replace("--port 3000", f"--port {app.port}"))
    assert command[0] == ".venv/bin/tunnel-agent"  # the console script `make setup` installs, run from the root
    process = subprocess.Popen(command, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        assert process.stdout is not None
        first = process.stdout.readline()
        assert first.startswith("Forwarding "), process.stderr.read() if process.stderr else ""
    finally:
        process.send_signal(signal.SIGINT)
        process.wait(10)


def test_revoking_a_token_closes_its_open_connection(runtime, app) -> None:
    outputs = runtime.outputs["Tunnel-dev"]
    token = new_token(runtime)
    running = AgentProcess(runtime, token, app.port, "--subdomain", "e2erevoke")
    try:
        url = running.wait_url()
        assert call(f"{url}/echo", "POST", b"up").status == 201
        out = tokens(
            runtime, "revoke", token.split(".")[0],
            "--connections-table", outputs["ConnectionsTableName"], "--websocket-url", outputs["WebSocketUrl"],
        )  # fmt: skip
        assert "closed 1 open connection" in out
        # The server closed the socket; the agent's reconnect is refused and it exits with one line.
        assert running.proc.wait(timeout=20) == 1
        assert running.proc.stderr is not None and "rejected the token" in running.proc.stderr.read()
        assert call(f"{url}/echo").status == 404  # the name is released with the token
    finally:
        running.stop()


def test_an_expired_token_is_refused(runtime, app) -> None:
    out = tokens(runtime, "create", "--label", "short", "--expires-in", "1s")
    token = token_in(out)
    assert any(line.startswith("expires:") for line in out.splitlines())
    time.sleep(1.2)
    running = AgentProcess(runtime, token, app.port, "--subdomain", "e2eexpired")
    try:
        assert running.proc.wait(timeout=20) == 1
        assert running.proc.stderr is not None and "rejected the token" in running.proc.stderr.read()
    finally:
        running.stop()
    listed = tokens(runtime, "list")
    assert "EXPIRES" in listed.splitlines()[0]
