"""WebSocket lifecycle and S3 upload events: `qr-upload-websocket-event-{env}`.

- `$connect?sessionId=&token=`: the desktop's socket. Refused (non-200) when sessionId is missing
  (400) or malformed/unknown (404), the token is missing (401) or wrong (403), or the session
  expired (400) unless it already COMPLETED (then accepted: the desktop fetches the status).
  The newest connection replaces the session's previous wsConnectionId.
- `$disconnect`: finds the session through the `wsConnectionId-index` GSI and clears
  wsConnectionId only if it still holds this connection. Always 200.
- S3 `ObjectCreated:*` under `session-uploads/`: every record is processed. A key that is not
  one of the session's grants is ignored (logged, UploadsIgnored). The first 64 bytes of the
  event's object version are read: an empty or oversized object, or one whose magic numbers are
  not a JPEG, PNG, WebP, GIF or HEIC/HEIF photo, is refused (logged, UploadsRejected); the reason
  is stored under `refused.{uploadId}` for the phone (GET /upload-status) and the session stays
  open for a retry. HEIC/HEIF gets a JPEG rendition under `session-renditions/` for the desktop.
  Completion is conditional on `status = UPLOAD_REQUESTED`, the grant, and the upload's own time
  (eventTime) being before expiresAt: the first accepted upload wins, the others read as
  superseded, and one made after expiry completes nothing. The completing version is pinned.
  The notification is claimed with `notifiedAt`, so a redelivered event completes nothing and
  notifies nobody a second time.
  Retryable failures (throttling, 5xx) raise after all records were tried, so Lambda retries.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any
from urllib.parse import unquote_plus

from aws_lambda_powertools import Logger, Metrics
from aws_lambda_powertools.metrics import MetricUnit
from aws_lambda_powertools.utilities.typing import LambdaContext

from lambdas.common.entry import entry
from lambdas.common.tracing import tracer
from lambdas.common.websocket import ConnectionGone, post_to_connection, route_response
from lambdas.qr_upload import uploads
from lambdas.qr_upload.sessions import (
    COMPLETED,
    SessionError,
    completion_message,
    desktop_session,
    ignore_reason,
    needs_notification,
    now,
)
from lambdas.qr_upload.settings import settings
from lambdas.qr_upload.store import SessionStore

logger = Logger()
metrics = Metrics()


def _store() -> SessionStore:
    return SessionStore(settings().table_name)


def _count(name: str) -> None:
    metrics.add_metric(name=name, unit=MetricUnit.Count, value=1)


@tracer.capture_method
def on_connect(event: dict[str, Any]) -> dict[str, Any]:
    connection_id = event["requestContext"]["connectionId"]
    params = event.get("queryStringParameters") or {}
    try:
        store = _store()
        session_id = str(desktop_session(params.get("sessionId"), params.get("token"), store.get)["sessionId"])
        store.attach_connection(session_id, connection_id)
    except SessionError as exc:
        if exc.reason == "forbidden":
            logger.warning("connect refused: wrong token", extra={"sessionId": params.get("sessionId")})
        else:
            logger.info("connect refused", extra={"reason": exc.reason})
        return route_response(exc.status, exc.message)
    logger.info("desktop connected", extra={"sessionId": session_id, "connectionId": connection_id})
    return route_response(200)


@tracer.capture_method
def on_disconnect(event: dict[str, Any]) -> dict[str, Any]:
    connection_id = event["requestContext"]["connectionId"]
    try:
        store = _store()
        for session_id in store.sessions_for_connection(connection_id):
            cleared = store.detach_connection(session_id, connection_id)
            logger.info("desktop disconnected", extra={"sessionId": session_id, "cleared": cleared})
    except Exception:
        # The connection is gone whatever we answer; a stale id is cleaned up on the next send.
        logger.exception("disconnect cleanup failed", extra={"connectionId": connection_id})
    return route_response(200)


def _notify(store: SessionStore, session: dict[str, Any], key: str) -> None:
    session_id = str(session["sessionId"])
    if not needs_notification(session, key):
        return
    connection_id = session.get("wsConnectionId")
    if not connection_id:
        logger.info("no desktop connected; it catches up via GET /sessions", extra={"sessionId": session_id})
        return
    claimed_at = store.claim_notification(session_id, key, str(connection_id))
    if claimed_at is None:
        return  # another delivery notified, or the desktop changed connection meanwhile
    try:
        post_to_connection(settings().websocket_endpoint(), str(connection_id), completion_message(session, key))
    except ConnectionGone:
        _count("StaleConnections")
        cleared = store.detach_connection(session_id, str(connection_id))
        logger.info("desktop connection gone", extra={"sessionId": session_id, "cleared": cleared})
        return
    except Exception:
        store.release_notification(session_id, claimed_at)
        raise
    _count("NotificationsSent")
    logger.info("desktop notified", extra={"sessionId": session_id})


def _ignore(reason: str, key: str) -> None:
    _count("UploadsIgnored")
    logger.warning("upload event ignored", extra={"reason": reason, "key": key})


def _uploaded_at(record: dict[str, Any]) -> int:
    """When S3 stored the object (the record's eventTime), so a late delivery is judged by
    when the phone uploaded, not when the event arrived."""
    try:
        stamp = datetime.fromisoformat(str(record["eventTime"]).replace("Z", "+00:00"))
    except (KeyError, ValueError):
        return now()
    return int(stamp.timestamp())


@tracer.capture_method
def on_object_created(store: SessionStore, record: dict[str, Any]) -> None:
    bucket = record["s3"]["bucket"]["name"]
    # S3 event keys are URL-encoded with '+' for spaces.
    key = unquote_plus(record["s3"]["object"]["key"])
    if not str(record.get("eventName", "")).startswith("ObjectCreated:"):
        return _ignore("not an ObjectCreated event", key)
    parsed = uploads.parse_key(key)
    if parsed is None:
        return _ignore("not an upload key", key)
    session_id, upload_id = parsed
    session = store.get(session_id)
    version_id = record["s3"]["object"].get("versionId") or None
    uploaded_at = _uploaded_at(record)
    reason = ignore_reason(session, key, upload_id, version_id, uploaded_at)
    if reason is not None:
        return _ignore(reason, key)
    assert session is not None  # ignore_reason names a missing session
    if session.get("status") == COMPLETED:
        _notify(store, session, key)  # a redelivery: notify if that has not happened yet
        return None

    current = settings()
    stored = uploads.read_head(bucket, key, version_id)
    if stored is None:
        return _ignore("object no longer exists", key)
    fmt, reason = uploads.rejection_reason(stored, current.max_upload_bytes)
    rendition = None
    if fmt in uploads.NEEDS_RENDITION:
        rendition = uploads.rendition_key(session_id, upload_id)
        if not uploads.make_rendition(bucket, key, stored.version_id, rendition):
            fmt, reason = None, f"That photo could not be read. Send {uploads.ACCEPTED_WORDS}."
    if fmt is None:
        _count("UploadsRejected")
        logger.warning("upload refused", extra={"sessionId": session_id, "key": key, "reason": reason})
        store.refuse_upload(session_id, upload_id, str(reason))
        return None
    completed = store.complete(
        session_id,
        key,
        upload_id,
        uploaded_at=uploaded_at,
        version_id=stored.version_id,
        content_type=uploads.content_type_of(fmt),
        rendition_key=rendition,
    )
    if completed is None:
        # Another upload won, or the session expired meanwhile: nothing to notify for this one.
        return _ignore("the session was completed or expired meanwhile", key)
    _count("UploadsCompleted")
    logger.info("upload completed", extra={"sessionId": session_id, "key": key, "format": fmt})
    _notify(store, completed, key)
    return None


def on_s3_records(records: list[dict[str, Any]]) -> dict[str, Any]:
    failed = 0
    for record in records:
        try:
            on_object_created(_store(), record)
        except Exception:
            failed += 1
            logger.exception("upload event failed", extra={"key": record.get("s3", {}).get("object", {})})
    if failed:
        # Every record was tried; the retry repeats only what is not done yet (all steps idempotent).
        raise RuntimeError(f"{failed} of {len(records)} S3 records failed")
    return {"processed": len(records)}


@entry(logger, metrics)
def handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    context_ = event.get("requestContext") or {}
    route = context_.get("routeKey")
    if route in ("$connect", "$disconnect"):
        logger.set_correlation_id(context_.get("requestId"))
        return on_connect(event) if route == "$connect" else on_disconnect(event)
    records = event.get("Records")
    if isinstance(records, list) and records and all("s3" in r for r in records):
        logger.set_correlation_id(records[0].get("responseElements", {}).get("x-amz-request-id"))
        return on_s3_records(records)
    logger.error("unknown event type", extra={"keys": sorted(event)})
    return route_response(400, "Unknown event type")
