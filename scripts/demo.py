"""`make demo`: each system's flow once, end to end, against the local runtime; prints what happened.

`python -m scripts.demo [--env dev] [--port-base 8200]` starts its own runtime (on ports that do not
clash with a running `make local`) and stops it afterwards. A system whose stack is not in the
environment is skipped with a line saying so.
"""

from __future__ import annotations

import argparse
import http.server
import io
import json
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

import requests
from websockets.sync.client import connect

from scripts.local.runtime import LocalRuntime

PROJECT_ROOT = Path(__file__).resolve().parents[1]


def _png(width: int = 64, height: int = 48) -> bytes:
    from PIL import Image

    out = io.BytesIO()
    Image.new("RGB", (width, height), (200, 40, 90)).save(out, format="PNG")
    return out.getvalue()


def say(message: str) -> None:
    print(f"  {message}", flush=True)


def qr_upload_flow(runtime: LocalRuntime, stack: str) -> dict[str, float]:
    """Desktop creates a session and listens; the phone uploads; the desktop hears UPLOAD_COMPLETED."""
    api = str(runtime.outputs[stack]["HttpApiUrl"]).rstrip("/")
    session = requests.post(f"{api}/sessions", json={"qr": True}, timeout=15).json()
    say(f"session {session['sessionId']} created; QR encodes {session['uploadPageUrl']}")
    query = urlencode({"sessionId": session["sessionId"], "token": session["desktopToken"]})
    with connect(f"{session['websocketUrl']}?{query}", open_timeout=15) as desktop:
        say(f"desktop connected to {session['websocketUrl']}")
        upload = requests.get(
            f"{api}/upload-url", params={"sessionId": session["sessionId"], "contentType": "image/png"}, timeout=15
        ).json()
        say(f"phone got a presigned POST for {upload['uploadKey']}")
        started = time.perf_counter()
        response = requests.post(
            upload["uploadUrl"], data=upload["fields"], files={"file": ("photo.png", _png(), "image/png")}, timeout=15
        )
        posted = time.perf_counter()
        say(f"phone uploaded to S3: HTTP {response.status_code}")
        message = json.loads(desktop.recv(timeout=15))
        received = time.perf_counter()
    say(
        f"desktop received {message['action']} for {message['uploadKey']} ({(received - posted) * 1000:.0f} ms after the upload)"
    )
    status = requests.get(
        f"{api}/sessions/{session['sessionId']}",
        headers={"Authorization": f"Bearer {session['desktopToken']}"},
        timeout=15,
    ).json()
    say(f"session status: {status['status']}")
    return {"upload_ms": (posted - started) * 1000, "notify_ms": (received - posted) * 1000}


def _moto_env(runtime: LocalRuntime) -> dict[str, str]:
    return {
        **os.environ,
        "AWS_ENDPOINT_URL": runtime.moto_url,
        "AWS_DEFAULT_REGION": runtime.region,
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
        "PYTHONUNBUFFERED": "1",
    }


def tunnel_flow(runtime: LocalRuntime, stack: str) -> None:
    """TUNNEL: a token is created, the agent CLI connects over the WebSocket and exposes a local
    HTTP app; a public request comes back with the app's answer."""
    outputs = runtime.outputs[stack]
    env = _moto_env(runtime)
    created = subprocess.run(
        [sys.executable, "scripts/tunnel_tokens.py", "--table", outputs["TokensTableName"], "create", "--label", "demo"],
        cwd=PROJECT_ROOT, env=env, capture_output=True, text=True, check=True, timeout=60,
    )  # fmt: skip
    token = next(line.split()[-1] for line in created.stdout.splitlines() if line.startswith("token:"))
    say("agent token created")

    class Hello(http.server.BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            body = f"hello from the laptop, you asked for {self.path}".encode()
            self.send_response(200)
            self.send_header("Content-Type", "text/plain")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args: Any) -> None:
            pass

    app = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Hello)
    threading.Thread(target=app.serve_forever, daemon=True).start()
    agent = subprocess.Popen(
        [sys.executable, "scripts/tunnel_agent.py", "--url", outputs["WebSocketUrl"], "--token", token,
         "--port", str(app.server_address[1])],
        cwd=PROJECT_ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
    )  # fmt: skip
    try:
        assert agent.stdout is not None
        public = ""
        for line in agent.stdout:
            if line.startswith("Forwarding "):
                public = line.split()[1]
                break
        if not public:
            raise RuntimeError("the agent never printed its public URL")
        say(f"agent connected; public URL {public}")
        response = requests.get(f"{public.rstrip('/')}/demo?x=1", timeout=30)
        say(f"GET {public.rstrip('/')}/demo?x=1 -> {response.status_code} {response.text!r}")
    finally:
        agent.send_signal(signal.SIGINT)
        try:
            agent.wait(10)
        except subprocess.TimeoutExpired:
            agent.kill()
            agent.wait()
        app.shutdown()
        app.server_close()


def _signed_get(url: str, region: str) -> requests.Response:
    """An IAM-authorized route wants a SigV4-signed request (the runtime accepts any signature)."""
    from botocore.auth import SigV4Auth
    from botocore.awsrequest import AWSRequest
    from botocore.credentials import Credentials

    request = AWSRequest(method="GET", url=url)
    SigV4Auth(Credentials("testing", "testing"), "execute-api", region).add_auth(request)
    return requests.get(url, headers=dict(request.headers), timeout=15)


