"""Cold start to the first answer, per request/response function, beside its floor.

`python -m scripts.bench.cold_start` brings the dev environment up on the local runtime (moto,
PostgreSQL with pgvector) plus a local stand-in for Voyage's embeddings API (answering with a
response in the API's documented shape), then, RUNS times, alternately:

- first answer: a fresh interpreter with the function's own environment imports the handler
  and answers one representative event (real payload shapes from tests/events);
- floor: a fresh interpreter with the same environment imports boto3, creates the clients the
  function uses and makes one call with each (and, for search, opens its PostgreSQL connection
  and reads its API key): what any Python function doing that work pays at the least.

Both clocks start at the interpreter's first line (its own start-up is the same for both). Figures
are medians; the ratio is the median of each answer over the floor run right after it. The goal
(issue #13) is at most 1.3x the floor. Imports run from the source tree with this machine's
packages and the bytecode caches a developer's tree has. On AWS a request/response asset has them
only when a CPython 3.12 bundled it (infrastructure/constructs/bundling.py, PRECOMPILED); without,
every cold start there also compiles the bundled modules (Powertools, the handler's own), and the
handler side is understated here.
"""

from __future__ import annotations

import json
import os
import statistics
import subprocess
import sys
import threading
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

from scripts.bench.foundation import report_goal
from scripts.local.functions import lambda_environment
from scripts.local.runtime import LocalRuntime

ROOT = Path(__file__).resolve().parents[2]
EVENTS = ROOT / "tests" / "events"
RUNS = int(os.environ.get("BENCH_COLD_RUNS", "7"))
GOAL = 1.3

# One call per client, each the cheapest round trip that loads the client's service model, signs,
# and opens its connection, as the handler's first call of that client does.
CALLS = {
    "dynamodb": "list_tables(Limit=1)",
    "s3": "list_buckets()",
    "ssm": "describe_parameters(MaxResults=1)",
    "secretsmanager": "list_secrets(MaxResults=1)",
    "events": "list_event_buses(Limit=1)",
}

CHILD_PRELUDE = """
import json, sys, time
_t0 = time.perf_counter()
"""

FIRST_ANSWER = (
    CHILD_PRELUDE
    + """
import importlib
class Context:
    function_name = "{function}"
    function_version = "$LATEST"
    memory_limit_in_mb = 512
    invoked_function_arn = "arn:aws:lambda:us-east-1:123456789012:function:{function}"
    aws_request_id = "bench-cold-start"
    log_group_name = "/aws/lambda/{function}"
    log_stream_name = "bench"
    def get_remaining_time_in_millis(self):
        return 29_000
module = importlib.import_module({module!r})
_t1 = time.perf_counter()
result = module.handler(json.loads({event!r}), Context())
_t2 = time.perf_counter()
print(json.dumps({{"import": _t1 - _t0, "answer": _t2 - _t0, "status": result.get("statusCode")}}))
"""
)

FLOOR = (
    CHILD_PRELUDE
    + """
import boto3
{calls}
_t2 = time.perf_counter()
print(json.dumps({{"import": None, "answer": _t2 - _t0, "status": None}}))
"""
)


@dataclass
class Case:
    label: str
    function: str
    event_file: str
    clients: list[str]
    status: int | None  # the answer's statusCode (None: an authorizer's verdict has none), so a
    # broken handler is not timed as a fast one
    event_changes: dict[str, Any] = field(default_factory=dict)
    floor_extra: str = ""  # what else the floor does beyond the clients (search: its database)


SEARCH_FLOOR = (
    "boto3.client('ssm').get_parameter(Name='{prefix}/VOYAGE_API_KEY', WithDecryption=True)\n"
    "from lambdas.collections import pg\npg.connect().execute('SELECT 1')\n"
)
CASES = [
    Case(
        "QR upload: POST /sessions", "qr-upload-http-api-dev", "qr_upload/http_create_session.json", ["dynamodb"], 200
    ),
    Case(
        "tunnel: forward GET /t/{name}/ (no such tunnel)",
        "tunnel-forward-dev",
        "tunnel/http_api.json",
        ["dynamodb"],
        404,
    ),
    Case(
        "search: GET /search (Voyage stand-in, PostgreSQL)",
        "collections-dev-SearchLambda",
        "collections/search_get.json",
        [],
        200,
        floor_extra=SEARCH_FLOOR,
    ),
    Case(
        "functions API: GET /v1/orgs/{org}/functions",
        "functions-api-dev",
        "functions/http_api_authorized.json",
        ["dynamodb"],
        200,
        event_changes={"routeKey": "ANY /v1/orgs/{org}/{proxy+}", "requestContext.http.method": "GET"},
    ),
    Case(
        "functions API's authorizer (before every request): a key it does not know",
        "functions-authorizer-dev",
        "functions/authorizer_request.json",
        ["dynamodb"],
        None,
    ),
]


