"""WebSocket $connect/$disconnect and S3 ObjectCreated handling of the event function."""

from __future__ import annotations

import io
import time
from functools import cache
from typing import Any
from urllib.parse import parse_qs, urlsplit

import boto3
import pytest

from lambdas.common import containers

from .conftest import ConnectionsServer
from .helpers import (
    BUCKET,
    REGION,
    call_events,
    call_http,
    connect_event,
    create_session,
    disconnect_event,
    http_event,
    item,
    latest_version,
    load_event,
    metrics_from,
    put_object,
    request_upload_url,
    s3_event,
    s3_record,
    status_event,
    table,
)

pytestmark = pytest.mark.usefixtures("aws")

CONN = "CzVBZdRxjoECFfA="
UNKNOWN = "3f0c9b3e-8a6e-4d53-9a8e-2a4f6f1c7b21"
PHOTO = b"\xff\xd8\xff\xe0" + b"jpeg" * 256
PNG = b"\x89PNG\r\n\x1a\n" + bytes(range(256))


@cache
def s3() -> Any:
    return boto3.client("s3", region_name=REGION)


def upload_status(session_id: str, key: str) -> tuple[int, Any]:
    result = call_http(
        http_event("http_upload_url.json", path="/upload-status", query={"sessionId": session_id, "uploadKey": key})
    )
    return result.status, result.json


def _expire(session_id: str) -> None:
    table().update_item(
        Key={"sessionId": session_id},
        UpdateExpression="SET expiresAt = :t",
        ExpressionAttributeValues={":t": int(time.time()) - 1},
    )


def _connected_session(connection_id: str = CONN) -> dict[str, Any]:
    session = create_session()
    result = call_events(connect_event(session["sessionId"], session["desktopToken"], connection_id))
    assert result["statusCode"] == 200
    return session


def _uploaded(session_id: str, body: bytes = PHOTO, content_type: str = "image/jpeg") -> str:
    key: str = request_upload_url(session_id).json["uploadKey"]
    put_object(key, body, content_type)
    return key


# --- $connect -------------------------------------------------------------------------------


def test_connect_with_token_attaches_the_connection() -> None:
    session = create_session()
    result = call_events(connect_event(session["sessionId"], session["desktopToken"], CONN))
    assert result["statusCode"] == 200
    assert item(session["sessionId"])["wsConnectionId"] == CONN


def test_reconnect_replaces_the_previous_connection() -> None:
    session = _connected_session("old-conn=")
    call_events(connect_event(session["sessionId"], session["desktopToken"], "new-conn="))
    assert item(session["sessionId"])["wsConnectionId"] == "new-conn="


@pytest.mark.parametrize(
    ("token", "status"),
    [(None, 401), ("", 401), ("guessed-token", 403)],
)
def test_connect_without_the_right_token_is_refused(token: str | None, status: int) -> None:
    session = create_session()
    result = call_events(connect_event(session["sessionId"], token, CONN))
    assert result["statusCode"] == status
    assert "wsConnectionId" not in item(session["sessionId"])


def test_connect_with_another_sessions_token_is_refused() -> None:
    mine, other = create_session(), create_session()
    result = call_events(connect_event(mine["sessionId"], other["desktopToken"], CONN))
    assert result["statusCode"] == 403
    assert "wsConnectionId" not in item(mine["sessionId"])


@pytest.mark.parametrize(
    ("session_id", "status", "error"),
    [
        (None, 400, "sessionId is required"),
        ("not-a-uuid", 404, "Invalid sessionId format"),
        (UNKNOWN, 404, "Session not found"),
    ],
)
def test_connect_with_bad_session_is_refused(session_id: str | None, status: int, error: str) -> None:
    result = call_events(connect_event(session_id, "any-token", CONN))
    assert result["statusCode"] == status
    assert error in result["body"]


def test_connect_to_expired_session_is_refused() -> None:
    session = create_session()
    _expire(session["sessionId"])
    result = call_events(connect_event(session["sessionId"], session["desktopToken"], CONN))
    assert result["statusCode"] == 400 and "Session expired" in result["body"]
    assert "wsConnectionId" not in item(session["sessionId"])


