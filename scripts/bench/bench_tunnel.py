"""HTTP tunnel figures.

`python -m scripts.bench.bench_tunnel` prints Markdown tables:

- Response detection: from the moment a response is stored on its pending request (the response
  handler's UpdateItem has returned) to the moment the forwarder's wait returns it, over REQUESTS
  requests against moto, with the forwarder's adaptive schedule and with the spec's fixed 100 ms
  polling, interleaved so both see the same machine. Agents answer after a seeded random delay
  (uniform 5-150 ms, a typical local app behind a laptop's connection); reads per request are
  what each schedule costs in DynamoDB.
- Through the local tunnel under load (when the local runtime is importable): at each level of
  LEVELS (1, 10, 50 and 200 concurrent GETs), the same requests sent directly to a local app and
  through the local runtime and the real agent CLI (scripts/tunnel_agent.py): p50/p99, errors (any
  status but 2xx and 429, a wrong body, no answer), 429s from the per-tunnel in-flight cap counted
  apart, and requests per second; then LOCAL_BIG_REQUESTS 1 MB POSTs one at a time (echoed, so
  1 MB each way through S3). The cap is the environment's configured `max_inflight_per_tunnel`
  unless BENCH_TUNNEL_MAX_INFLIGHT sets another for the run. The load comes from a separate
  process (aiohttp, one keep-alive connection per concurrent caller).
"""

from __future__ import annotations

import asyncio
import os
import random
import statistics
import sys
import threading
import time
from dataclasses import dataclass
from typing import Any

from scripts.bench.foundation import percentile, report_goal

REQUESTS = int(os.environ.get("BENCH_TUNNEL_REQUESTS", "200"))
TABLE = "bench-pending"


def _fake_aws_env() -> None:
    """moto's fake credentials and no endpoint override; only when run as the bench (importing the
    module, as its tests and the load process do, changes no environment)."""
    os.environ.update(
        AWS_DEFAULT_REGION="us-east-1",
        AWS_REGION="us-east-1",
        AWS_ACCESS_KEY_ID="bench",
        AWS_SECRET_ACCESS_KEY="bench",  # noqa: S106 - moto's fake credentials
    )
    os.environ.pop("AWS_ENDPOINT_URL", None)


def detection() -> dict[str, dict[str, float]]:
    from moto import mock_aws

    from lambdas.common.aws import client
    from lambdas.tunnel.forward import FIXED_100MS, PollSchedule, wait_for_response
    from lambdas.tunnel.store import COMPLETED, PendingStore

    class CountingStore(PendingStore):
        """Counts reads; serializes calls, because moto's in-memory DynamoDB is not thread-safe (a
        read while the responder thread writes the same item can raise inside moto)."""

        reads = 0
        lock = threading.Lock()

        def get(self, request_id: str) -> dict[str, Any] | None:
            CountingStore.reads += 1
            with self.lock:
                return super().get(request_id)

        def finish(self, *args: Any, **kwargs: Any) -> Any:
            with self.lock:
                return super().finish(*args, **kwargs)

    schedules = {"adaptive (10 ms, backing off to 100 ms)": PollSchedule(), "fixed 100 ms (spec)": FIXED_100MS}
    results: dict[str, dict[str, list[float]]] = {name: {"latency": [], "reads": []} for name in schedules}
    rng = random.Random(20261123)
    with mock_aws():
        client("dynamodb").create_table(
            TableName=TABLE,
            KeySchema=[{"AttributeName": "requestId", "KeyType": "HASH"}],
            AttributeDefinitions=[{"AttributeName": "requestId", "AttributeType": "S"}],
            BillingMode="PAY_PER_REQUEST",
        )
        store = CountingStore(TABLE)
        for i in range(REQUESTS):
            delay = rng.uniform(0.005, 0.150)
            for name, schedule in schedules.items():
                request_id = f"{i}-{name[:5]}"
                store.put(request_id, "conn", "apigw")
                stored_at: list[float] = []

                def answer(rid: str = request_id, wait: float = delay, out: list[float] = stored_at) -> None:
                    time.sleep(wait)
                    store.finish(rid, COMPLETED, response_data="{}")
                    out.append(time.perf_counter())

                responder = threading.Thread(target=answer)
                CountingStore.reads = 0
                responder.start()
                item = wait_for_response(store, request_id, time.monotonic() + 5, schedule)
                returned = time.perf_counter()
                responder.join()
                assert item and item["status"] == COMPLETED
                results[name]["latency"].append((returned - stored_at[0]) * 1000)
                results[name]["reads"].append(CountingStore.reads)
    summary: dict[str, dict[str, float]] = {}
    for name, data in results.items():
        summary[name] = {
            "median": statistics.median(data["latency"]),
            "p99": percentile(data["latency"], 0.99),
            "reads": statistics.mean(data["reads"]),
        }
    return summary


