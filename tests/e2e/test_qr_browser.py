"""QR upload end to end in headless chromium, against the local runtime built from `QrUpload-dev`.

Element ids and states are documented in `lambdas/qr_upload/pages.py`.
"""

from __future__ import annotations

import io
import re
import time
from collections.abc import Iterator
from typing import Any
from urllib.parse import parse_qs, unquote, urlsplit

import pytest
import requests
import segno

from scripts.local.runtime import LocalRuntime
from tests.e2e.conftest import start_platform

pytestmark = [pytest.mark.slow, pytest.mark.browser]
STACK = "QrUpload-dev"


def _png(width: int = 320, height: int = 240) -> bytes:
    from PIL import Image

    out = io.BytesIO()
    Image.new("RGB", (width, height), (30, 120, 200)).save(out, format="PNG")
    return out.getvalue()


@pytest.fixture
def pages(browser: Any) -> Iterator[tuple[Any, Any]]:
    desktop_context, phone_context = browser.new_context(), browser.new_context()
    yield desktop_context.new_page(), phone_context.new_page()
    desktop_context.close()
    phone_context.close()


def _open_desktop(page: Any, runtime: LocalRuntime) -> str:
    """Load the desktop page, wait for its session; returns the phone page URL it offers."""
    page.goto(str(runtime.outputs[STACK]["DesktopPageUrl"]))
    page.wait_for_selector("#status[data-state=waiting]", timeout=15000)
    return str(page.get_attribute("#upload-link", "href"))


def _svg_path(svg: str) -> str:
    """The dark modules' path (the longest one; a light background is a plain rectangle)."""
    paths = re.findall(r'<path[^>]* d="([^"]+)"', svg)
    assert paths, "no QR path in the SVG"
    return max(paths, key=len)


def test_desktop_shows_a_qr_code_of_the_phone_page(runtime: LocalRuntime, pages: tuple[Any, Any]) -> None:
    desktop, phone = pages
    phone_url = _open_desktop(desktop, runtime)
    api = str(runtime.outputs[STACK]["HttpApiUrl"])
    assert phone_url.startswith(f"{api}/upload?sessionId=")
    src = str(desktop.get_attribute("#qr", "src"))
    assert src.startswith("data:image/svg+xml")
    svg = unquote(src.split(",", 1)[1])
    # The modules drawn are exactly those of a QR code of that URL (segno, error level M).
    expected = io.BytesIO()
    segno.make_qr(phone_url, error="m").save(expected, kind="svg", scale=6, border=4)
    assert _svg_path(svg) == _svg_path(expected.getvalue().decode())
    assert desktop.evaluate("document.getElementById('qr').naturalWidth") > 0
    phone.goto(phone_url)
    assert phone.get_attribute("#status", "data-state") == "ready"
    assert phone.get_attribute("body", "data-session-id") == parse_qs(urlsplit(phone_url).query)["sessionId"][0]


def test_phone_upload_reaches_the_desktop_over_the_websocket(runtime: LocalRuntime, pages: tuple[Any, Any]) -> None:
    desktop, phone = pages
    phone_url = _open_desktop(desktop, runtime)
    desktop.wait_for_selector("#status[data-socket=open]", timeout=10000)
    phone.goto(phone_url)
    started = time.time()
    phone.set_input_files("#file", files=[{"name": "photo.png", "mimeType": "image/png", "buffer": _png()}])
    phone.wait_for_selector("#status[data-state=done]", timeout=15000)
    desktop.wait_for_selector("#status[data-state=completed]", timeout=15000)
    # Polling runs only every 30 s while the socket is open: this fast, the WebSocket told it.
    assert time.time() - started < 10
    desktop.wait_for_function("document.getElementById('photo').naturalWidth === 320", timeout=10000)
    assert any(line.message.startswith("desktop notified") for line in runtime.logs.lines)


