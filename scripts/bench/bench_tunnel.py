"""HTTP tunnel figures.

`python -m scripts.bench.bench_tunnel` prints Markdown tables:

- Response detection: from the moment a response is stored on its pending request (the response
  handler's UpdateItem has returned) to the moment the forwarder's wait returns it, over REQUESTS
  requests against moto, with the forwarder's adaptive schedule and with the spec's fixed 100 ms
  polling, interleaved so both see the same machine. Agents answer after a seeded random delay
  (uniform 5-150 ms, a typical local app behind a laptop's connection); reads per request are
  what each schedule costs in DynamoDB.
- Added latency through the local tunnel (when the local runtime is importable): LOCAL_REQUESTS
  empty GETs and LOCAL_BIG_REQUESTS 1 MB POSTs (echoed, so 1 MB each way through S3), sent
  directly to a local app and through the tunnel, median and p99.
"""

from __future__ import annotations

import os
import random
import statistics
import sys
import threading
import time
from typing import Any

REQUESTS = int(os.environ.get("BENCH_TUNNEL_REQUESTS", "200"))
TABLE = "bench-pending"
os.environ.update(
    AWS_DEFAULT_REGION="us-east-1",
    AWS_REGION="us-east-1",
    AWS_ACCESS_KEY_ID="bench",
    AWS_SECRET_ACCESS_KEY="bench",  # noqa: S106 - moto's fake credentials
)
os.environ.pop("AWS_ENDPOINT_URL", None)


def _percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


def detection() -> dict[str, dict[str, float]]:
    from moto import mock_aws

    from lambdas.common.aws import client
    from lambdas.tunnel.forward import FIXED_100MS, PollSchedule, wait_for_response
    from lambdas.tunnel.store import COMPLETED, PendingStore

    class CountingStore(PendingStore):
        reads = 0

        def get(self, request_id: str) -> dict[str, Any] | None:
            CountingStore.reads += 1
            return super().get(request_id)

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
            "p99": _percentile(data["latency"], 0.99),
            "reads": statistics.mean(data["reads"]),
        }
    return summary


def main() -> int:
    rows = detection()
    print(f"Response detection over {REQUESTS} requests against moto (agent answers after 5-150 ms):\n")
    print("| polling | median (ms) | p99 (ms) | reads per request |")
    print("|---|---:|---:|---:|")
    for name, row in rows.items():
        print(f"| {name} | {row['median']:.1f} | {row['p99']:.1f} | {row['reads']:.1f} |")
    adaptive, fixed = (rows[name]["median"] for name in rows)
    print(f"\nAdaptive median is {adaptive / fixed:.2f} of fixed polling's (goal: at most 0.25).")
    local = _local_tunnel()
    if local:
        print("\n" + local)
    return 0


LOCAL_REQUESTS = int(os.environ.get("BENCH_TUNNEL_LOCAL_REQUESTS", "300"))
LOCAL_BIG_REQUESTS = int(os.environ.get("BENCH_TUNNEL_LOCAL_BIG_REQUESTS", "30"))


def tunnel_only_app(app: Any, env_name: str, context: dict[str, Any]) -> None:
    """The local runtime's app for this bench: only the Tunnel stack."""
    from infrastructure.config import get_config
    from infrastructure.stacks.tunnel import TunnelStack

    config = get_config(env_name)
    TunnelStack(app, config.stack_name("Tunnel"), config=config)