def collections_flow(runtime: LocalRuntime, stack: str) -> None:
    """COLLECTIONS: an image put in the images bucket is thumbnailed, analysed and embedded
    (S3 notification -> processor -> EventBridge -> analyzer -> EventBridge -> embedder), then found by search."""
    outputs = runtime.outputs[stack]
    key = f"demo-user/{int(time.time())}.png"
    runtime.client("s3").put_object(Bucket=outputs["ImagesBucketName"], Key=key, Body=_png(), ContentType="image/png")
    say(f"put s3://{outputs['ImagesBucketName']}/{key}")
    url = f"{str(outputs['SearchApiUrl']).rstrip('/')}/search?{urlencode({'q': 'a pink picture', 'user_id': 'demo-user'})}"
    deadline, results = time.time() + 60, list[dict[str, Any]]()
    while time.time() < deadline and not results:
        response = _signed_get(url, runtime.region)
        results = response.json().get("results", []) if response.ok else []
        if not results:
            time.sleep(0.5)
    if not results:
        raise RuntimeError(
            f"search found nothing within 60 s (last answer: HTTP {response.status_code} {response.text[:200]})"
        )
    say(
        f"search 'a pink picture' -> {len(results)} result(s); best: item {results[0]['item_id']} score {results[0]['score']}"
    )


def functions_flow(runtime: LocalRuntime, stack: str) -> None:
    """A developer's first minutes: create from inline source, invoke the draft, publish, promote,
    invoke live; then an async call followed to its record."""
    from scripts.functions import ApiClient
    from scripts.functions_keys import create_key

    outputs = runtime.outputs[stack]
    key = create_key(outputs["FunctionsTableName"], "demo", "admin", label="make demo", ddb=runtime.client("dynamodb"))
    api = ApiClient(str(outputs["FunctionsApiUrl"]), key, "demo", timeout=60)
    source = "def handler(event, context):\n    return {'hello': event.get('name', 'world')}\n"
    fn = api.request("POST", api.path("functions"), {"name": "hello", "source": source})
    say(f"created {fn['name']} ({fn['id']}) as Lambda function {fn['lambda_function']}")

    def until(check: Callable[[], bool]) -> None:
        deadline = time.time() + 60
        while not check():
            if time.time() > deadline:
                raise TimeoutError("the deployer did not finish in 60 s")
            time.sleep(0.1)

    until(lambda: api.request("GET", api.path("functions", "hello"))["status"] == "deployed")
    draft = api.request(
        "POST", api.path("functions", "hello", "invoke"), {"qualifier": "draft", "payload": {"name": "Ana"}}
    )
    say(f"draft answered {draft['result']} in {draft['duration_ms']} ms")
    api.request("POST", api.path("functions", "hello", "versions"), {})
    until(lambda: api.request("GET", api.path("functions", "hello", "versions", "1"))["status"] == "published")
    api.request("PUT", api.path("functions", "hello", "aliases", "live"), {"version": 1})
    until(lambda: api.request("GET", api.path("functions", "hello", "aliases", "live"))["status"] == "ready")
    live = api.request("POST", api.path("functions", "hello", "invoke"), {"payload": {"name": "Bo"}})
    say(f"version 1 is live; it answered {live['result']} (executed version {live['executed_version']})")
    queued = api.request("POST", api.path("functions", "hello", "invoke"), {"mode": "async", "payload": {}})
    iid = queued["invocation_id"]
    until(lambda: api.request("GET", f"/v1/orgs/demo/invocations/{iid}")["status"] == "succeeded")
    say(f"async invocation {iid} succeeded: {api.request('GET', f'/v1/orgs/demo/invocations/{iid}')['result']}")


FLOWS: list[tuple[str, str, Callable[[LocalRuntime, str], Any]]] = [
    ("QR upload", "QrUpload", qr_upload_flow),
    ("Tunnel", "Tunnel", tunnel_flow),
    ("Collections", "CollectionsComputeStack", collections_flow),
    ("Functions", "Functions", functions_flow),
]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m scripts.demo")
    parser.add_argument("--env", default="dev")
    parser.add_argument("--port-base", type=int, default=8200)
    args = parser.parse_args(argv)
    print(f"starting the local runtime ({args.env}) ...", flush=True)
    failures = 0
    runtime = LocalRuntime(args.env, port_base=args.port_base, progress=lambda m: print(f"... {m}", flush=True))
    with runtime:
        for title, base, flow in FLOWS:
            stack = f"{base}-{args.env}"
            print(f"\n{title}:")
            if stack not in runtime.outputs and not any(s.startswith(base) for s in runtime.outputs):
                say(f"skipped: no {stack} stack in this environment")
                continue
            try:
                flow(runtime, stack)
            except Exception as exc:
                failures += 1
                say(f"FAILED: {type(exc).__name__}: {exc}")
        errors = [line for line in runtime.logs.lines if line.level in ("ERROR", "CRITICAL")]
        for line in errors:
            say(f"function error: {line.function}: {line.message}")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
