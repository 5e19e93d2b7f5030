"""HTTP API routes: sessions, upload URLs (with the signed POST policy decoded), session status."""

from __future__ import annotations

import base64
import hashlib
import json
import re
import time
from datetime import UTC, datetime
from urllib.parse import parse_qs, urlsplit

import pytest

from .helpers import (
    BUCKET,
    DOMAIN,
    PHOTO_LINKS_URL,
    call_http,
    create_session,
    http_event,
    item,
    metrics_from,
    put_object,
    request_upload_url,
    status_event,
    table,
    verify_link,
)

pytestmark = pytest.mark.usefixtures("aws")

UNKNOWN = "3f0c9b3e-8a6e-4d53-9a8e-2a4f6f1c7b21"


def _expire(session_id: str) -> None:
    table().update_item(
        Key={"sessionId": session_id},
        UpdateExpression="SET expiresAt = :t",
        ExpressionAttributeValues={":t": int(time.time()) - 1},
    )


def _complete(session_id: str, key: str) -> None:
    table().update_item(
        Key={"sessionId": session_id},
        UpdateExpression="SET #s = :c, completedAt = :t, uploadKey = :k",
        ExpressionAttributeNames={"#s": "status"},
        ExpressionAttributeValues={":c": "COMPLETED", ":t": int(time.time()), ":k": key},
    )


# --- POST /sessions -------------------------------------------------------------------------


def test_create_session_stores_hash_of_token_and_returns_urls(capsys: pytest.CaptureFixture[str]) -> None:
    before = int(time.time())
    result = call_http(http_event("http_create_session.json", body="{}"))

    assert result.status == 200
    assert result.headers["Content-Type"] == "application/json"
    body = result.json
    session_id = body["sessionId"]
    assert re.fullmatch(r"[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}", session_id)
    assert before + 1800 <= body["expiresAt"] <= int(time.time()) + 1800
    assert body["uploadPageUrl"] == f"https://{DOMAIN}/dev/upload?sessionId={session_id}"
    assert body["websocketUrl"] == "wss://w9x8y7z6v5.execute-api.eu-west-1.amazonaws.com/dev"
    assert body["maxBytes"] == 10 * 1024 * 1024
    assert "qrSvg" not in body
    token = body["desktopToken"]
    assert len(token) >= 40

    stored = item(session_id)
    assert stored["status"] == "AWAITING_SCAN"
    assert stored["expiresAt"] == body["expiresAt"]
    assert stored["desktopTokenHash"] == hashlib.sha256(token.encode()).hexdigest()
    assert token not in json.dumps(stored, default=str)
    assert "wsConnectionId" not in stored and "uploadKey" not in stored
    assert metrics_from(capsys.readouterr().out).get("SessionsCreated") == 1


def test_each_session_gets_its_own_id_and_token() -> None:
    first, second = create_session(), create_session()
    assert first["sessionId"] != second["sessionId"]
    assert first["desktopToken"] != second["desktopToken"]


