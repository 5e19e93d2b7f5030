"""HTTP API (payload 2.0) of the QR-upload handoff: `qr-upload-http-api-{env}`.

Routes
- `POST /sessions`: optional JSON body `{"qr": true}`. Returns sessionId, expiresAt,
  desktopToken (shown once; only its SHA-256 is stored), uploadPageUrl (phone page on this API),
  websocketUrl (wss://, or ws:// locally), maxBytes, and with `qr: true` also `qrSvg`: an SVG
  document of the QR code encoding uploadPageUrl. segno is imported only then.
- `GET /upload-url?sessionId=&contentType=`: presigned POST for the phone. contentType is the
  photo's type, one of image/jpeg, png, webp, gif, heic, heif (default image/jpeg); the policy
  pins Content-Type to exactly that and the form expires with the session at the latest.
  Returns uploadUrl, uploadKey, fields, maxBytes, expiresIn.
- `GET /upload-status?sessionId=&uploadKey=`: what became of that upload (pending, completed,
  refused with the reason, superseded by another device's, expired), polled by the phone page.
- `GET /sessions/{sessionId}` with header `Authorization: Bearer <desktopToken>`: status,
  expiresAt, uploadKey, completedAt and, when COMPLETED, `imageUrl`: a short-lived CloudFront
  signed URL, served with nosniff and as a download (photo_links.py).
- `GET /`: desktop page. `GET /upload?sessionId=`: phone page (see pages.py for element ids).

Errors are JSON `{"error": "..."}`: missing sessionId 400, malformed or unknown 404, expired 400,
completed 400 (the seed's table); missing token 401, wrong token 403; unknown route 404.
"""

from __future__ import annotations

import binascii
from typing import Any
from urllib.parse import quote, urlsplit

from aws_lambda_powertools import Logger, Metrics
from aws_lambda_powertools.event_handler import Response
from aws_lambda_powertools.event_handler.exceptions import BadRequestError
from aws_lambda_powertools.logging import correlation_paths
from aws_lambda_powertools.metrics import MetricUnit
from aws_lambda_powertools.utilities.typing import LambdaContext

from lambdas.common.entry import entry
from lambdas.common.http import HttpError, error_response, json_body, json_response, make_resolver
from lambdas.common.tracing import tracer
from lambdas.qr_upload import pages, photo_links, uploads
from lambdas.qr_upload.sessions import (
    COMPLETED,
    SessionError,
    check_session_id,
    desktop_session,
    now,
    upload_state,
)
from lambdas.qr_upload.settings import settings
from lambdas.qr_upload.store import SessionStore

logger = Logger()
metrics = Metrics()
app = make_resolver(logger)


@app.exception_handler(SessionError)
def _session_error(exc: SessionError) -> Response:
    return error_response(exc.status, exc.message)


def _store() -> SessionStore:
    return SessionStore(settings().table_name)


def _api_base() -> str:
    """Path prefix of this API: "" on the $default stage, "/{stage}" on a named one."""
    stage = app.current_event.request_context.stage
    return "" if not stage or stage == "$default" else f"/{quote(stage)}"


def _origin() -> str:
    # API Gateway sets X-Forwarded-Proto (https); the local runtime sets http.
    proto = (app.current_event.headers or {}).get("x-forwarded-proto", "https").split(",")[0].strip()
    scheme = proto if proto in ("http", "https") else "https"
    return f"{scheme}://{app.current_event.request_context.domain_name}"


def _upload_page_url(session_id: str) -> str:
    return f"{_origin()}{_api_base()}/upload?sessionId={session_id}"


def _origin_of(url: str) -> str:
    parts = urlsplit(url)
    return f"{parts.scheme}://{parts.netloc}"


def _query(name: str) -> str | None:
    value = (app.current_event.query_string_parameters or {}).get(name)
    return value.strip() if isinstance(value, str) else None


@app.post("/sessions")
@tracer.capture_method
def create_session() -> Response:
    try:
        body = json_body(app)
    except (UnicodeDecodeError, binascii.Error):
        # API Gateway base64-encodes bodies that are not text; Powertools decodes them as UTF-8
        # (and the base64 itself) before json_body's own error handling sees anything.
        raise BadRequestError("request body is not valid JSON") from None
    want_qr = body.get("qr", False)
    if not isinstance(want_qr, bool):
        raise HttpError(400, "qr must be a boolean")
    current = settings()
    session = _store().create(current.session_ttl_seconds)
    metrics.add_metric(name="SessionsCreated", unit=MetricUnit.Count, value=1)
    logger.info("session created", extra={"sessionId": session.session_id})
    payload: dict[str, Any] = {
        "sessionId": session.session_id,
        "expiresAt": session.expires_at,
        "desktopToken": session.desktop_token,
        "uploadPageUrl": _upload_page_url(session.session_id),
        "maxBytes": current.max_upload_bytes,
    }
    if current.ws_api_endpoint:
        payload["websocketUrl"] = current.websocket_url
    if want_qr:
        from lambdas.qr_upload.qr import qr_svg

        payload["qrSvg"] = qr_svg(payload["uploadPageUrl"])
    return json_response(200, payload)


