"""HTTP tunnel figures.

`python -m scripts.bench.bench_tunnel` prints Markdown tables:

- Response detection: from the moment a response is stored on its pending request (the response
  handler's UpdateItem has returned) to the moment the forwarder's wait returns it, over REQUESTS
  requests against moto, with the forwarder's adaptive schedule and with the spec's fixed 100 ms
  polling, interleaved so both see the same machine. Agents answer after a seeded random delay
  (uniform 5-150 ms, a typical local app behind a laptop's connection); reads per request are
  what each schedule costs in DynamoDB.
- Added latency through the local tunnel (when the local runtime is importable): see
  `bench_local_tunnel` below.
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
    AWS_SECRET_ACCESS_KEY="bench",  # noqa: S105 - moto's fake credentials
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


def _local_tunnel() -> str | None:
    """Added latency through the local runtime's tunnel, when that runtime is available."""
    try:
        from scripts.bench import bench_local_tunnel
    except ImportError:
        return None
    return bench_local_tunnel.run()


if __name__ == "__main__":
    sys.exit(main())