def test_session_ttl_and_default_stage_follow_configuration(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SESSION_TTL_SECONDS", "60")
    event = http_event("http_create_session.json", body="")
    event["requestContext"]["stage"] = "$default"
    event["rawPath"] = event["requestContext"]["http"]["path"] = "/sessions"
    body = call_http(event).json
    assert body["expiresAt"] <= int(time.time()) + 60
    assert body["uploadPageUrl"] == f"https://{DOMAIN}/upload?sessionId={body['sessionId']}"


def test_create_session_with_qr_returns_svg_that_decodes_to_the_phone_page_url() -> None:
    # Rasterize the served SVG and decode it like a phone camera would (dev dependencies only).
    from io import BytesIO

    import pyvips
    import zxingcpp
    from PIL import Image

    body = create_session(qr=True)
    svg = body["qrSvg"]
    assert svg.startswith("<svg") and 'xmlns="http://www.w3.org/2000/svg"' in svg
    png = pyvips.Image.svgload_buffer(svg.encode()).flatten(background=255).write_to_buffer(".png")
    decoded = [code.text for code in zxingcpp.read_barcodes(Image.open(BytesIO(png)))]
    assert decoded == [f"https://{DOMAIN}/dev/upload?sessionId={body['sessionId']}"]


@pytest.mark.parametrize(
    ("raw_body", "message"),
    [
        ('{"qr": tru', "request body is not valid JSON"),
        ("[1, 2]", "request body must be a JSON object"),
        ('{"qr": "yes"}', "qr must be a boolean"),
    ],
)
def test_create_session_rejects_bad_bodies(raw_body: str, message: str, capsys: pytest.CaptureFixture[str]) -> None:
    result = call_http(http_event("http_create_session.json", body=raw_body))
    assert result.status == 400
    assert result.json == {"error": message}
    assert "SessionsCreated" not in metrics_from(capsys.readouterr().out)


# --- GET /upload-url ------------------------------------------------------------------------


def _policy(fields: dict[str, str]) -> dict[str, object]:
    decoded: dict[str, object] = json.loads(base64.b64decode(fields["policy"]))
    return decoded


def test_upload_url_is_a_presigned_post_with_exact_key_size_and_type_conditions(
    capsys: pytest.CaptureFixture[str],
) -> None:
    session_id = create_session()["sessionId"]
    issued_at = time.time()
    result = request_upload_url(session_id, "image/png")

    assert result.status == 200, result.body
    body = result.json
    key = body["uploadKey"]
    assert re.fullmatch(rf"session-uploads/{session_id}/image-[0-9a-f]{{32}}", key)
    assert body["maxBytes"] == 10 * 1024 * 1024
    assert body["expiresIn"] == 300
    assert BUCKET in body["uploadUrl"]
    fields = body["fields"]
    assert fields["key"] == key
    assert fields["Content-Type"] == "image/png"

    policy = _policy(fields)
    conditions = policy["conditions"]
    assert isinstance(conditions, list)
    assert ["content-length-range", 1, 10 * 1024 * 1024] in conditions
    # Exactly the type asked for, never a prefix (image/svg+xml would pass "image/").
    assert {"Content-Type": "image/png"} in conditions
    assert not [c for c in conditions if isinstance(c, list) and c[1] == "$Content-Type"]
    assert {"key": key} in conditions
    assert {"bucket": BUCKET} in conditions
    # S3 refuses a form field that no condition covers: every field we hand out must be covered.
    for name in set(fields) - {"policy", "x-amz-signature"}:
        assert any(
            (isinstance(c, dict) and name in c) or (isinstance(c, list) and c[1] == f"${name}") for c in conditions
        ), name
    # No prefix condition on the key: only this exact object may be written.
    assert not [c for c in conditions if isinstance(c, list) and c[:2] == ["starts-with", "$key"]]
    expiration = datetime.strptime(str(policy["expiration"]), "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=UTC)
    assert abs(expiration.timestamp() - (issued_at + 300)) < 5

    stored = item(session_id)
    assert stored["status"] == "UPLOAD_REQUESTED"
    assert stored["uploadKey"] == key
    assert metrics_from(capsys.readouterr().out).get("UploadUrlsIssued") == 1


def test_upload_url_limits_follow_configuration(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MAX_UPLOAD_BYTES", "2048")
    monkeypatch.setenv("UPLOAD_URL_TTL_SECONDS", "60")
    session_id = create_session()["sessionId"]
    issued_at = time.time()
    body = request_upload_url(session_id).json
    policy = _policy(body["fields"])
    assert ["content-length-range", 1, 2048] in policy["conditions"]  # type: ignore[operator]
    expiration = datetime.strptime(str(policy["expiration"]), "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=UTC)
    assert abs(expiration.timestamp() - (issued_at + 60)) < 5
    assert body["maxBytes"] == 2048


def test_upload_url_again_while_requested_issues_a_new_key_and_both_grants_count() -> None:
    session_id = create_session()["sessionId"]
    first = request_upload_url(session_id).json["uploadKey"]
    second = request_upload_url(session_id).json["uploadKey"]
    assert first != second
    stored = item(session_id)
    assert stored["uploadKey"] == second
    assert set(stored["grants"]) == {first.rsplit("-", 1)[1], second.rsplit("-", 1)[1]}


def test_upload_url_expires_with_the_session_at_the_latest() -> None:
    session_id = create_session()["sessionId"]
    ends = int(time.time()) + 40
    table().update_item(
        Key={"sessionId": session_id}, UpdateExpression="SET expiresAt = :e", ExpressionAttributeValues={":e": ends}
    )
    body = request_upload_url(session_id).json
    assert 38 <= body["expiresIn"] <= 40
    policy = _policy(body["fields"])
    expiration = datetime.strptime(str(policy["expiration"]), "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=UTC)
    assert expiration.timestamp() <= ends


def test_upload_url_defaults_content_type_to_jpeg() -> None:
    session_id = create_session()["sessionId"]
    result = call_http(http_event("http_upload_url.json", query={"sessionId": session_id}))
    assert result.status == 200
    assert result.json["fields"]["Content-Type"] == "image/jpeg"


@pytest.mark.parametrize(
    ("query", "status", "message"),
    [
        ({}, 400, "sessionId is required"),
        ({"sessionId": ""}, 400, "sessionId is required"),
        ({"sessionId": "not-a-uuid"}, 404, "Invalid sessionId format"),
        ({"sessionId": "../../etc/passwd"}, 404, "Invalid sessionId format"),
        ({"sessionId": UNKNOWN}, 404, "Session not found"),
    ],
)
def test_upload_url_bad_session_ids(query: dict[str, str], status: int, message: str) -> None:
    result = call_http(http_event("http_upload_url.json", query=query))
    assert result.status == status
    assert result.json == {"error": message}


def test_upload_url_for_expired_session_is_400_and_changes_nothing() -> None:
    session_id = create_session()["sessionId"]
    _expire(session_id)
    result = request_upload_url(session_id)
    assert (result.status, result.json) == (400, {"error": "Session expired"})
    assert item(session_id)["status"] == "AWAITING_SCAN"
    assert "uploadKey" not in item(session_id)


def test_upload_url_for_completed_session_is_400_and_keeps_its_key() -> None:
    session_id = create_session()["sessionId"]
    key = request_upload_url(session_id).json["uploadKey"]
    _complete(session_id, key)
    result = request_upload_url(session_id)
    assert (result.status, result.json) == (400, {"error": "Session already completed"})
    assert item(session_id)["uploadKey"] == key


@pytest.mark.parametrize(
    "content_type",
    ["text/html", "application/pdf", "image", "image/<script>", "image/svg+xml", "image/bmp", "image/x-icon"],
)
def test_upload_url_refuses_types_outside_the_photo_allow_list(content_type: str) -> None:
    session_id = create_session()["sessionId"]
    result = request_upload_url(session_id, content_type)
    assert result.status == 400
    assert result.json == {
        "error": "contentType must be one of: image/jpeg, image/png, image/webp, image/gif, image/heic, image/heif"
    }
    assert item(session_id)["status"] == "AWAITING_SCAN"


@pytest.mark.parametrize(
    "content_type", ["image/jpeg", "image/png", "image/webp", "image/gif", "image/heic", "IMAGE/HEIF"]
)
def test_upload_url_accepts_each_photo_type_and_pins_it(content_type: str) -> None:
    session_id = create_session()["sessionId"]
    body = request_upload_url(session_id, content_type).json
    assert body["fields"]["Content-Type"] == content_type.lower()
    assert {"Content-Type": content_type.lower()} in _policy(body["fields"])["conditions"]  # type: ignore[operator]


# --- GET /sessions/{sessionId} --------------------------------------------------------------


def test_session_status_with_token_while_waiting() -> None:
    session = create_session()
    result = call_http(status_event(session["sessionId"], session["desktopToken"]))
    assert result.status == 200
    assert result.json == {
        "sessionId": session["sessionId"],
        "status": "AWAITING_SCAN",
        "expiresAt": session["expiresAt"],
        "uploadKey": None,
    }


def test_session_status_when_completed_has_short_lived_image_url(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DOWNLOAD_URL_TTL_SECONDS", "120")
    session = create_session()
    key = request_upload_url(session["sessionId"]).json["uploadKey"]
    put_object(key, b"\x89PNG fake", "image/png")
    _complete(session["sessionId"], key)

    result = call_http(status_event(session["sessionId"], session["desktopToken"]))
    assert result.status == 200
    body = result.json
    assert body["status"] == "COMPLETED"
    assert body["uploadKey"] == key
    # A CloudFront signed URL for exactly that object, typed and as a download, valid 120 s.
    assert body["imageUrl"].startswith(f"{PHOTO_LINKS_URL}/{key}?")
    query = verify_link(body["imageUrl"])
    # _complete records no type read from the bytes: the link falls back to JPEG.
    assert query["response-content-type"] == "image/jpeg"
    assert query["response-content-disposition"] == 'attachment; filename="photo.jpg"'
    expires = int(parse_qs(urlsplit(body["imageUrl"]).query)["Expires"][0])
    assert time.time() + 110 < expires <= time.time() + 121


def test_completed_session_stays_viewable_after_expiry() -> None:
    session = create_session()
    key = request_upload_url(session["sessionId"]).json["uploadKey"]
    _complete(session["sessionId"], key)
    _expire(session["sessionId"])
    result = call_http(status_event(session["sessionId"], session["desktopToken"]))
    assert result.status == 200 and "imageUrl" in result.json


def test_session_status_of_expired_unfinished_session_is_400() -> None:
    session = create_session()
    _expire(session["sessionId"])
    result = call_http(status_event(session["sessionId"], session["desktopToken"]))
    assert (result.status, result.json) == (400, {"error": "Session expired"})


@pytest.mark.parametrize(
    ("token", "status", "message"),
    [
        (None, 401, "desktop token required"),
        ("", 401, "desktop token required"),
        ("wrong-token", 403, "invalid desktop token"),
    ],
)
def test_session_status_needs_the_desktop_token(token: str | None, status: int, message: str) -> None:
    session = create_session()
    result = call_http(status_event(session["sessionId"], token))
    assert (result.status, result.json) == (status, {"error": message})


def test_session_status_token_of_another_session_is_refused() -> None:
    mine, other = create_session(), create_session()
    result = call_http(status_event(mine["sessionId"], other["desktopToken"]))
    assert result.status == 403


def test_session_status_token_in_another_scheme_is_refused() -> None:
    session = create_session()
    event = status_event(session["sessionId"], None)
    event["headers"]["authorization"] = f"Basic {session['desktopToken']}"
    assert call_http(event).status == 401


@pytest.mark.parametrize(
    ("session_id", "status", "message"),
    [(UNKNOWN, 404, "Session not found"), ("nope", 404, "Invalid sessionId format")],
)
def test_session_status_unknown_or_malformed(session_id: str, status: int, message: str) -> None:
    result = call_http(status_event(session_id, "some-token"))
    assert (result.status, result.json) == (status, {"error": message})


# --- routing --------------------------------------------------------------------------------


@pytest.mark.parametrize(("method", "path"), [("GET", "/nope"), ("DELETE", "/sessions"), ("GET", "/sessions")])
def test_unknown_route_is_404_json(method: str, path: str) -> None:
    result = call_http(http_event("http_create_session.json", method=method, path=path, body=""))
    assert result.status == 404
    assert result.headers["Content-Type"] == "application/json"
    assert result.json == {"error": "Not Found"}


def test_store_failure_is_a_generic_500_json(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SESSIONS_TABLE_NAME", "no-such-table")
    result = call_http(http_event("http_create_session.json", body="{}"))
    assert (result.status, result.json) == (500, {"error": "Internal Server Error"})


@pytest.mark.parametrize("raw", [b"\xff\xfe{", b'{"qr": "\xe9t\xe9"}', b"\x80"])
def test_create_session_with_a_body_that_is_not_utf8_is_400(raw: bytes) -> None:
    # API Gateway base64-encodes a body it cannot pass as text (isBase64Encoded: true).
    event = http_event("http_create_session.json", body=base64.b64encode(raw).decode())
    event["isBase64Encoded"] = True
    result = call_http(event)
    assert result.status == 400
    assert result.json == {"error": "request body is not valid JSON"}


def test_create_session_with_a_body_that_is_not_base64_is_400() -> None:
    event = http_event("http_create_session.json", body="%%%not-base64")
    event["isBase64Encoded"] = True
    result = call_http(event)
    assert result.status == 400