def _echo_app() -> Any:
    from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

    class Echo(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def _reply(self) -> None:
            body = self.rfile.read(int(self.headers.get("Content-Length") or 0)) or b"ok"
            self.send_response(200)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        do_GET = do_POST = _reply

        def log_message(self, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Echo)
    threading.Thread(target=server.serve_forever, args=(0.05,), daemon=True).start()
    return server


def _timed(base: str, path: str, body: bytes | None, runs: int) -> list[float]:
    import http.client
    from urllib.parse import urlsplit

    parts = urlsplit(base)
    times = []
    for _ in range(runs):
        started = time.perf_counter()
        conn = http.client.HTTPConnection(parts.hostname or "127.0.0.1", parts.port, timeout=30)
        conn.request("POST" if body else "GET", parts.path + path, body=body)
        response = conn.getresponse()
        data = response.read()
        conn.close()
        times.append((time.perf_counter() - started) * 1000)
        assert response.status == 200 and (body is None or data == body), response.status
    return times


def _free_port_base() -> int:
    import socket

    from scripts.local.runtime import MOTO_OFFSET

    def free(port: int) -> bool:
        with socket.socket() as probe:
            try:
                probe.bind(("127.0.0.1", port))
            except OSError:
                return False
        return True

    rng = random.Random()
    for _ in range(50):
        base = rng.randrange(40000, 60000)
        if all(free(p) for p in (base, base + 1, base + MOTO_OFFSET)):
            return base
    raise RuntimeError("no free port range for the local runtime")


def _local_tunnel() -> str | None:
    """Added latency through the local runtime's tunnel: the same requests sent directly to the
    app and through the real agent CLI, HTTP API, forwarder, WebSocket and response handler."""
    import subprocess
    from pathlib import Path

    try:
        from scripts.local.runtime import LocalRuntime
    except ImportError:
        return None
    from lambdas.tunnel.tokens import new_token

    root = Path(__file__).resolve().parents[2]
    runtime = LocalRuntime("dev", port_base=_free_port_base(),
                           app=f"{__name__ if __name__ != '__main__' else 'scripts.bench.bench_tunnel'}:tunnel_only_app",
                           )  # fmt: skip
    runtime.start()
    app = _echo_app()
    agent = None
    try:
        outputs = runtime.outputs["Tunnel-dev"]
        token_id, token, secret_hash = new_token()
        runtime.client("dynamodb").put_item(
            TableName=outputs["TokensTableName"],
            Item={"pk": {"S": "TOKEN"}, "sk": {"S": token_id}, "secretHash": {"S": secret_hash},
                  "label": {"S": "bench"}, "createdAt": {"N": "0"}},
        )  # fmt: skip
        agent = subprocess.Popen(
            [sys.executable, "scripts/tunnel_agent.py", "--url", outputs["WebSocketUrl"], "--token", token,
             "--port", str(app.server_address[1])],
            cwd=root, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
            env={**os.environ, "PYTHONUNBUFFERED": "1"},
        )  # fmt: skip
        assert agent.stdout is not None
        public = agent.stdout.readline().split()[1]
        direct = f"http://127.0.0.1:{app.server_address[1]}"
        big = os.urandom(1024 * 1024)
        _timed(public, "/", None, 10)  # warm every worker on the way
        rows = []
        for label, body, runs in (
            ("GET, empty body", None, LOCAL_REQUESTS),
            ("POST, 1 MB body", big, LOCAL_BIG_REQUESTS),
        ):
            plain = _timed(direct, "/", body, runs)
            tunnelled = _timed(public, "/", body, runs)
            rows.append((label, runs, plain, tunnelled))
    finally:
        if agent is not None:
            agent.terminate()
            agent.wait(10)
        app.shutdown()
        runtime.stop()
    lines = [
        "Added latency through the local tunnel (local runtime + agent CLI; moto behind the handlers):\n",
        "| request | n | direct median / p99 (ms) | tunnel median / p99 (ms) | added median (ms) |",
        "|---|---:|---:|---:|---:|",
    ]
    for label, runs, plain, tunnelled in rows:
        lines.append(
            f"| {label} | {runs} | {statistics.median(plain):.1f} / {_percentile(plain, 0.99):.1f} | "
            f"{statistics.median(tunnelled):.1f} / {_percentile(tunnelled, 0.99):.1f} | "
            f"{statistics.median(tunnelled) - statistics.median(plain):.1f} |"
        )
    return "\n".join(lines)


if __name__ == "__main__":
    sys.exit(main())
