"""A session's rules, pure: what a request or an upload may do to a session, decided from the
session's item alone (the DynamoDB side is store.py; handlers wire the two).

Item: sessionId (S, key), status, createdAt, expiresAt (TTL), desktopTokenHash, `grants` (map:
upload id -> issuedAt, one per upload URL issued), `refused` (map: upload id -> why its bytes
were refused), and once set uploadKey (the newest key issued; once COMPLETED, the key that
completed), uploadVersionId (the S3 version that completed: later writes to the same key
change nothing the desktop sees), contentType (the type read from the bytes), renditionKey
(a JPEG the desktop can display, for HEIC/HEIF), uploadRequestedAt, completedAt, notifiedAt,
wsConnectionId. wsConnectionId is absent
rather than null when no desktop is connected: it is the key of the `wsConnectionId-index` GSI,
and a GSI key attribute must be a string when present.

State machine: AWAITING_SCAN -> UPLOAD_REQUESTED (more grants may be issued) -> COMPLETED by the
first upload of any grant whose bytes are an accepted photo and that arrived before expiresAt;
every other upload then reads as superseded.
TTL deletes items late (up to days), so expiry is checked here against `expiresAt`.
"""

from __future__ import annotations

import hashlib
import hmac
import re
import secrets
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from lambdas.qr_upload import names

AWAITING_SCAN = "AWAITING_SCAN"
UPLOAD_REQUESTED = "UPLOAD_REQUESTED"
COMPLETED = "COMPLETED"

_UUID = re.compile(r"^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$")


class SessionError(Exception):
    """A request about a session that cannot be served; `status` follows the seed's table and
    `reason` (missing, invalid, not-found, expired, completed; unauthorized, forbidden for a
    desktop's token) lets the pages word it."""

    def __init__(self, status: int, message: str, reason: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.reason = reason


def now() -> int:
    return int(time.time())


def is_valid_session_id(session_id: str) -> bool:
    # Canonical lower-case UUIDs only: the id is also part of S3 keys and URLs.
    return bool(_UUID.match(session_id))


def check_session_id(session_id: str | None) -> str:
    if not session_id:
        raise SessionError(400, "sessionId is required", "missing")
    if not is_valid_session_id(session_id):
        raise SessionError(404, "Invalid sessionId format", "invalid")
    return session_id


def hash_token(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def token_matches(session: dict[str, Any], token: str | None) -> bool:
    stored = session.get("desktopTokenHash")
    if not token or not isinstance(stored, str):
        return False
    return hmac.compare_digest(stored, hash_token(token))


def is_expired(session: dict[str, Any], at: int | None = None) -> bool:
    return (now() if at is None else at) >= int(session.get(names.EXPIRES_AT, 0))


@dataclass(frozen=True)
class NewSession:
    session_id: str
    expires_at: int
    desktop_token: str

    def item(self, created_at: int) -> dict[str, Any]:
        """The session's first item: only the token's hash is stored, never the token."""
        return {
            names.SESSION_ID: self.session_id,
            "status": AWAITING_SCAN,
            "createdAt": created_at,
            names.EXPIRES_AT: self.expires_at,
            "desktopTokenHash": hash_token(self.desktop_token),
            "grants": {},
            "refused": {},
        }


def new_session(created_at: int, ttl_seconds: int) -> NewSession:
    return NewSession(str(uuid.uuid4()), created_at + ttl_seconds, secrets.token_urlsafe(32))


def check_usable(session: dict[str, Any] | None) -> dict[str, Any]:
    """The session for a phone: exists, not expired, not completed (seed statuses)."""
    if session is None:
        raise SessionError(404, "Session not found", "not-found")
    if session.get("status") == COMPLETED:
        raise SessionError(400, "Session already completed", "completed")
    if is_expired(session):
        raise SessionError(400, "Session expired", "expired")
    return session


def desktop_session(
    session_id: str | None, token: str | None, read: Callable[[str], dict[str, Any] | None]
) -> dict[str, Any]:
    """The session for its desktop (GET /sessions/{id} and the WebSocket's $connect): a valid id
    (400/404), a token (401, checked before any read), an existing session (404) whose token hash
    matches (403), not expired unless it already COMPLETED (400): a completed session stays
    viewable until TTL removes it, an unfinished one ends at expiresAt."""
    session_id = check_session_id(session_id)
    if not token:
        raise SessionError(401, "desktop token required", "unauthorized")
    session = read(session_id)
    if session is None:
        raise SessionError(404, "Session not found", "not-found")
    if not token_matches(session, token):
        raise SessionError(403, "invalid desktop token", "forbidden")
    if session.get("status") != COMPLETED and is_expired(session):
        raise SessionError(400, "Session expired", "expired")
    return session


def upload_state(session: dict[str, Any], upload_key: str, upload_id: str) -> dict[str, Any]:
    """What became of one upload, for the phone that made it: pending, completed, refused (with
    the reason; the phone may send another photo), superseded (another device sent one first),
    or expired."""
    state: dict[str, Any] = {}
    if session.get("status") == COMPLETED:
        mine = session.get("uploadKey") == upload_key
        state["state"] = "completed" if mine else "superseded"
        if not mine:
            state["message"] = "Another device sent a photo first."
    elif upload_id in (session.get("refused") or {}):
        state["state"] = "refused"
        state["message"] = str(session["refused"][upload_id])
    elif is_expired(session):
        state["state"] = "expired"
        state["message"] = "This session has expired. Start again on your computer."
    else:
        state["state"] = "pending"
    return state


# --- an S3 upload of a grant ----------------------------------------------------------------------


def ignore_reason(
    session: dict[str, Any] | None, key: str, upload_id: str, version_id: str | None, uploaded_at: int
) -> str | None:
    """Why an uploaded object changes nothing, or None when it is this session's to act on: its
    bytes are worth reading, or, once COMPLETED, it is another delivery of the completing upload."""
    if session is None:
        return "no such session"
    if upload_id not in (session.get("grants") or {}):
        return "not a grant of this session"
    if session.get("status") == COMPLETED:
        if session.get("uploadKey") != key:
            return "another upload completed the session first"
        if version_id and session.get("uploadVersionId") not in (None, version_id):
            # A second POST with the same grant: a new version the desktop is never shown.
            return "a later write to the key that completed the session"
        return None
    if session.get("status") != UPLOAD_REQUESTED:
        return f"session is {session.get('status')}"
    if uploaded_at >= int(session.get(names.EXPIRES_AT, 0)):
        return "uploaded after the session expired"
    return None


def needs_notification(session: dict[str, Any], key: str) -> bool:
    """Completed by this key and not yet notified (the claim in the store makes it exactly once)."""
    return session.get("status") == COMPLETED and session.get("uploadKey") == key and "notifiedAt" not in session


def completion_message(session: dict[str, Any], key: str) -> dict[str, Any]:
    """The desktop's UPLOAD_COMPLETED message."""
    return {
        "action": "UPLOAD_COMPLETED",
        "sessionId": str(session[names.SESSION_ID]),
        "uploadKey": key,
        "timestamp": int(session.get("completedAt", now())),
    }
