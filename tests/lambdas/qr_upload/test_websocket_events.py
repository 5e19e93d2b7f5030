"""WebSocket $connect/$disconnect and S3 ObjectCreated handling of the event function."""

from __future__ import annotations

import time
from typing import Any

import pytest

from lambdas.qr_upload import config

from .conftest import ConnectionsServer
from .helpers import (
    call_events,
    connect_event,
    create_session,
    disconnect_event,
    item,
    load_event,
    metrics_from,
    put_object,
    request_upload_url,
    s3_event,
    s3_record,
    table,
)

pytestmark = pytest.mark.usefixtures("aws")

CONN = "CzVBZdRxjoECFfA="
UNKNOWN = "3f0c9b3e-8a6e-4d53-9a8e-2a4f6f1c7b21"
PHOTO = b"\xff\xd8\xff\xe0" + b"jpeg" * 256


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


def test_only_the_latest_upload_key_completes(connections: ConnectionsServer) -> None:
    session = _connected_session()
    sid = session["sessionId"]
    old_key = _uploaded(sid)
    new_key = _uploaded(sid)  # the phone asked again; the first form no longer counts

    call_events(s3_event(old_key))
    assert item(sid)["status"] == "UPLOAD_REQUESTED"
    assert connections.posts == []

    call_events(s3_event(new_key))
    assert item(sid)["status"] == "COMPLETED"
    assert item(sid)["uploadKey"] == new_key


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
    key = _uploaded(sid, body=b"x" * 1000)
    call_events(s3_event(key))
    assert item(sid)["status"] == "COMPLETED"


@pytest.mark.parametrize("content_type", ["text/html", "application/octet-stream", "binary/octet-stream"])
def test_non_image_object_is_refused(content_type: str, capsys: pytest.CaptureFixture[str]) -> None:
    sid = create_session()["sessionId"]
    key = _uploaded(sid, content_type=content_type)
    call_events(s3_event(key))
    assert item(sid)["status"] == "UPLOAD_REQUESTED"
    assert metrics_from(capsys.readouterr().out).get("UploadsRejected") == 1


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
    config.settings.cache_clear()
    with pytest.raises(RuntimeError):
        call_events(s3_event(key))


def test_unknown_event_type_is_400() -> None:
    result = call_events({"source": "aws.events", "detail-type": "Scheduled Event", "detail": {}})
    assert result["statusCode"] == 400