def main() -> int:
    _fake_aws_env()
    rows = detection()
    print(f"Response detection over {REQUESTS} requests against moto (agent answers after 5-150 ms):\n")
    print("| polling | median (ms) | p99 (ms) | reads per request |")
    print("|---|---:|---:|---:|")
    for name, row in rows.items():
        print(f"| {name} | {row['median']:.1f} | {row['p99']:.1f} | {row['reads']:.1f} |")
    adaptive, fixed = (rows[name]["median"] for name in rows)
    print(f"\nAdaptive median is {adaptive / fixed:.2f} of fixed polling's (goal: at most 0.25).")
    report_goal(
        "tunnel response detection, median vs the spec's fixed 100 ms polling",
        "<= 0.25x",
        f"{adaptive / fixed:.2f}x",
        adaptive / fixed <= 0.25,
    )
    local = _local_tunnel()
    if local:
        print("\n" + local)
    return 0


# (concurrent requests, requests sent) per level; the same requests go to the app directly and
# through the tunnel. BENCH_TUNNEL_LEVELS="1:20,10:40" for a quick run.
LEVELS = os.environ.get("BENCH_TUNNEL_LEVELS", "1:100,10:200,50:400,200:400")
LOCAL_BIG_REQUESTS = int(os.environ.get("BENCH_TUNNEL_LOCAL_BIG_REQUESTS", "30"))
# Unset: the environment's configured per-tunnel cap (infrastructure/config.py), as `make local` and
# AWS run it. A number replaces the forwarder's MAX_INFLIGHT_PER_TUNNEL for this run (e.g. 2 to
# watch throttling at 10 concurrent requests).
MAX_INFLIGHT = os.environ.get("BENCH_TUNNEL_MAX_INFLIGHT")
CLIENT_TIMEOUT = 60.0  # beyond the forwarder's 25 s: the tunnel's own 504 is what gets counted
WRONG_BODY = -1  # a 2xx whose body is not what the app sent: counted as an error
NO_ANSWER = 0  # connection error or client timeout


def parse_levels(text: str) -> list[tuple[int, int]]:
    """`1:100,10:200` -> [(1, 100), (10, 200)]: concurrent requests and requests sent per level."""
    levels = []
    for part in text.split(","):
        concurrency, _, total = part.strip().partition(":")
        if not (concurrency.isdigit() and total.isdigit()) or not 0 < int(concurrency) <= int(total):
            raise ValueError(
                f"bad level {part.strip()!r}: expected CONCURRENT:REQUESTS with 0 < CONCURRENT <= REQUESTS"
            )
        levels.append((int(concurrency), int(total)))
    return levels


def loopback_target(url: str) -> tuple[str, dict[str, str]]:
    """`http://NAME.localhost:PORT/x` -> (`http://127.0.0.1:PORT/x`, {"Host": "NAME.localhost:PORT"}):
    browsers and curl send `*.localhost` to loopback; Python's resolver may not know the name."""
    from urllib.parse import urlsplit, urlunsplit

    parts = urlsplit(url)
    if not (parts.hostname or "").endswith(".localhost"):
        return url, {}
    return urlunsplit(parts._replace(netloc=f"127.0.0.1:{parts.port or 80}")), {"Host": parts.netloc}


def forwarding_url(line: str) -> str | None:
    """The public URL in the agent's `Forwarding PUBLIC -> TARGET` line; None for other lines."""
    words = line.split()
    if not words or words[0].lower() != "forwarding":
        return None
    return next((w for w in words[1:] if w.startswith(("http://", "https://"))), None)


@dataclass(frozen=True)
class LevelResult:
    """One level's answers (status or WRONG_BODY/NO_ANSWER, milliseconds) and its wall time."""

    outcomes: list[tuple[int, float]]
    seconds: float

    @property
    def ok(self) -> list[float]:
        return [ms for status, ms in self.outcomes if 200 <= status < 300]

    @property
    def throttled(self) -> int:
        return sum(1 for status, _ in self.outcomes if status == 429)

    @property
    def errors(self) -> int:
        """Anything but a right 2xx answer or a 429: other statuses, wrong bodies, no answer."""
        return len(self.outcomes) - len(self.ok) - self.throttled

    def latency(self) -> str:
        """p50 / p99 of the 2xx answers."""
        ok = self.ok
        return f"{statistics.median(ok):.1f} / {percentile(ok, 0.99):.1f}" if ok else "-"

    def per_second(self) -> float:
        return len(self.outcomes) / self.seconds if self.seconds > 0 else 0.0


