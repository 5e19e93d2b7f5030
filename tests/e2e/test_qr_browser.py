"""QR upload end to end in headless chromium, against the local runtime built from `QrUpload-dev`.

Element ids and states are documented in `lambdas/qr_upload/pages.py`.
"""

from __future__ import annotations

import io
import re
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
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


def _heic(width: int = 640, height: int = 480) -> bytes:
    import pillow_heif
    from PIL import Image

    pillow_heif.register_heif_opener()
    out = io.BytesIO()
    Image.new("RGB", (width, height), (200, 40, 40)).save(out, format="HEIF", quality=60)
    return out.getvalue()


@pytest.fixture
def pages(browser: Any) -> Iterator[tuple[Any, Any]]:
    desktop_context, phone_context = browser.new_context(), browser.new_context()
    yield desktop_context.new_page(), phone_context.new_page()
    desktop_context.close()
    phone_context.close()


def _wait_until(page: Any, expression: str, timeout: int) -> None:
    """Poll `expression` from the test side. Playwright's `wait_for_function` can compile its
    predicate inside the page, which the pages' CSP (no 'unsafe-eval') refuses; `evaluate` runs
    through the DevTools protocol, outside the page's CSP."""
    deadline = time.monotonic() + timeout / 1000
    while not page.evaluate(expression):
        if time.monotonic() > deadline:
            raise AssertionError(f"still false after {timeout} ms: {expression}")
        time.sleep(0.05)


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
    _wait_until(desktop, "document.getElementById('photo').naturalWidth === 320", 10000)
    assert any(line.message.startswith("desktop notified") for line in runtime.logs.lines)
    src = str(desktop.get_attribute("#photo", "src"))
    assert src.startswith(str(runtime.outputs[STACK]["PhotoLinksUrl"]))
    _assert_inert_download(requests.get(src, timeout=10), "image/png", "photo.png")


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
    assert "not a photo" in phone.inner_text("#message")

    max_bytes = int(str(phone.get_attribute("body", "data-max-bytes")))
    big = b"\xff\xd8\xff" + b"\0" * max_bytes  # one JPEG-looking byte string over the limit
    phone.set_input_files("#file", files=[{"name": "big.jpg", "mimeType": "image/jpeg", "buffer": big}])
    _wait_until(phone, "document.getElementById('message').textContent.includes('limit')", 5000)
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


def test_a_non_photo_renamed_jpg_is_refused_the_phone_says_why_and_can_retry(
    runtime: LocalRuntime, pages: tuple[Any, Any]
) -> None:
    desktop, phone = pages
    phone_url = _open_desktop(desktop, runtime)
    phone.goto(phone_url)
    fake = b"<svg xmlns='http://www.w3.org/2000/svg'><script>alert(1)</script></svg>"
    phone.set_input_files("#file", files=[{"name": "IMG_0001.jpg", "mimeType": "image/jpeg", "buffer": fake}])
    phone.wait_for_selector("#status[data-state=error]", timeout=15000)
    assert "That file is not a photo" in phone.inner_text("#message")
    assert not phone.is_disabled("#file")
    assert desktop.get_attribute("#status", "data-state") in ("waiting", "uploading")
    assert desktop.is_hidden("#photo")

    phone.set_input_files("#file", files=[{"name": "photo.png", "mimeType": "image/png", "buffer": _png()}])
    phone.wait_for_selector("#status[data-state=done]", timeout=15000)
    desktop.wait_for_selector("#status[data-state=completed]", timeout=15000)
    _wait_until(desktop, "document.getElementById('photo').naturalWidth === 320", 10000)


