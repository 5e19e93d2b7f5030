"""WebSocket lifecycle and S3 upload events: `qr-upload-websocket-event-{env}`.

- `$connect?sessionId=&token=`: the desktop's socket. Refused (non-200) when sessionId is missing
  (400) or malformed/unknown (404), the token is missing (401) or wrong (403), or the session
  expired (400) unless it already COMPLETED (then accepted: the desktop fetches the status).
  The newest connection replaces the session's previous wsConnectionId.
- `$disconnect`: finds the session through the `wsConnectionId-index` GSI and clears
  wsConnectionId only if it still holds this connection. Always 200.
- S3 `ObjectCreated:*` under `session-uploads/`: every record is processed. A key that is not the
  session's current uploadKey is ignored (logged, UploadsIgnored). The object is HEADed; one over
  MAX_UPLOAD_BYTES or not image/* is refused (logged, UploadsRejected) and the session is left
  unchanged, so the phone can still send a proper photo with a new URL while the session lives
  (the bucket's lifecycle rule removes the refused object). Completion is conditional on
  `status = UPLOAD_REQUESTED AND uploadKey = :key`, and the notification is claimed with
  `notifiedAt`, so a redelivered event completes nothing and notifies nobody a second time.
  Completion does not re-check expiresAt: the form was issued while the session was live and S3
  enforced the form's own (shorter) expiry.
  Retryable failures (throttling, 5xx) raise after all records were tried, so Lambda retries.
"""

from __future__ import annotations

import json
from typing import Any
from urllib.parse import unquote_plus

from aws_lambda_powertools import Logger, Metrics, Tracer
from aws_lambda_powertools.metrics import MetricUnit
from aws_lambda_powertools.utilities.typing import LambdaContext

from lambdas.common.websocket import ConnectionGone, post_to_connection
from lambdas.qr_upload import config, uploads
from lambdas.qr_upload.sessions import (
    COMPLETED,
    UPLOAD_REQUESTED,
    SessionError,
    SessionStore,
    check_session_id,
    is_expired,
    now,
    token_matches,
)

logger = Logger()
tracer = Tracer()
metrics = Metrics()


def _store() -> SessionStore:
    return SessionStore(config.settings().table_name)


def _reply(status: int, payload: dict[str, Any]) -> dict[str, Any]:
    return {"statusCode": status, "body": json.dumps(payload, separators=(",", ":"))}


def _count(name: str) -> None:
    metrics.add_metric(name=name, unit=MetricUnit.Count, value=1)


@tracer.capture_method
def on_connect(event: dict[str, Any]) -> dict[str, Any]:
    connection_id = event["requestContext"]["connectionId"]
    params = event.get("queryStringParameters") or {}
    try:
        session_id = check_session_id(params.get("sessionId"))
        token = params.get("token")
        if not token:
            return _reply(401, {"error": "desktop token required"})
        store = _store()
        session = store.get(session_id)
        if session is None:
            raise SessionError(404, "Session not found", "not-found")
        if not token_matches(session, token):
            logger.warning("connect refused: wrong token", extra={"sessionId": session_id})
            return _reply(403, {"error": "invalid desktop token"})
        if session.get("status") != COMPLETED and is_expired(session):
            raise SessionError(400, "Session expired", "expired")
        store.attach_connection(session_id, connection_id)
    except SessionError as exc:
        logger.info("connect refused", extra={"reason": exc.reason})
        return _reply(exc.status, {"error": exc.message})
    logger.info("desktop connected", extra={"sessionId": session_id, "connectionId": connection_id})
    return _reply(200, {"message": "Connected"})


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
    return _reply(200, {"message": "Disconnected"})


def _notify(store: SessionStore, session: dict[str, Any], key: str) -> None:
    session_id = str(session["sessionId"])
    if session.get("status") != COMPLETED or session.get("uploadKey") != key or "notifiedAt" in session:
        return
    connection_id = session.get("wsConnectionId")
    if not connection_id:
        logger.info("no desktop connected; it catches up via GET /sessions", extra={"sessionId": session_id})
        return
    claimed_at = store.claim_notification(session_id, key, str(connection_id))
    if claimed_at is None:
        return  # another delivery notified, or the desktop changed connection meanwhile
    message = {
        "action": "UPLOAD_COMPLETED",
        "sessionId": session_id,
        "uploadKey": key,
        "timestamp": int(session.get("completedAt", now())),
    }
    try:
        post_to_connection(config.ws_api_endpoint(), str(connection_id), message)
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


@tracer.capture_method
def on_object_created(record: dict[str, Any]) -> None:
    bucket = record["s3"]["bucket"]["name"]
    # S3 event keys are URL-encoded with '+' for spaces.
    key = unquote_plus(record["s3"]["object"]["key"])
    if not str(record.get("eventName", "")).startswith("ObjectCreated:"):
        return _ignore("not an ObjectCreated event", key)
    session_id = uploads.session_id_from_key(key)
    if session_id is None:
        return _ignore("not an upload key", key)
    store = _store()
    session = store.get(session_id)
    if session is None:
        return _ignore("no such session", key)
    if session.get("uploadKey") != key:
        return _ignore("not the session's current uploadKey", key)

    if session.get("status") == UPLOAD_REQUESTED:
        stored = uploads.head(bucket, key)
        if stored is None:
            return _ignore("object no longer exists", key)
        reason = uploads.rejection_reason(stored, config.settings().max_upload_bytes)
        if reason:
            _count("UploadsRejected")
            logger.warning("upload refused", extra={"sessionId": session_id, "key": key, "reason": reason})
            return None
        completed = store.complete(session_id, key)
        if completed is not None:
            _count("UploadsCompleted")
            logger.info("upload completed", extra={"sessionId": session_id, "key": key})
            session = completed
        else:
            session = store.get(session_id) or session  # a concurrent delivery completed it
    elif session.get("status") != COMPLETED:
        return _ignore(f"session is {session.get('status')}", key)
    _notify(store, session, key)
    return None


def on_s3_records(records: list[dict[str, Any]]) -> dict[str, Any]:
    failed = 0
    for record in records:
        try:
            on_object_created(record)
        except Exception:
            failed += 1
            logger.exception("upload event failed", extra={"key": record.get("s3", {}).get("object", {})})
    if failed:
        # Every record was tried; the retry repeats only what is not done yet (all steps idempotent).
        raise RuntimeError(f"{failed} of {len(records)} S3 records failed")
    return {"processed": len(records)}


@logger.inject_lambda_context
@tracer.capture_lambda_handler
@metrics.log_metrics
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
    return _reply(400, {"error": "Unknown event type"})