@app.get("/upload-url")
@tracer.capture_method
def upload_url() -> Response:
    session_id = check_session_id(_query("sessionId"))
    content_type = (_query("contentType") or uploads.DEFAULT_CONTENT_TYPE).lower()
    if not uploads.is_accepted_content_type(content_type):
        raise HttpError(400, f"contentType must be one of: {', '.join(uploads.ACCEPTED_TYPES)}")
    current = settings()
    store = _store()
    session = store.get_usable(session_id)
    key = uploads.new_upload_key(session_id)
    parsed = uploads.parse_key(key)
    assert parsed is not None
    # Record the grant first: a form for a key the session does not hold would never complete.
    store.request_upload(session_id, key, parsed[1])
    # The form expires with the session at the latest, so S3 itself refuses a late upload.
    expires_in = max(1, min(current.upload_url_ttl_seconds, int(session["expiresAt"]) - now()))
    post = uploads.presigned_post(current.upload_bucket(), key, content_type, current.max_upload_bytes, expires_in)
    metrics.add_metric(name="UploadUrlsIssued", unit=MetricUnit.Count, value=1)
    logger.info("upload url issued", extra={"sessionId": session_id, "uploadKey": key})
    return json_response(
        200,
        {
            "uploadUrl": post["url"],
            "uploadKey": key,
            "fields": post["fields"],
            "maxBytes": current.max_upload_bytes,
            "expiresIn": expires_in,
        },
    )


@app.get("/upload-status")
@tracer.capture_method
def upload_status() -> Response:
    """What became of one upload (sessions.upload_state), for the phone that made it. The upload
    key is the capability: only the phone holding the grant knows it."""
    session_id = check_session_id(_query("sessionId"))
    upload_key = _query("uploadKey") or ""
    parsed = uploads.parse_key(upload_key)
    if parsed is None or parsed[0] != session_id:
        raise HttpError(404, "Upload not found")
    upload_id = parsed[1]
    session = _store().get(session_id)
    if session is None or upload_id not in (session.get("grants") or {}):
        raise HttpError(404, "Upload not found")
    return json_response(200, {"sessionId": session_id, **upload_state(session, upload_key, upload_id)})


def _bearer_token() -> str | None:
    value = (app.current_event.headers or {}).get("authorization", "")
    scheme, _, token = value.partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        return None
    return token.strip()


@app.get("/sessions/<session_id>")
@tracer.capture_method
def session_status(session_id: str) -> Response:
    session = desktop_session(session_id, _bearer_token(), _store().get)
    status = session["status"]
    payload: dict[str, Any] = {
        "sessionId": session_id,
        "status": status,
        "expiresAt": int(session["expiresAt"]),
        "uploadKey": session.get("uploadKey"),
    }
    if status == COMPLETED:
        payload["completedAt"] = int(session["completedAt"])
        payload["imageUrl"] = _image_url(session)
    return json_response(200, payload)


def _image_url(session: dict[str, Any]) -> str:
    """A signed link (photo_links.py) to the pinned version, or to the JPEG rendition, typed from
    the bytes, served with nosniff and as a download."""
    current = settings()
    if session.get("renditionKey"):
        key, version, content_type = str(session["renditionKey"]), None, "image/jpeg"
    else:
        key, version = str(session["uploadKey"]), session.get("uploadVersionId")
        content_type = str(session.get("contentType") or uploads.DEFAULT_CONTENT_TYPE)
    return photo_links.signed_url(
        current.photo_links_url,
        current.photo_key_pair_id,
        current.photo_signing_secret_arn,
        key,
        content_type=content_type,
        fmt=uploads.ACCEPTED_TYPES.get(content_type, "JPEG"),
        expires_in=current.download_url_ttl_seconds,
        version_id=str(version) if version else None,
    )


@app.get("/")
def desktop_page() -> Response:
    # Both raise (a logged 500) when unset: the page is useless without the socket and the photo's origin.
    settings().websocket_endpoint()
    return pages.desktop_page(
        _api_base(),
        _origin_of(settings().websocket_url),
        _origin_of(settings().photo_links()),
    )


@app.get("/upload")
def phone_page() -> Response:
    session_id = _query("sessionId") or ""
    state = "ready"
    try:
        _store().get_usable(check_session_id(session_id))
    except SessionError as exc:
        state = exc.reason if exc.reason in ("expired", "completed") else "not-found"
    return pages.phone_page(
        _api_base(),
        session_id if state == "ready" else "",
        settings().max_upload_bytes,
        state,
        uploads.s3_origin(settings().upload_bucket()),
    )


@entry(logger, metrics, correlation_id_path=correlation_paths.API_GATEWAY_HTTP)
def handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    return app.resolve(event, context)