def test_connect_to_completed_session_is_accepted_even_after_expiry(connections: ConnectionsServer) -> None:
    session = create_session()
    key = _uploaded(session["sessionId"])
    call_events(s3_event(key))
    _expire(session["sessionId"])
    result = call_events(connect_event(session["sessionId"], session["desktopToken"], CONN))
    assert result["statusCode"] == 200


# --- $disconnect ----------------------------------------------------------------------------


def test_disconnect_clears_its_own_connection_found_through_the_gsi() -> None:
    session = _connected_session(CONN)
    other = _connected_session("someone-else=")
    result = call_events(disconnect_event(CONN))
    assert result["statusCode"] == 200
    assert "wsConnectionId" not in item(session["sessionId"])
    assert item(other["sessionId"])["wsConnectionId"] == "someone-else="


def test_disconnect_of_a_replaced_connection_keeps_the_newer_one() -> None:
    session = _connected_session("old-conn=")
    # The desktop reconnected; the old socket's $disconnect arrives afterwards.
    call_events(connect_event(session["sessionId"], session["desktopToken"], "new-conn="))
    result = call_events(disconnect_event("old-conn="))
    assert result["statusCode"] == 200
    assert item(session["sessionId"])["wsConnectionId"] == "new-conn="


def test_disconnect_of_unknown_connection_is_200() -> None:
    assert call_events(disconnect_event("never-seen="))["statusCode"] == 200


