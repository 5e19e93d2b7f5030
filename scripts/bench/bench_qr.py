"""QR-upload handler figures: what the QR code costs, and warm latency per route.

`python -m scripts.bench.bench_qr` prints two Markdown tables:
- fresh interpreter (median of 7): importing the http handler module, and importing segno plus
  rendering one code (paid only by `POST /sessions` with `{"qr": true}`);
- warm, in-process against moto (median of 30): each route and an S3 completion. moto's own
  overhead dominates these; they compare routes with each other, not with AWS.
"""

from __future__ import annotations

import contextlib
import io
import json
import os
import statistics
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[2]
COLD_RUNS = 7
WARM_RUNS = 30
ENV = {
    "AWS_DEFAULT_REGION": "eu-west-1",
    "AWS_REGION": "eu-west-1",
    "AWS_ACCESS_KEY_ID": "bench",
    "AWS_SECRET_ACCESS_KEY": "bench",
    "SESSIONS_TABLE_NAME": "bench-sessions",
    "UPLOAD_BUCKET_NAME": "bench-uploads",
    "WS_API_ENDPOINT": "abc123.execute-api.eu-west-1.amazonaws.com/dev",
    "POWERTOOLS_SERVICE_NAME": "qr-upload-bench",
    "POWERTOOLS_METRICS_NAMESPACE": "Bench",
    "POWERTOOLS_TRACE_DISABLED": "true",
    "POWERTOOLS_LOG_LEVEL": "ERROR",
    "PYTHONDONTWRITEBYTECODE": "1",
}
URL = "https://a1b2c3d4e5.execute-api.eu-west-1.amazonaws.com/upload?sessionId=3f0c9b3e-8a6e-4d53-9a8e-2a4f6f1c7b21"


def _fresh(code: str) -> float:
    """Seconds a fresh interpreter spends in `code` (measured inside, so startup is excluded)."""
    timed = f"import time\n_t = time.perf_counter()\n{code}\nprint(time.perf_counter() - _t)"
    out = subprocess.run(
        [sys.executable, "-c", timed], cwd=ROOT, env={**os.environ, **ENV}, capture_output=True, text=True, check=True
    )
    return float(out.stdout.strip().splitlines()[-1])


def cold() -> list[tuple[str, float]]:
    cases = {
        "import lambdas.qr_upload.http_api": "import lambdas.qr_upload.http_api",
        "import lambdas.qr_upload.websocket_events": "import lambdas.qr_upload.websocket_events",
        "import segno + render one QR (SVG)": f"from lambdas.qr_upload.qr import qr_svg\nqr_svg({URL!r})",
    }
    return [(name, statistics.median(_fresh(code) for _ in range(COLD_RUNS)) * 1000) for name, code in cases.items()]


def _median_ms(action: Callable[[], Any]) -> float:
    action()  # warm-up: clients and caches
    samples = []
    for _ in range(WARM_RUNS):
        started = time.perf_counter()
        action()
        samples.append(time.perf_counter() - started)
    return statistics.median(samples) * 1000


def warm() -> list[tuple[str, float]]:
    os.environ.update(ENV)
    from moto import mock_aws

    from lambdas.qr_upload import http_api, websocket_events
    from tests.lambdas.qr_upload.helpers import (
        FakeContext,
        aws_client,
        create_resources,
        http_event,
        s3_event,
        status_event,
    )

    def call(event: dict[str, Any]) -> dict[str, Any]:
        result: dict[str, Any] = http_api.handler(event, FakeContext())
        return result

    with mock_aws():
        create_resources(table=ENV["SESSIONS_TABLE_NAME"], bucket=ENV["UPLOAD_BUCKET_NAME"])

        def new_session(qr: bool = False) -> dict[str, Any]:
            body = json.dumps({"qr": qr})
            created: dict[str, Any] = json.loads(call(http_event("http_create_session.json", body=body))["body"])
            return created

        session = new_session()
        sid, token = session["sessionId"], session["desktopToken"]

        def complete_one() -> None:
            other = new_session()["sessionId"]
            grant = json.loads(call(http_event("http_upload_url.json", query={"sessionId": other}))["body"])
            aws_client("s3").put_object(
                Bucket=ENV["UPLOAD_BUCKET_NAME"], Key=grant["uploadKey"], Body=b"x", ContentType="image/png"
            )
            event = s3_event(grant["uploadKey"])
            event["Records"][0]["s3"]["bucket"]["name"] = ENV["UPLOAD_BUCKET_NAME"]
            websocket_events.handler(event, FakeContext())

        return [
            ("POST /sessions", _median_ms(lambda: new_session(False))),
            ('POST /sessions {"qr": true}', _median_ms(lambda: new_session(True))),
            ("GET /upload-url", _median_ms(lambda: call(http_event("http_upload_url.json", query={"sessionId": sid})))),
            ("GET /sessions/{id}", _median_ms(lambda: call(status_event(sid, token)))),
            ("GET / (desktop page)", _median_ms(lambda: call(http_event("http_desktop_page.json")))),
            ("session + URL + S3 completion", _median_ms(complete_one)),
        ]


def main() -> None:
    print(f"| fresh interpreter (median of {COLD_RUNS}) | ms |\n|---|---:|")
    for name, ms in cold():
        print(f"| {name} | {ms:.0f} |")
    with contextlib.redirect_stdout(io.StringIO()):  # the handlers print their EMF metrics
        rows = warm()
    print(f"\n| warm, in-process against moto (median of {WARM_RUNS}) | ms |\n|---|---:|")
    for name, ms in rows:
        print(f"| {name} | {ms:.1f} |")


if __name__ == "__main__":
    main()
