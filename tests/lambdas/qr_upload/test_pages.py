"""The desktop and phone pages: content type, CSP, element ids the browser test relies on."""

from __future__ import annotations

import re
import time
from html.parser import HTMLParser

import pytest

from .helpers import PHOTO_LINKS_URL, call_http, create_session, http_event, request_upload_url, table

pytestmark = pytest.mark.usefixtures("aws")

UNKNOWN = "3f0c9b3e-8a6e-4d53-9a8e-2a4f6f1c7b21"


class _Elements(HTMLParser):
    """Attributes of every element with an id, plus the nonces of <script> and <style>."""

    def __init__(self, html: str) -> None:
        super().__init__()
        self.by_id: dict[str, dict[str, str | None]] = {}
        self.body: dict[str, str | None] = {}
        self.nonces: list[str | None] = []
        self.scripts_with_src: list[str | None] = []
        self.feed(html)

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        found = dict(attrs)
        found["_tag"] = tag
        if "id" in found:
            self.by_id[str(found["id"])] = found
        if tag == "body":
            self.body = found
        if tag in ("script", "style"):
            self.nonces.append(found.get("nonce"))
            if "src" in found:
                self.scripts_with_src.append(found["src"])


def _csp(headers: dict[str, str]) -> dict[str, list[str]]:
    directives = {}
    for part in headers["Content-Security-Policy"].split(";"):
        name, *values = part.split()
        directives[name] = values
    return directives


def _page(query: dict[str, str] | None = None) -> tuple[int, dict[str, str], _Elements, str]:
    if query is None:
        result = call_http(http_event("http_desktop_page.json"))
    else:
        result = call_http(http_event("http_phone_page.json", query=query))
    return result.status, result.headers, _Elements(result.body), result.body


def _assert_locked_down(headers: dict[str, str], elements: _Elements) -> dict[str, list[str]]:
    assert headers["Content-Type"] == "text/html; charset=utf-8"
    assert headers["Referrer-Policy"] == "no-referrer"
    assert headers["X-Content-Type-Options"] == "nosniff"
    assert headers["Cache-Control"] == "no-store"
    csp = _csp(headers)
    assert csp["default-src"] == ["'none'"]
    assert csp["frame-ancestors"] == ["'none'"]
    assert csp["base-uri"] == ["'none'"]
    assert csp["form-action"] == ["'none'"]
    nonce_source = csp["script-src"]
    assert len(nonce_source) == 1 and nonce_source[0].startswith("'nonce-")
    nonce = nonce_source[0][len("'nonce-") : -1]
    assert csp["style-src"] == nonce_source
    # Every inline script and style carries this response's nonce; nothing is loaded from elsewhere.
    assert elements.nonces and all(n == nonce for n in elements.nonces)
    assert elements.scripts_with_src == []
    for values in csp.values():
        assert "'unsafe-inline'" not in values and "'unsafe-eval'" not in values and "*" not in values
    return csp


def test_desktop_page_has_the_documented_elements_and_a_strict_csp() -> None:
    status, headers, elements, html = _page()
    assert status == 200
    csp = _assert_locked_down(headers, elements)
    assert csp["connect-src"] == ["'self'", "wss://w9x8y7z6v5.execute-api.eu-west-1.amazonaws.com"]
    # The photo comes from the photo links' distribution, not from the bucket.
    assert csp["img-src"] == ["'self'", "data:", PHOTO_LINKS_URL]
    for element_id, tag in {
        "status": "p",
        "qr": "img",
        "upload-link": "a",
        "photo": "img",
        "message": "p",
        "new-session": "button",
    }.items():
        assert elements.by_id[element_id]["_tag"] == tag, element_id
    assert elements.body["data-api-base"] == "/dev"
    # The page does the documented calls: create a session, fetch status with the bearer token.
    assert '"/sessions"' in html and "Authorization" in html and "Bearer " in html


def test_each_page_response_has_a_fresh_nonce() -> None:
    first, second = _page()[1], _page()[1]
    assert _csp(first)["script-src"] != _csp(second)["script-src"]


def test_desktop_page_uses_ws_scheme_for_a_local_http_endpoint(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("WS_API_ENDPOINT", "http://127.0.0.1:9911/local")
    _, headers, _, _ = _page()
    assert "ws://127.0.0.1:9911" in _csp(headers)["connect-src"]
    session = create_session()
    assert session["websocketUrl"] == "ws://127.0.0.1:9911/local"


def test_phone_page_for_a_live_session(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MAX_UPLOAD_BYTES", "5242880")
    session_id = create_session()["sessionId"]
    status, headers, elements, html = _page({"sessionId": session_id})
    assert status == 200
    csp = _assert_locked_down(headers, elements)
    assert csp["connect-src"] == ["'self'", "https://qr-upload-test-bucket.s3.eu-west-1.amazonaws.com"]
    file_input = elements.by_id["file"]
    assert file_input["_tag"] == "input" and file_input["type"] == "file"
    assert file_input["accept"] == "image/jpeg,image/png,image/webp,image/gif,image/heic,image/heif,.heic,.heif"
    assert elements.by_id["progress"]["_tag"] == "progress" and "hidden" in elements.by_id["progress"]
    assert "capture" in file_input
    assert "disabled" not in file_input
    assert elements.by_id["status"]["data-state"] == "ready"
    assert elements.by_id["message"]["_tag"] == "p"
    assert elements.body["data-session-id"] == session_id
    assert elements.body["data-max-bytes"] == "5242880"
    assert elements.body["data-api-base"] == "/dev"
    # The client-side checks run before the upload URL is requested.
    checks = html.index("file.size > maxBytes")
    assert checks < html.index("/upload-url?sessionId=")
    assert html.index('form.append("file", file)') > html.index("grant.fields")


def _phone_state(query: dict[str, str]) -> tuple[int, str | None, bool]:
    status, _, elements, _ = _page(query)
    return status, elements.by_id["status"]["data-state"], "disabled" in elements.by_id["file"]


def test_phone_page_for_an_expired_session_says_so() -> None:
    session_id = create_session()["sessionId"]
    table().update_item(
        Key={"sessionId": session_id},
        UpdateExpression="SET expiresAt = :t",
        ExpressionAttributeValues={":t": int(time.time()) - 1},
    )
    status, _, elements, html = _page({"sessionId": session_id})
    assert (status, elements.by_id["status"]["data-state"]) == (400, "expired")
    assert "disabled" in elements.by_id["file"]
    assert re.search(r"expired", html, re.IGNORECASE)


def test_phone_page_for_a_completed_session() -> None:
    session_id = create_session()["sessionId"]
    key = request_upload_url(session_id).json["uploadKey"]
    table().update_item(
        Key={"sessionId": session_id},
        UpdateExpression="SET #s = :c",
        ConditionExpression="uploadKey = :k",
        ExpressionAttributeNames={"#s": "status"},
        ExpressionAttributeValues={":c": "COMPLETED", ":k": key},
    )
    assert _phone_state({"sessionId": session_id}) == (400, "completed", True)


@pytest.mark.parametrize("query", [{}, {"sessionId": "<script>alert(1)</script>"}, {"sessionId": UNKNOWN}])
def test_phone_page_for_missing_malformed_or_unknown_session(query: dict[str, str]) -> None:
    assert _phone_state(query) == (404, "not-found", True)
    assert "<script>alert" not in _page(query)[3]