class VoyageStandIn:
    """Answers every POST with the recorded-shape query embedding (base64 float32)."""

    def __init__(self) -> None:
        answer = (EVENTS / "collections" / "voyage_embeddings_query.json").read_bytes()

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args: Any) -> None:
                pass

            def do_POST(self) -> None:
                self.rfile.read(int(self.headers.get("content-length", 0)))
                self.send_response(200)
                self.send_header("content-type", "application/json")
                self.send_header("content-length", str(len(answer)))
                self.end_headers()
                self.wfile.write(answer)

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/v1"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


def _event(case: Case) -> str:
    event = json.loads((EVENTS / case.event_file).read_text())
    for dotted, value in case.event_changes.items():
        target = event
        *path, last = dotted.split(".")
        for key in path:
            target = target[key]
        target[last] = value
    return json.dumps(event)


def _run(code: str, env: dict[str, str]) -> dict[str, Any]:
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, env=env, capture_output=True, text=True, check=False)
    lines = out.stdout.strip().splitlines()
    if out.returncode != 0 or not lines:
        raise RuntimeError(f"cold-start child failed: {out.stderr.strip().splitlines()[-1:]}")
    result: dict[str, Any] = json.loads(lines[-1])
    return result


def measure(runtime: LocalRuntime, case: Case, voyage_url: str) -> dict[str, float]:
    spec = runtime.invoker.specs[case.function]
    env = {
        **lambda_environment(spec, runtime.region, runtime.moto_url, runtime.lambda_url),
        **spec.environment,
        "VOYAGE_BASE_URL": voyage_url,
        "PYTHONPATH": str(ROOT),
        "PYTHONDONTWRITEBYTECODE": "1",
    }
    handler = FIRST_ANSWER.format(function=case.function, module=spec.handler.rpartition(".")[0], event=_event(case))
    calls = "".join(f"boto3.client({c!r}).{CALLS[c]}\n" for c in case.clients)
    prefix = spec.environment.get("COLLECTIONS_PARAMETER_PREFIX", "").rstrip("/")
    floor = FLOOR.format(calls=calls + case.floor_extra.format(prefix=prefix))
    _run(handler, env)  # one unmeasured run: the first touch of files and tables
    imports, answers, floors = [], [], []
    for _ in range(RUNS):
        first = _run(handler, env)
        if first["status"] != case.status:
            raise RuntimeError(f"{case.label}: answered {first['status']}, expected {case.status}")
        imports.append(first["import"])
        answers.append(first["answer"])
        floors.append(_run(floor, env)["answer"])
    return {
        "import": statistics.median(imports),
        "answer": statistics.median(answers),
        "floor": statistics.median(floors),
        # Each answer over the floor run right after it: load from other processes hits both.
        "ratio": statistics.median(a / f for a, f in zip(answers, floors, strict=True)),
    }


def main() -> None:
    voyage = VoyageStandIn()
    try:
        with LocalRuntime("dev", port_base=int(os.environ.get("BENCH_COLD_PORT_BASE", "8500"))) as runtime:
            prefix = runtime.invoker.specs["collections-dev-SearchLambda"].environment["COLLECTIONS_PARAMETER_PREFIX"]
            runtime.client("ssm").put_parameter(
                Name=f"{prefix.rstrip('/')}/VOYAGE_API_KEY", Value="pa-bench", Type="SecureString", Overwrite=True
            )
            rows = [(case, measure(runtime, case, voyage.url)) for case in CASES]
    finally:
        voyage.close()
    print(f"### Cold start to the first answer (median of {RUNS} fresh interpreters; goal <= {GOAL}x the floor)\n")
    print(
        "| function and event | handler import (ms) | first answer (ms) | floor (ms) "
        "| answer / floor (median of pairs) | floor does |"
    )
    print("|---|---:|---:|---:|---:|---|")
    for case, m in rows:
        does = ", ".join(f"{c}.{CALLS[c].split('(')[0]}" for c in case.clients)
        if case.floor_extra:
            does = "ssm.get_parameter, secretsmanager.get_secret_value, PostgreSQL connect + SELECT 1"
        ratio = m["ratio"]
        report_goal(
            f"cold start to first answer: {case.label}", f"<= {GOAL}x the floor", f"{ratio:.2f}x", ratio <= GOAL
        )
        print(
            f"| {case.label} | {m['import'] * 1000:.0f} | {m['answer'] * 1000:.0f} | {m['floor'] * 1000:.0f} "
            f"| {ratio:.2f}x | boto3, {does} |"
        )


if __name__ == "__main__":
    main()
