"""`make demo`: each system's flow once, end to end, against the local runtime; prints what happened.

`python -m scripts.demo [--env dev] [--port-base 8200]` starts its own runtime (on ports that do not
clash with a running `make local`) and stops it afterwards. A system whose stack is not in the
environment is skipped with a line saying so.
"""

from __future__ import annotations

import argparse
import io
import json
import sys
import time
from collections.abc import Callable
from typing import Any
from urllib.parse import urlencode

import requests
from websockets.sync.client import connect

from scripts.local.runtime import LocalRuntime


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


def tunnel_flow(runtime: LocalRuntime, stack: str) -> None:
    """TUNNEL: runs when a `Tunnel-{env}` stack exists. To fill in once the tunnel agent exists:
    register an agent over the WebSocket output, send a public HTTP request, check the reply."""
    say(f"tunnel stack {stack} is up; outputs: {json.dumps(runtime.outputs.get(stack, {}))}")
    say("tunnel flow: not written yet (needs the tunnel agent command)")


def collections_flow(runtime: LocalRuntime, stack: str) -> None:
    """COLLECTIONS: runs when `CollectionsDataStack-{env}` exists. To fill in once the handlers exist:
    put an image in the images bucket, wait for its analysis and embedding, search for it."""
    say(f"collections stack {stack} is up; outputs: {json.dumps(runtime.outputs.get(stack, {}))}")
    say("collections flow: not written yet (needs the search endpoint)")


FLOWS: list[tuple[str, str, Callable[[LocalRuntime, str], Any]]] = [
    ("QR upload", "QrUpload", qr_upload_flow),
    ("Tunnel", "Tunnel", tunnel_flow),
    ("Collections", "CollectionsDataStack", collections_flow),
]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m scripts.demo")
    parser.add_argument("--env", default="dev")
    parser.add_argument("--port-base", type=int, default=8200)
    args = parser.parse_args(argv)
    print(f"starting the local runtime ({args.env}) ...", flush=True)
    failures = 0
    with LocalRuntime(args.env, port_base=args.port_base, progress=lambda m: print(f"... {m}", flush=True)) as runtime:
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
