"""QR flow on the local runtime: S3 upload -> desktop WebSocket message, median and p99 of N runs.

`python -m scripts.bench.bench_local_qr [--runs 50] [--port-base 8400]` prints a Markdown table.
The breakdown comes from the runtime's own timeline (its in-process moto hook, invocations and
`@connections` endpoint), so the stages add up to the pipeline total; the issue's figure is the
last row, from the moment the phone's POST to S3 returns.
"""

from __future__ import annotations

import argparse
import io
import json
import statistics
import time
from typing import Any
from urllib.parse import urlencode

import requests
from websockets.sync.client import connect

from scripts.local.runtime import LocalRuntime

STACK = "QrUpload-{env}"


def _png() -> bytes:
    from PIL import Image

    out = io.BytesIO()
    Image.new("RGB", (64, 48), (10, 90, 160)).save(out, format="PNG")
    return out.getvalue()


def _first(timeline: list[tuple[float, str, dict[str, Any]]], kind: str, after: float) -> float:
    return next(t for t, k, _ in timeline if k == kind and t >= after)


def one_run(runtime: LocalRuntime, api: str, image: bytes) -> dict[str, float]:
    session = requests.post(f"{api}/sessions", json={}, timeout=15).json()
    query = urlencode({"sessionId": session["sessionId"], "token": session["desktopToken"]})
    with connect(f"{session['websocketUrl']}?{query}", open_timeout=15) as desktop:
        grant = requests.get(
            f"{api}/upload-url", params={"sessionId": session["sessionId"], "contentType": "image/png"}, timeout=15
        ).json()
        mark = time.time()
        response = requests.post(
            grant["uploadUrl"], data=grant["fields"], files={"file": ("p.png", image, "image/png")}, timeout=15
        )
        posted = time.time()
        if response.status_code not in (200, 204):
            raise RuntimeError(f"S3 POST answered {response.status_code}")
        message = json.loads(desktop.recv(timeout=15))
        received = time.time()
    if message.get("action") != "UPLOAD_COMPLETED":
        raise RuntimeError(f"unexpected message {message}")
    timeline = list(runtime.timeline)
    stored = _first(timeline, "s3.notify", mark)
    started = _first(timeline, "invoke.start", stored)
    post = next(info for t, k, info in timeline if k == "connections.post" and t >= started)
    return {
        "notification delivery (object stored -> handler starts)": (started - stored) * 1000,
        "handler until its @connections call": (post["received"] - started) * 1000,
        "post to connection (@connections -> frame sent)": (post["sent"] - post["received"]) * 1000,
        "WebSocket frame to the desktop": (received - post["sent"]) * 1000,
        "total: object stored -> desktop message": (received - stored) * 1000,
        "total: S3 POST completes -> desktop message": (received - posted) * 1000,
    }


def _p99(values: list[float]) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(0.99 * (len(ordered) - 1)))]


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m scripts.bench.bench_local_qr")
    parser.add_argument("--runs", type=int, default=50)
    parser.add_argument("--env", default="dev")
    parser.add_argument("--port-base", type=int, default=8400)
    args = parser.parse_args(argv)
    image = _png()
    with LocalRuntime(args.env, port_base=args.port_base) as runtime:
        api = str(runtime.outputs[STACK.format(env=args.env)]["HttpApiUrl"])
        one_run(runtime, api, image)  # warm-up: first imports and clients in each worker
        results = [one_run(runtime, api, image) for _ in range(args.runs)]
    print(f"QR flow on the local runtime ({args.runs} runs after one warm-up; ms)\n")
    print("| stage | median | p99 |")
    print("|---|---:|---:|")
    for stage in results[0]:
        values = [r[stage] for r in results]
        print(f"| {stage} | {statistics.median(values):.1f} | {_p99(values):.1f} |")


if __name__ == "__main__":
    main()
