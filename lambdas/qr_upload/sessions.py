"""The sessions table: one item per session, every state change guarded by a condition expression.

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
from dataclasses import dataclass
from typing import Any

from botocore.exceptions import ClientError

from lambdas.common.aws import resource
from lambdas.qr_upload.names import CONNECTION_INDEX

AWAITING_SCAN = "AWAITING_SCAN"
UPLOAD_REQUESTED = "UPLOAD_REQUESTED"
COMPLETED = "COMPLETED"

_UUID = re.compile(r"^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$")


class SessionError(Exception):
    """A request about a session that cannot be served; `status` follows the seed's table and
    `reason` (missing, invalid, not-found, expired, completed) lets the pages word it."""

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
    return (now() if at is None else at) >= int(session.get("expiresAt", 0))


def _conditional_failed(exc: ClientError) -> bool:
    return exc.response.get("Error", {}).get("Code") == "ConditionalCheckFailedException"


@dataclass(frozen=True)
class NewSession:
    session_id: str
    expires_at: int
    desktop_token: str


class SessionStore:
    def __init__(self, table_name: str) -> None:
        self._table = resource("dynamodb").Table(table_name)

    def create(self, ttl_seconds: int) -> NewSession:
        created = now()
        session = NewSession(str(uuid.uuid4()), created + ttl_seconds, secrets.token_urlsafe(32))
        self._table.put_item(
            Item={
                "sessionId": session.session_id,
                "status": AWAITING_SCAN,
                "createdAt": created,
                "expiresAt": session.expires_at,
                "desktopTokenHash": hash_token(session.desktop_token),
                "grants": {},
                "refused": {},
            },
            # A uuid4 collision is practically impossible; the condition makes it harmless anyway.
            ConditionExpression="attribute_not_exists(sessionId)",
        )
        return session

    def get(self, session_id: str) -> dict[str, Any] | None:
        item = self._table.get_item(Key={"sessionId": session_id}, ConsistentRead=True).get("Item")
        return dict(item) if item else None

    def get_usable(self, session_id: str) -> dict[str, Any]:
        """The session for a phone: exists, not expired, not completed (seed statuses)."""
        session = self.get(session_id)
        if session is None:
            raise SessionError(404, "Session not found", "not-found")
        if session.get("status") == COMPLETED:
            raise SessionError(400, "Session already completed", "completed")
        if is_expired(session):
            raise SessionError(400, "Session expired", "expired")
        return session

    def request_upload(self, session_id: str, upload_key: str, upload_id: str) -> None:
        """Record a grant (every grant issued may complete the session: the first upload wins)."""
        at = now()
        try:
            self._table.update_item(
                Key={"sessionId": session_id},
                UpdateExpression="SET #s = :requested, uploadKey = :key, uploadRequestedAt = :now, grants.#g = :now",
                ConditionExpression="attribute_exists(sessionId) AND #s IN (:awaiting, :requested) "
                "AND expiresAt > :now",
                ExpressionAttributeNames={"#s": "status", "#g": upload_id},
                ExpressionAttributeValues={
                    ":requested": UPLOAD_REQUESTED,
                    ":awaiting": AWAITING_SCAN,
                    ":key": upload_key,
                    ":now": at,
                },
            )
        except ClientError as exc:
            if not _conditional_failed(exc):
                raise
            # Lost a race with completion or expiry: answer with what the session is now.
            self.get_usable(session_id)
            raise SessionError(400, "Session no longer accepts uploads", "expired") from None

    def complete(
        self,
        session_id: str,
        upload_key: str,
        upload_id: str,
        *,
        uploaded_at: int,
        version_id: str | None,
        content_type: str,
        rendition_key: str | None = None,
    ) -> dict[str, Any] | None:
        """COMPLETED by this upload, if it is the first to get here, of a grant of this session,
        and was made before the session expired; None otherwise."""
        names = {"#s": "status", "#g": upload_id}
        values: dict[str, Any] = {
            ":completed": COMPLETED,
            ":requested": UPLOAD_REQUESTED,
            ":key": upload_key,
            ":now": now(),
            ":at": uploaded_at,
            ":type": content_type,
        }
        update = "SET #s = :completed, completedAt = :now, uploadKey = :key, contentType = :type"
        if version_id:
            update += ", uploadVersionId = :version"
            values[":version"] = version_id
        if rendition_key:
            update += ", renditionKey = :rendition"
            values[":rendition"] = rendition_key
        try:
            result = self._table.update_item(
                Key={"sessionId": session_id},
                UpdateExpression=update,
                ConditionExpression="#s = :requested AND attribute_exists(grants.#g) AND expiresAt > :at",
                ExpressionAttributeNames=names,
                ExpressionAttributeValues=values,
                ReturnValues="ALL_NEW",
            )
        except ClientError as exc:
            if _conditional_failed(exc):
                return None
            raise
        return dict(result["Attributes"])

    def refuse_upload(self, session_id: str, upload_id: str, reason: str) -> None:
        """Record why an upload was refused (the phone reads it); the session stays open."""
        try:
            self._table.update_item(
                Key={"sessionId": session_id},
                UpdateExpression="SET refused.#g = :reason",
                ConditionExpression="attribute_exists(grants.#g)",
                ExpressionAttributeNames={"#g": upload_id},
                ExpressionAttributeValues={":reason": reason},
            )
        except ClientError as exc:
            if not _conditional_failed(exc):
                raise

    def claim_notification(self, session_id: str, upload_key: str, connection_id: str) -> int | None:
        """Reserve the single UPLOAD_COMPLETED notification; None if another delivery has it."""
        claimed_at = now()
        try:
            self._table.update_item(
                Key={"sessionId": session_id},
                UpdateExpression="SET notifiedAt = :now",
                ConditionExpression="#s = :completed AND uploadKey = :key AND wsConnectionId = :cid "
                "AND attribute_not_exists(notifiedAt)",
                ExpressionAttributeNames={"#s": "status"},
                ExpressionAttributeValues={
                    ":completed": COMPLETED,
                    ":key": upload_key,
                    ":cid": connection_id,
                    ":now": claimed_at,
                },
            )
        except ClientError as exc:
            if _conditional_failed(exc):
                return None
            raise
        return claimed_at

    def release_notification(self, session_id: str, claimed_at: int) -> None:
        """Undo a claim whose delivery failed, so Lambda's retry can deliver it."""
        try:
            self._table.update_item(
                Key={"sessionId": session_id},
                UpdateExpression="REMOVE notifiedAt",
                ConditionExpression="notifiedAt = :claimed",
                ExpressionAttributeValues={":claimed": claimed_at},
            )
        except ClientError as exc:
            if not _conditional_failed(exc):
                raise

    def attach_connection(self, session_id: str, connection_id: str) -> None:
        """The newest desktop connection wins; a reconnect replaces the previous id."""
        self._table.update_item(
            Key={"sessionId": session_id},
            UpdateExpression="SET wsConnectionId = :cid",
            ConditionExpression="attribute_exists(sessionId)",
            ExpressionAttributeValues={":cid": connection_id},
        )

    def detach_connection(self, session_id: str, connection_id: str) -> bool:
        """Clear wsConnectionId only if it still holds this id (a newer connection may have replaced it)."""
        try:
            self._table.update_item(
                Key={"sessionId": session_id},
                UpdateExpression="REMOVE wsConnectionId",
                ConditionExpression="wsConnectionId = :cid",
                ExpressionAttributeValues={":cid": connection_id},
            )
        except ClientError as exc:
            if _conditional_failed(exc):
                return False
            raise
        return True

    def sessions_for_connection(self, connection_id: str) -> list[str]:
        """Session ids holding this connection, via the GSI (eventually consistent, never a Scan)."""
        result = self._table.query(
            IndexName=CONNECTION_INDEX,
            KeyConditionExpression="wsConnectionId = :cid",
            ExpressionAttributeValues={":cid": connection_id},
            ProjectionExpression="sessionId",
        )
        return [str(item["sessionId"]) for item in result.get("Items", [])]