def test_heic_reaches_the_desktop_as_a_jpeg_rendition_it_can_show(
    runtime: LocalRuntime, pages: tuple[Any, Any]
) -> None:
    desktop, phone = pages
    desktop.set_viewport_size({"width": 1024, "height": 600})
    phone_url = _open_desktop(desktop, runtime)
    phone.goto(phone_url)
    phone.set_input_files("#file", files=[{"name": "IMG_0002.HEIC", "mimeType": "image/heic", "buffer": _heic()}])
    phone.wait_for_selector("#status[data-state=done]", timeout=20000)
    desktop.wait_for_selector("#status[data-state=completed]", timeout=15000)
    # Chromium cannot decode HEIC: a decoded 640x480 image is the JPEG rendition.
    _wait_until(desktop, "document.getElementById('photo').naturalWidth === 640", 10000)
    # The link the desktop got answers with the rendition's type, nosniff and a download.
    shown = requests.get(str(desktop.get_attribute("#photo", "src")), timeout=10)
    _assert_inert_download(shown, "image/jpeg", "photo.jpg")
    # The photo fits the window: "Start again" stays on screen.
    box = desktop.locator("#new-session").bounding_box()
    assert box is not None and box["y"] + box["height"] <= 600


def test_two_phones_one_upload_wins_and_the_other_phone_is_told(runtime: LocalRuntime, browser: Any) -> None:
    contexts = [browser.new_context() for _ in range(3)]
    try:
        desktop, first, second = (c.new_page() for c in contexts)
        phone_url = _open_desktop(desktop, runtime)
        first.goto(phone_url)
        second.goto(phone_url)
        held: list[Any] = []

        def hold_s3_post(route: Any) -> None:
            if route.request.method == "POST":
                held.append(route)  # the second phone's upload waits here, its grant in hand
            else:
                route.continue_()

        second.route("**/*", hold_s3_post)
        second.set_input_files("#file", files=[{"name": "b.png", "mimeType": "image/png", "buffer": _png(200, 150)}])
        deadline = time.time() + 10
        while not held and time.time() < deadline:
            second.wait_for_timeout(50)
        assert held, "the second phone never started its upload"

        first.set_input_files("#file", files=[{"name": "a.png", "mimeType": "image/png", "buffer": _png()}])
        first.wait_for_selector("#status[data-state=done]", timeout=15000)
        desktop.wait_for_selector("#status[data-state=completed]", timeout=15000)

        held[0].continue_()  # S3 takes the second photo too; the session already has its winner
        second.wait_for_selector("#status[data-state=superseded]", timeout=15000)
        assert "another device sent a photo first" in second.inner_text("#status").lower()
        _wait_until(desktop, "document.getElementById('photo').naturalWidth === 320", 10000)
        desktop.wait_for_timeout(1500)
        assert desktop.evaluate("document.getElementById('photo').naturalWidth") == 320
    finally:
        for context in contexts:
            context.close()


# --- the desktop's photo link (CloudFront signed URL, served by the runtime's distribution) ---------


def _completed(runtime: LocalRuntime, photo: bytes, content_type: str) -> dict[str, Any]:
    """A session completed by a phone's POST of `photo`; returns the desktop's status answer."""
    api = str(runtime.outputs[STACK]["HttpApiUrl"])
    created = requests.post(f"{api}/sessions", json={}, timeout=10)
    assert created.status_code == 200, created.text
    session = created.json()
    grant = requests.get(
        f"{api}/upload-url", params={"sessionId": session["sessionId"], "contentType": content_type}, timeout=10
    ).json()
    posted = requests.post(
        grant["uploadUrl"], data=grant["fields"], files={"file": ("photo", photo, content_type)}, timeout=10
    )
    assert posted.status_code in (200, 204), posted.text
    headers = {"Authorization": f"Bearer {session['desktopToken']}"}
    deadline = time.time() + 20
    while time.time() < deadline:
        status = requests.get(f"{api}/sessions/{session['sessionId']}", headers=headers, timeout=10).json()
        if status["status"] == "COMPLETED":
            return dict(status)
        time.sleep(0.2)
    raise AssertionError(f"session never completed: {status}")


def _assert_inert_download(response: requests.Response, content_type: str, filename: str) -> None:
    assert response.status_code == 200, response.text
    assert response.headers["Content-Type"] == content_type
    assert response.headers["X-Content-Type-Options"] == "nosniff"
    assert response.headers["Content-Disposition"] == f'attachment; filename="{filename}"'
    assert "sandbox" in response.headers["Content-Security-Policy"]
    assert response.headers["Content-Security-Policy"].startswith("default-src 'none'")
    assert response.headers["Referrer-Policy"] == "no-referrer"


