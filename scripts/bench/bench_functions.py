"""Functions figures on the local runtime (the Functions stack only).

`python -m scripts.bench.bench_functions` prints Markdown tables:

- Create to first answer: from `POST /functions` (inline source) to the first successful invoke
  of the draft, and on to the first successful invoke of `live` (publish, promote, invoke), each
  step polled every 20 ms as a client would; median of RUNS functions.
- Invoke latency: a no-op function's `live` alias called CALLS times directly (Lambda `Invoke`
  through the runtime's Lambda API, as boto3 does) and CALLS times through the Functions API
  (`POST .../invoke`, which checks the key, the quota, writes the invocation record and counts
  usage), interleaved so both see the same machine; the API's added latency is the difference.
- Throughput: sync invokes per second through the API at concurrency 1 and 10 for SECONDS each,
  every caller on its own keep-alive connection.
"""

from __future__ import annotations

import http.client
import json
import os
import statistics
import sys
import threading
import time
from typing import Any
from urllib.parse import urlsplit

from scripts.bench.foundation import percentile

RUNS = int(os.environ.get("BENCH_FUNCTIONS_RUNS", "3"))
CALLS = int(os.environ.get("BENCH_FUNCTIONS_CALLS", "200"))
SECONDS = float(os.environ.get("BENCH_FUNCTIONS_SECONDS", "10"))
NOOP = "def handler(event, context):\n    return None\n"
ORG = "bench"


class Client:
    """One keep-alive connection to the Functions API."""

    def __init__(self, base: str, key: str) -> None:
        parts = urlsplit(base)
        self.conn = http.client.HTTPConnection(parts.hostname or "127.0.0.1", parts.port, timeout=60)
        self.headers = {"Authorization": f"Bearer {key}", "Content-Type": "application/json"}

    def call(self, method: str, path: str, body: Any = None) -> tuple[int, Any]:
        self.conn.request(method, f"/v1/orgs/{ORG}{path}", None if body is None else json.dumps(body), self.headers)
        response = self.conn.getresponse()
        raw = response.read()
        return response.status, json.loads(raw) if raw else None

    def close(self) -> None:
        self.conn.close()


def _until(check: Any, timeout: float = 120) -> None:
    deadline = time.perf_counter() + timeout
    while not check():
        if time.perf_counter() > deadline:
            raise RuntimeError("timed out waiting")
        time.sleep(0.02)


def create_to_first_answer(client: Client, name: str) -> tuple[float, float]:
    started = time.perf_counter()
    status, fn = client.call("POST", "/functions", {"name": name, "source": NOOP})
    assert status == 201, fn
    _until(
        lambda: client.call("POST", f"/functions/{name}/invoke", {"qualifier": "draft"})[1].get("status") == "succeeded"
    )
    draft = time.perf_counter() - started
    client.call("POST", f"/functions/{name}/versions", {})
    _until(lambda: client.call("GET", f"/functions/{name}/versions/1")[1]["status"] == "published")
    client.call("PUT", f"/functions/{name}/aliases/live", {"version": 1})
    _until(lambda: client.call("POST", f"/functions/{name}/invoke", {})[1].get("status") == "succeeded")
    return draft, time.perf_counter() - started


def main() -> int:
    from scripts.functions_keys import create_key
    from scripts.local.ports import free_port_base
    from scripts.local.runtime import LocalRuntime
    from scripts.local.synth import FUNCTIONS_ONLY_APP

    runtime = LocalRuntime(
        "dev",
        port_base=free_port_base(2, 10000, 20000),
        app=FUNCTIONS_ONLY_APP,
        set_env={"functions-api-dev": {"QUOTA_INVOCATIONS_PER_MINUTE": "1000000"}},
    ).start()
    try:
        base = runtime.output("FunctionsApiUrl")
        key = create_key(runtime.output("FunctionsTableName"), ORG, "admin", ddb=runtime.client("dynamodb"))
        client = Client(base, key)
        firsts = [create_to_first_answer(client, f"noop{i}") for i in range(RUNS)]
        print("| create to first successful invoke | median | runs |")
        print("|---|---:|---:|")
        print(f"| draft (`$LATEST`) | {statistics.median([f[0] for f in firsts]):.2f} s | {RUNS} |")
        print(
            f"| live (create, publish, promote, invoke) | {statistics.median([f[1] for f in firsts]):.2f} s | {RUNS} |"
        )
        print()

        lam = runtime.client("lambda")
        target = client.call("GET", "/functions/noop0")[1]["lambda_function"]
        direct: list[float] = []
        through: list[float] = []
        for _ in range(10):  # warm both paths
            lam.invoke(FunctionName=target, Qualifier="live", Payload=b"{}")
            client.call("POST", "/functions/noop0/invoke", {})
        for _ in range(CALLS):
            started = time.perf_counter()
            lam.invoke(FunctionName=target, Qualifier="live", Payload=b"{}")
            direct.append((time.perf_counter() - started) * 1000)
            started = time.perf_counter()
            status, answer = client.call("POST", "/functions/noop0/invoke", {})
            through.append((time.perf_counter() - started) * 1000)
            assert status == 200 and answer["status"] == "succeeded", answer
        print(f"| no-op invoke, {CALLS} calls each, interleaved | median | p99 |")
        print("|---|---:|---:|")
        print(
            f"| direct Lambda `Invoke` (runtime's Lambda API) | {statistics.median(direct):.1f} ms | {percentile(direct, 0.99):.1f} ms |"
        )
        print(
            f"| through the Functions API | {statistics.median(through):.1f} ms | {percentile(through, 0.99):.1f} ms |"
        )
        added = statistics.median(through) - statistics.median(direct)
        print(f"| added by the API (median difference) | {added:.1f} ms | |")
        print()
        client.close()

        print(f"| sync invokes through the API, {SECONDS:.0f} s each | invokes/s | median latency |")
        print("|---|---:|---:|")
        for concurrency in (1, 10):
            rate, median = throughput(base, key, concurrency)
            print(f"| concurrency {concurrency} | {rate:.1f} | {median:.1f} ms |")
    finally:
        runtime.stop()
    return 0


def throughput(base: str, key: str, concurrency: int) -> tuple[float, float]:
    latencies: list[float] = []
    errors: list[str] = []
    lock = threading.Lock()
    stop_at = time.perf_counter() + SECONDS

    def caller() -> None:
        client = Client(base, key)
        mine: list[float] = []
        try:
            while time.perf_counter() < stop_at:
                started = time.perf_counter()
                status, answer = client.call("POST", "/functions/noop0/invoke", {})
                if status != 200 or answer.get("status") != "succeeded":
                    errors.append(f"{status} {answer}")
                    return
                mine.append((time.perf_counter() - started) * 1000)
        finally:
            client.close()
            with lock:
                latencies.extend(mine)

    threads = [threading.Thread(target=caller) for _ in range(concurrency)]
    started = time.perf_counter()
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    elapsed = time.perf_counter() - started
    if errors:
        raise RuntimeError(f"invoke failed under load: {errors[0]}")
    return len(latencies) / elapsed, statistics.median(latencies)


if __name__ == "__main__":
    sys.exit(main())