def test_phone_refuses_non_images_and_oversized_files_before_uploading(
    runtime: LocalRuntime, pages: tuple[Any, Any]
) -> None:
    desktop, phone = pages
    phone_url = _open_desktop(desktop, runtime)
    session_id = parse_qs(urlsplit(phone_url).query)["sessionId"][0]
    phone.goto(phone_url)
    requests_seen: list[str] = []
    phone.on("request", lambda request: requests_seen.append(request.url))

    phone.set_input_files("#file", files=[{"name": "notes.txt", "mimeType": "text/plain", "buffer": b"hello"}])
    phone.wait_for_selector("#status[data-state=error]", timeout=5000)
    assert "not an image" in phone.inner_text("#message")

    max_bytes = int(str(phone.get_attribute("body", "data-max-bytes")))
    big = b"\xff\xd8\xff" + b"\0" * max_bytes  # one JPEG-looking byte string over the limit
    phone.set_input_files("#file", files=[{"name": "big.jpg", "mimeType": "image/jpeg", "buffer": big}])
    phone.wait_for_function("document.getElementById('message').textContent.includes('limit')", timeout=5000)
    assert "the limit is 10.0 MB" in phone.inner_text("#message")

    assert requests_seen == []  # nothing was asked for, nothing was sent
    listed = runtime.client("s3").list_objects_v2(
        Bucket=runtime.outputs[STACK]["UploadBucketName"], Prefix=f"session-uploads/{session_id}/"
    )
    assert listed.get("KeyCount", 0) == 0


def test_desktop_connecting_after_the_upload_still_learns_of_it(runtime: LocalRuntime, pages: tuple[Any, Any]) -> None:
    desktop, _phone = pages
    allow = {"socket": False}

    def route(ws: Any) -> None:
        if allow["socket"]:
            ws.connect_to_server()
        else:
            ws.close()

    desktop.route_web_socket(re.compile(r"^ws://"), route)
    phone_url = _open_desktop(desktop, runtime)
    session_id = parse_qs(urlsplit(phone_url).query)["sessionId"][0]
    api = str(runtime.outputs[STACK]["HttpApiUrl"])
    grant = requests.get(
        f"{api}/upload-url", params={"sessionId": session_id, "contentType": "image/png"}, timeout=10
    ).json()
    response = requests.post(
        grant["uploadUrl"], data=grant["fields"], files={"file": ("p.png", _png(), "image/png")}, timeout=10
    )
    assert response.status_code in (200, 204)
    deadline = time.time() + 10
    while not any("no desktop connected" in line.message for line in runtime.logs.lines) and time.time() < deadline:
        time.sleep(0.1)
    assert any("no desktop connected" in line.message for line in runtime.logs.lines)
    assert desktop.get_attribute("#status", "data-state") == "waiting"
    allow["socket"] = True
    desktop.wait_for_selector("#status[data-socket=open]", timeout=20000)
    desktop.wait_for_selector("#status[data-state=completed]", timeout=15000)


def test_expired_session_says_so_on_both_pages(browser: Any) -> None:
    # A 3-second session TTL for every function: the generic --set-env mechanism.
    with start_platform(set_env={"*": {"SESSION_TTL_SECONDS": "3"}}) as runtime:
        context = browser.new_context()
        try:
            desktop, phone = context.new_page(), context.new_page()
            phone_url = _open_desktop(desktop, runtime)
            desktop.wait_for_selector("#status[data-state=expired]", timeout=15000)
            assert "expired" in desktop.inner_text("#status")
            phone.goto(phone_url)
            assert phone.get_attribute("#status", "data-state") == "expired"
            assert "expired" in phone.inner_text("#status")
            assert phone.is_disabled("#file")
        finally:
            context.close()


def test_pages_are_served_with_their_content_security_policy(runtime: LocalRuntime) -> None:
    response = requests.get(str(runtime.outputs[STACK]["DesktopPageUrl"]), timeout=10)
    assert response.status_code == 200 and "text/html" in response.headers["Content-Type"]
    assert "script-src 'nonce-" in response.headers["Content-Security-Policy"]