def test_desktop_link_is_a_signed_cloudfront_url_served_with_nosniff_its_type_and_a_download(
    runtime: LocalRuntime,
) -> None:
    photo = _png(64, 48)
    # A PNG the phone declared as JPEG: the bytes decide the type the link answers with.
    status = _completed(runtime, photo, "image/jpeg")
    links = str(runtime.outputs[STACK]["PhotoLinksUrl"])
    assert status["imageUrl"].startswith(f"{links}/{status['uploadKey']}?")
    assert "Signature=" in status["imageUrl"] and "Key-Pair-Id=" in status["imageUrl"]
    response = requests.get(status["imageUrl"], timeout=10)
    _assert_inert_download(response, "image/png", "photo.png")
    assert response.content == photo
    head = requests.head(status["imageUrl"], timeout=10)
    assert head.status_code == 200 and head.headers["Content-Length"] == str(len(photo))
    assert head.headers["X-Content-Type-Options"] == "nosniff"
    assert requests.post(status["imageUrl"], data=b"x", timeout=10).status_code == 403  # GET and HEAD only


def test_tampered_unsigned_expired_or_foreign_links_are_refused(runtime: LocalRuntime) -> None:
    import rsa
    from botocore.signers import CloudFrontSigner

    mine = _completed(runtime, _png(32, 32), "image/png")
    other = _completed(runtime, _png(40, 40), "image/png")
    url = str(mine["imageUrl"])
    base, _, query = url.partition("?")
    unsigned = (
        base
        + "?"
        + "&".join(p for p in query.split("&") if not p.startswith(("Expires=", "Signature=", "Key-Pair-Id=")))
    )

    def refused(link: str) -> None:
        response = requests.get(link, timeout=10)
        assert response.status_code == 403, (link, response.status_code)
        assert response.headers["X-Content-Type-Options"] == "nosniff"

    refused(unsigned)
    refused(url.replace(str(mine["uploadKey"]), str(other["uploadKey"])))  # another session's photo
    refused(url.replace("response-content-type=image%2Fpng", "response-content-type=text%2Fhtml"))
    refused(url.replace("attachment", "inline"))
    signature = parse_qs(urlsplit(url).query)["Signature"][0]
    refused(url.replace(signature, signature[::-1]))
    # Signed with the real key, but expired; and signed for a key outside the photo prefixes.
    secret = runtime.client("secretsmanager")
    arn = next(s["ARN"] for s in secret.list_secrets()["SecretList"] if "PhotoLinksSigningKey" in s["Name"])
    private = rsa.PrivateKey.load_pkcs1(secret.get_secret_value(SecretId=arn)["SecretString"].encode())
    key_id = parse_qs(urlsplit(url).query)["Key-Pair-Id"][0]
    signer = CloudFrontSigner(key_id, lambda message: rsa.sign(message, private, "SHA-1"))
    past = datetime.now(UTC) - timedelta(seconds=5)
    refused(signer.generate_presigned_url(unsigned, date_less_than=past))
    future = datetime.now(UTC) + timedelta(minutes=5)
    runtime.client("s3").put_object(Bucket=_bucket(runtime), Key="elsewhere/page.html", Body=b"<script></script>")
    links = str(runtime.outputs[STACK]["PhotoLinksUrl"])
    refused(signer.generate_presigned_url(f"{links}/elsewhere/page.html", date_less_than=future))
    # The same signer over the untouched URL is accepted: the refusals above are the changes.
    assert requests.get(signer.generate_presigned_url(unsigned, date_less_than=future), timeout=10).status_code == 200
    # A custom policy covers what its Resource pattern names, and nothing else.
    session_photos = f"{links}/session-uploads/{mine['sessionId']}/*"
    policy = signer.build_policy(session_photos, future)
    assert requests.get(signer.generate_presigned_url(unsigned, policy=policy), timeout=10).status_code == 200
    other_url = str(other["imageUrl"]).partition("?")[0]
    refused(signer.generate_presigned_url(other_url, policy=policy))


def _bucket(runtime: LocalRuntime) -> str:
    return str(runtime.outputs[STACK]["UploadBucketName"])


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