def table_row(label: str, concurrency: int, direct: LevelResult, tunnel: LevelResult) -> str:
    added = f"{statistics.median(tunnel.ok) - statistics.median(direct.ok):.1f}" if tunnel.ok and direct.ok else "-"
    return (
        f"| {label} | {concurrency} | {len(tunnel.outcomes)} | {direct.latency()} | {direct.errors} | "
        f"{tunnel.latency()} | {added} | {tunnel.errors} | {tunnel.throttled} | {tunnel.per_second():.0f} |"
    )


def load(url: str, concurrency: int, total: int, body: bytes | None) -> LevelResult:
    """`total` requests to `url`, `concurrency` at a time (aiohttp, keep-alive, one connection per
    concurrent caller). GETs carry `?i=N` and the bench app answers with the path it saw; POSTs
    are echoed: a 2xx with another body counts as WRONG_BODY. Runs in the load process."""
    return asyncio.run(_load(url, concurrency, total, body))


async def _load(url: str, concurrency: int, total: int, body: bytes | None) -> LevelResult:
    import aiohttp

    base, headers = loopback_target(url.rstrip("/"))
    outcomes: list[tuple[int, float]] = []
    numbers = iter(range(total))  # shared by the callers: each takes the next request
    connector = aiohttp.TCPConnector(limit=concurrency)
    timeout = aiohttp.ClientTimeout(total=CLIENT_TIMEOUT)
    async with aiohttp.ClientSession(connector=connector, timeout=timeout, auto_decompress=False) as session:

        async def caller() -> None:
            for i in numbers:
                path = f"/bench?i={i}"
                expected = body if body is not None else path.encode()
                started = time.perf_counter()
                try:
                    method = "POST" if body is not None else "GET"
                    async with session.request(method, base + path, data=body, headers=headers) as response:
                        data = await response.read()
                        status = response.status
                except (aiohttp.ClientError, TimeoutError, OSError):
                    status = NO_ANSWER
                else:
                    if 200 <= status < 300 and data != expected:
                        status = WRONG_BODY
                outcomes.append((status, (time.perf_counter() - started) * 1000))

        started = time.perf_counter()
        await asyncio.gather(*(caller() for _ in range(concurrency)))
        seconds = time.perf_counter() - started
    return LevelResult(outcomes, seconds)