def test_disconnect_is_200_even_when_the_store_fails(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SESSIONS_TABLE_NAME", "no-such-table")
    assert call_events(disconnect_event(CONN))["statusCode"] == 200


# --- S3 ObjectCreated -----------------------------------------------------------------------


def test_upload_completes_session_and_notifies_the_desktop(
    connections: ConnectionsServer, capsys: pytest.CaptureFixture[str]
) -> None:
    session = _connected_session()
    sid = session["sessionId"]
    key = _uploaded(sid)

    call_events(s3_event(key))

    stored = item(sid)
    assert stored["status"] == "COMPLETED"
    assert stored["uploadKey"] == key
    assert connections.posts == [
        (
            "dev",
            CONN,
            {"action": "UPLOAD_COMPLETED", "sessionId": sid, "uploadKey": key, "timestamp": int(stored["completedAt"])},
        )
    ]
    emitted = metrics_from(capsys.readouterr().out)
    assert emitted.get("UploadsCompleted") == 1
    assert emitted.get("NotificationsSent") == 1


def test_duplicate_events_complete_once_and_notify_once(connections: ConnectionsServer) -> None:
    session = _connected_session()
    sid = session["sessionId"]
    key = _uploaded(sid)

    call_events(s3_event(key, key))  # one delivery holding the same record twice
    completed_at = item(sid)["completedAt"]
    call_events(s3_event(key))  # and a redelivery later

    assert len(connections.posts) == 1
    assert item(sid)["completedAt"] == completed_at


def test_completion_without_a_connected_desktop_notifies_nobody(connections: ConnectionsServer) -> None:
    sid = create_session()["sessionId"]
    key = _uploaded(sid)
    call_events(s3_event(key))
    assert item(sid)["status"] == "COMPLETED"
    assert connections.posts == []


def test_every_record_is_processed(connections: ConnectionsServer) -> None:
    first, second = _connected_session("conn-a="), _connected_session("conn-b=")
    key_a, key_b = _uploaded(first["sessionId"]), _uploaded(second["sessionId"])
    call_events(s3_event(key_a, key_b))
    assert item(first["sessionId"])["status"] == "COMPLETED"
    assert item(second["sessionId"])["status"] == "COMPLETED"
    assert sorted(conn for _, conn, _ in connections.posts) == ["conn-a=", "conn-b="]


def test_two_phones_exactly_one_upload_wins_and_the_other_is_told(connections: ConnectionsServer) -> None:
    session = _connected_session()
    sid = session["sessionId"]
    first_key = _uploaded(sid)  # phone 1 took its grant first...
    second_key = _uploaded(sid, body=PNG, content_type="image/png")  # ...phone 2 took one too

    # Phone 1's upload is processed first: it wins, although phone 2's grant is newer.
    call_events(s3_event(first_key))
    call_events(s3_event(second_key))
    stored = item(sid)
    assert stored["status"] == "COMPLETED"
    assert stored["uploadKey"] == first_key
    assert [msg["uploadKey"] for _, _, msg in connections.posts] == [first_key]
    assert upload_status(sid, first_key) == (200, {"sessionId": sid, "state": "completed"})
    assert upload_status(sid, second_key) == (
        200,
        {"sessionId": sid, "state": "superseded", "message": "Another device sent a photo first."},
    )
    # The desktop is shown phone 1's photo, typed from its bytes.
    image_url = call_http(status_event(sid, session["desktopToken"])).json["imageUrl"]
    assert first_key in image_url and "response-content-type=image%2Fjpeg" in image_url


def test_foreign_keys_are_ignored_and_logged_decoded(
    connections: ConnectionsServer, capsys: pytest.CaptureFixture[str]
) -> None:
    sid = _connected_session()["sessionId"]
    request_upload_url(sid)
    event = load_event("s3_object_created_foreign.json")
    event["Records"].append(s3_record(f"session-uploads/{sid}/notes.txt"))
    event["Records"].append(s3_record("session-uploads/not-a-uuid/image-0123456789abcdef0123456789abcdef"))
    event["Records"].append(s3_record(f"session-uploads/{UNKNOWN}/image-0123456789abcdef0123456789abcdef"))
    event["Records"].append(s3_record("elsewhere/photo.jpg"))

    call_events(event)

    assert item(sid)["status"] == "UPLOAD_REQUESTED"
    assert connections.posts == []
    out = capsys.readouterr().out
    # The fixture's key is URL-encoded ('+' and %28 %29); the log shows what S3 stored.
    assert f"session-uploads/{UNKNOWN}/holiday photo (1).jpg" in out
    assert metrics_from(out).get("UploadsIgnored") == 5


def test_encoded_key_of_the_current_upload_is_decoded_and_completes() -> None:
    # Keys we issue need no encoding, so encode one the way S3 may (every byte percent-escaped).
    sid = create_session()["sessionId"]
    key = _uploaded(sid)
    record = s3_record(key, encode=False)
    record["s3"]["object"]["key"] = "".join(f"%{b:02X}" if chr(b) == "-" else chr(b) for b in key.encode())
    call_events({"Records": [record]})
    assert item(sid)["status"] == "COMPLETED"


def test_oversized_object_is_refused(
    monkeypatch: pytest.MonkeyPatch, connections: ConnectionsServer, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("MAX_UPLOAD_BYTES", "1000")
    session = _connected_session()
    sid = session["sessionId"]
    key = _uploaded(sid, body=b"x" * 1001)

    call_events(s3_event(key))

    assert item(sid)["status"] == "UPLOAD_REQUESTED"
    assert connections.posts == []
    assert metrics_from(capsys.readouterr().out).get("UploadsRejected") == 1


def test_object_at_the_limit_is_accepted(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MAX_UPLOAD_BYTES", "1000")
    sid = create_session()["sessionId"]
    key = _uploaded(sid, body=PHOTO[:1000])
    call_events(s3_event(key))
    assert item(sid)["status"] == "COMPLETED"


@pytest.mark.parametrize(
    "body",
    [
        b"%PDF-1.7\n%\xe2\xe3\xcf\xd3\n1 0 obj",
        b'<svg xmlns="http://www.w3.org/2000/svg"><script>alert(1)</script></svg>',
        b"<!doctype html><script>alert(1)</script>",
        b"PK\x03\x04 a zip renamed IMG_0001.jpg",
        b"\x00\x00\x00\x18ftypmp42 an mp4 is not a photo",
    ],
)
def test_bytes_that_are_not_a_photo_are_refused_the_phone_told_why_and_a_retry_completes(
    body: bytes, capsys: pytest.CaptureFixture[str]
) -> None:
    sid = create_session()["sessionId"]
    key = _uploaded(sid, body=body, content_type="image/jpeg")  # renamed .jpg: the declared type lies
    call_events(s3_event(key))
    assert item(sid)["status"] == "UPLOAD_REQUESTED"
    assert metrics_from(capsys.readouterr().out).get("UploadsRejected") == 1
    status, answer = upload_status(sid, key)
    assert (status, answer["state"]) == (200, "refused")
    assert answer["message"] == "That file is not a photo. Send a JPEG, PNG, WebP, GIF or HEIC photo."
    # The session stayed open: the same phone sends a real photo with a new grant.
    retry = _uploaded(sid)
    call_events(s3_event(retry))
    assert item(sid)["status"] == "COMPLETED" and item(sid)["uploadKey"] == retry
    assert upload_status(sid, retry)[1]["state"] == "completed"


def test_a_photo_is_accepted_whatever_type_it_was_declared_with() -> None:
    sid = create_session()["sessionId"]
    key = _uploaded(sid, body=PNG, content_type="image/jpeg")
    call_events(s3_event(key))
    assert item(sid)["contentType"] == "image/png"


def test_a_grant_used_after_the_session_expired_completes_nothing(connections: ConnectionsServer) -> None:
    session = _connected_session()
    sid = session["sessionId"]
    key = _uploaded(sid)  # the grant was taken while the session lived
    expires_at = int(item(sid)["expiresAt"])
    # S3 stored the object one second after expiry (real S3 would accept a form still valid then).
    call_events({"Records": [s3_record(key, version_id=latest_version(key), at=expires_at + 1)]})
    assert item(sid)["status"] == "UPLOAD_REQUESTED"
    assert connections.posts == []
    _expire(sid)
    assert upload_status(sid, key)[1]["state"] == "expired"


def test_a_second_post_with_the_same_grant_after_completion_changes_nothing_shown(
    connections: ConnectionsServer,
) -> None:
    session = _connected_session()
    sid = session["sessionId"]
    key = _uploaded(sid)
    first_version = latest_version(key)
    call_events(s3_event(key))
    assert item(sid)["uploadVersionId"] == first_version

    put_object(key, PNG, "image/png")  # the same form posted again, with other bytes
    second_version = latest_version(key)
    assert second_version != first_version
    call_events(s3_event(key))

    stored = item(sid)
    assert stored["uploadVersionId"] == first_version and stored["contentType"] == "image/jpeg"
    assert len(connections.posts) == 1
    url = urlsplit(call_http(status_event(sid, session["desktopToken"])).json["imageUrl"])
    query = parse_qs(url.query)
    assert query["versionId"] == [first_version]
    assert query["response-content-type"] == ["image/jpeg"]
    assert query["response-content-disposition"] == ['attachment; filename="photo.jpg"']
    shown = s3().get_object(Bucket=BUCKET, Key=key, VersionId=query["versionId"][0])["Body"].read()
    assert shown == PHOTO


def _heic(width: int = 640, height: int = 480) -> bytes:
    import pillow_heif
    from PIL import Image

    pillow_heif.register_heif_opener()
    out = io.BytesIO()
    Image.new("RGB", (width, height), (200, 40, 40)).save(out, format="HEIF", quality=60)
    return out.getvalue()


def test_heic_gets_a_jpeg_rendition_the_desktop_is_shown() -> None:
    from PIL import Image

    session = create_session()
    sid = session["sessionId"]
    heic = _heic()
    key = _uploaded(sid, body=heic, content_type="image/heic")
    call_events(s3_event(key))
    stored = item(sid)
    assert stored["status"] == "COMPLETED" and stored["contentType"] == "image/heic"
    rendition = stored["renditionKey"]
    assert rendition == f"session-renditions/{sid}/{key.rsplit('-', 1)[1]}.jpg"
    jpeg = s3().get_object(Bucket=BUCKET, Key=rendition)
    assert jpeg["ContentType"] == "image/jpeg"
    with Image.open(io.BytesIO(jpeg["Body"].read())) as img:
        assert (img.format, img.size) == ("JPEG", (640, 480))
        red, green, blue = img.getpixel((320, 240))
        assert red > 150 and green < 90 and blue < 90
    url = call_http(status_event(sid, session["desktopToken"])).json["imageUrl"]
    assert rendition in url and "response-content-type=image%2Fjpeg" in url


def test_heic_magic_with_bytes_that_do_not_decode_is_refused() -> None:
    sid = create_session()["sessionId"]
    key = _uploaded(sid, body=b"\x00\x00\x00\x18ftypheic" + b"\x00" * 200, content_type="image/heic")
    call_events(s3_event(key))
    assert item(sid)["status"] == "UPLOAD_REQUESTED"
    assert upload_status(sid, key)[1]["message"].startswith("That photo could not be read.")


def test_upload_status_is_404_for_keys_of_other_sessions_or_never_granted() -> None:
    first, second = create_session()["sessionId"], create_session()["sessionId"]
    key = request_upload_url(first).json["uploadKey"]
    assert upload_status(second, key)[0] == 404
    assert upload_status(first, f"session-uploads/{first}/image-{'0' * 32}")[0] == 404
    assert upload_status(first, "../../etc/passwd")[0] == 404
    assert upload_status(first, key) == (200, {"sessionId": first, "state": "pending"})


def test_event_for_a_deleted_object_is_ignored() -> None:
    sid = create_session()["sessionId"]
    key = request_upload_url(sid).json["uploadKey"]  # issued, never uploaded
    call_events(s3_event(key))
    assert item(sid)["status"] == "UPLOAD_REQUESTED"


def test_gone_connection_is_cleared_and_counted(
    connections: ConnectionsServer, capsys: pytest.CaptureFixture[str]
) -> None:
    session = _connected_session()
    sid = session["sessionId"]
    key = _uploaded(sid)
    connections.gone.add(CONN)

    call_events(s3_event(key))

    stored = item(sid)
    assert stored["status"] == "COMPLETED"
    assert "wsConnectionId" not in stored
    assert metrics_from(capsys.readouterr().out).get("StaleConnections") == 1


def test_gone_connection_does_not_clear_a_newer_connection(connections: ConnectionsServer) -> None:
    session = _connected_session()
    sid = session["sessionId"]
    key = _uploaded(sid)
    connections.gone.add(CONN)
    # The desktop reconnects while the notification to its old socket is in flight.
    connections.before_gone = lambda _conn: table().update_item(
        Key={"sessionId": sid},
        UpdateExpression="SET wsConnectionId = :c",
        ExpressionAttributeValues={":c": "fresh-conn="},
    )

    call_events(s3_event(key))

    assert item(sid)["wsConnectionId"] == "fresh-conn="


def test_failed_notification_raises_for_retry_and_the_retry_notifies_once(
    connections: ConnectionsServer,
) -> None:
    session = _connected_session()
    sid = session["sessionId"]
    key = _uploaded(sid)
    connections.failures = 10  # more than the SDK's own retries

    with pytest.raises(RuntimeError, match="1 of 1 S3 records failed"):
        call_events(s3_event(key))
    assert item(sid)["status"] == "COMPLETED"
    assert "notifiedAt" not in item(sid)  # the claim was released for the retry

    connections.failures = 0
    call_events(s3_event(key))  # Lambda's retry of the same event
    call_events(s3_event(key))  # and one more delivery: nothing more is sent
    assert [conn for _, conn, _ in connections.posts] == [CONN]


def test_store_failure_raises_so_lambda_retries(monkeypatch: pytest.MonkeyPatch) -> None:
    sid = create_session()["sessionId"]
    key = _uploaded(sid)
    monkeypatch.setenv("SESSIONS_TABLE_NAME", "no-such-table")
    containers.reset()
    with pytest.raises(RuntimeError):
        call_events(s3_event(key))


def test_unknown_event_type_is_400() -> None:
    result = call_events({"source": "aws.events", "detail-type": "Scheduled Event", "detail": {}})
    assert result["statusCode"] == 400