def _bench_app() -> Any:
    """The local app: GET answers with the path and query it saw, POST echoes its body."""
    from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

    class Echo(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"
        # Headers and body are two writes: with Nagle on, the body of every answer on a kept-alive
        # connection would wait out the client's delayed ACK (about 40 ms).
        disable_nagle_algorithm = True

        def _reply(self) -> None:
            body = self.rfile.read(int(self.headers.get("Content-Length") or 0)) or self.path.encode()
            self.send_response(200)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        do_GET = do_POST = _reply

        def log_message(self, *args: Any) -> None:
            pass

    class Server(ThreadingHTTPServer):
        request_queue_size = 256  # 200 callers connect at once
        daemon_threads = True

    server = Server(("127.0.0.1", 0), Echo)
    threading.Thread(target=server.serve_forever, args=(0.05,), daemon=True).start()
    return server


def _start_agent(root: Any, websocket_url: str, token: str, port: int) -> tuple[Any, str]:
    """The real agent CLI; returns it with its public URL. Both of its outputs are drained (one
    line per request would otherwise fill the pipe and stall it)."""
    import subprocess
    from collections import deque

    agent = subprocess.Popen(
        [sys.executable, "scripts/tunnel_agent.py", "--url", websocket_url, "--token", token, "--port", str(port)],
        cwd=root, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        env={**os.environ, "PYTHONUNBUFFERED": "1"},
    )  # fmt: skip
    assert agent.stdout is not None and agent.stderr is not None
    errors: deque[str] = deque(maxlen=5)
    threading.Thread(target=errors.extend, args=(agent.stderr,), daemon=True).start()
    url = None
    for line in agent.stdout:
        url = forwarding_url(line)
        if url:
            break
    if not url:
        agent.wait(10)
        raise RuntimeError(f"the agent printed no Forwarding line: {''.join(errors).strip()}")
    threading.Thread(target=deque, args=(agent.stdout, 0), daemon=True).start()  # read and dropped
    return agent, url


def _local_tunnel() -> str | None:
    """p50/p99, errors and throttles through the local runtime's tunnel (the real agent CLI, HTTP
    API, forwarder, WebSocket, response handler) beside the same requests sent directly to the app,
    at each level of concurrency; then 1 MB POSTs one at a time (1 MB each way through S3)."""
    import multiprocessing
    from concurrent.futures import ProcessPoolExecutor
    from pathlib import Path

    try:
        from scripts.local.functions import MAX_WORKERS
        from scripts.local.ports import free_port_base
        from scripts.local.runtime import LocalRuntime
        from scripts.local.synth import TUNNEL_ONLY_APP
    except ImportError:
        return None
    from infrastructure.config import get_config
    from scripts.tunnel_tokens import create_token

    levels = parse_levels(LEVELS)
    cap = int(MAX_INFLIGHT) if MAX_INFLIGHT else get_config("dev").tunnel.max_inflight_per_tunnel
    set_env = {"tunnel-forward-dev": {"MAX_INFLIGHT_PER_TUNNEL": str(cap)}} if MAX_INFLIGHT else {}
    root = Path(__file__).resolve().parents[2]
    # The load runs in its own process, so the client's work does not take this process's GIL
    # from the runtime's server threads.
    clients = ProcessPoolExecutor(max_workers=1, mp_context=multiprocessing.get_context("spawn"))
    runtime = LocalRuntime("dev", port_base=free_port_base(2), app=TUNNEL_ONLY_APP, set_env=set_env)
    app = agent = None
    rows = []
    try:
        runtime.start()
        app = _bench_app()
        outputs = runtime.outputs["Tunnel-dev"]
        token = create_token(outputs["TokensTableName"], "bench", ddb=runtime.client("dynamodb"))
        agent, public = _start_agent(root, outputs["WebSocketUrl"], token, app.server_address[1])
        direct = f"http://127.0.0.1:{app.server_address[1]}"
        warm = clients.submit(load, public, 10, 40, None).result()  # every forwarder worker, started
        if warm.errors or not warm.ok:
            raise RuntimeError(f"warm-up through the tunnel failed: {warm.outcomes[:5]}")
        big = os.urandom(1024 * 1024)
        plan = [("GET", c, n, None) for c, n in levels] + [("POST 1 MB", 1, LOCAL_BIG_REQUESTS, big)]
        for label, concurrency, total, body in plan:
            print(f"tunnel bench: {label} x{total}, {concurrency} at a time", file=sys.stderr, flush=True)
            plain = clients.submit(load, direct, concurrency, total, body).result()
            tunnelled = clients.submit(load, public, concurrency, total, body).result()
            rows.append(table_row(label, concurrency, plain, tunnelled))
            if label == "GET" and concurrency == max(c for c, _ in levels):
                report_goal(
                    f"{concurrency} concurrent GETs through one local agent",
                    "no errors (429 only beyond the per-tunnel cap)",
                    f"{tunnelled.errors} errors, {tunnelled.throttled} x 429 of {len(tunnelled.outcomes)}",
                    tunnelled.errors == 0,
                )
    finally:
        if agent is not None:
            agent.terminate()
            agent.wait(10)
        if app is not None:
            app.shutdown()
        runtime.stop()
        clients.shutdown()
    cap_note = (
        f"per-tunnel cap {cap} set by BENCH_TUNNEL_MAX_INFLIGHT"
        if MAX_INFLIGHT
        else f"dev's configured per-tunnel cap, max_inflight_per_tunnel={cap}"
    )
    lines = [
        "Through the local tunnel (local runtime + agent CLI, moto behind the handlers) and directly to "
        f"the app, the same requests at each level; {cap_note}. The local runtime runs at most "
        f"{MAX_WORKERS} forwarder workers at once (more requests queue for one), so a tunnel holds "
        f"at most {min(cap, MAX_WORKERS)} in flight here; p50 / p99 over 2xx answers; errors: any "
        "other status, a wrong body or no answer; 429s counted apart:\n",
        "| request | concurrent | n | direct p50 / p99 (ms) | direct errors | tunnel p50 / p99 (ms) "
        "| added p50 (ms) | tunnel errors | tunnel 429 | tunnel req/s |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
        *rows,
    ]
    return "\n".join(lines)


if __name__ == "__main__":
    sys.exit(main())
