"""The sessions table: one item per session (its attributes and state machine are in
sessions.py), every state change guarded by a condition expression, look-ups by key or GSI."""

from __future__ import annotations

from typing import Any

from botocore.exceptions import ClientError

from lambdas.common.dynamo_table import Table
from lambdas.qr_upload.names import CONNECTION_INDEX, SESSION_ID
from lambdas.qr_upload.sessions import (
    AWAITING_SCAN,
    COMPLETED,
    UPLOAD_REQUESTED,
    NewSession,
    SessionError,
    check_usable,
    new_session,
    now,
)


def _conditional_failed(exc: ClientError) -> bool:
    return exc.response.get("Error", {}).get("Code") == "ConditionalCheckFailedException"


class SessionStore:
    def __init__(self, table_name: str) -> None:
        self._table = Table(table_name)

    def create(self, ttl_seconds: int) -> NewSession:
        created = now()
        session = new_session(created, ttl_seconds)
        self._table.put_item(
            Item=session.item(created),
            # A uuid4 collision is practically impossible; the condition makes it harmless anyway.
            ConditionExpression="attribute_not_exists(sessionId)",
        )
        return session

    def _update_if(self, session_id: str, **update: Any) -> dict[str, Any] | None:
        """One conditional update: the response, or None when the condition did not hold."""
        try:
            result: dict[str, Any] = self._table.update_item(Key={SESSION_ID: session_id}, **update)
        except ClientError as exc:
            if _conditional_failed(exc):
                return None
            raise
        return result

    def get(self, session_id: str) -> dict[str, Any] | None:
        item = self._table.get_item(Key={SESSION_ID: session_id}, ConsistentRead=True).get("Item")
        return dict(item) if item else None

    def get_usable(self, session_id: str) -> dict[str, Any]:
        """The session for a phone (sessions.check_usable)."""
        return check_usable(self.get(session_id))

    def request_upload(self, session_id: str, upload_key: str, upload_id: str) -> None:
        """Record a grant (every grant issued may complete the session: the first upload wins)."""
        granted = self._update_if(
            session_id,
            UpdateExpression="SET #s = :requested, uploadKey = :key, uploadRequestedAt = :now, grants.#g = :now",
            ConditionExpression="attribute_exists(sessionId) AND #s IN (:awaiting, :requested) AND expiresAt > :now",
            ExpressionAttributeNames={"#s": "status", "#g": upload_id},
            ExpressionAttributeValues={
                ":requested": UPLOAD_REQUESTED,
                ":awaiting": AWAITING_SCAN,
                ":key": upload_key,
                ":now": now(),
            },
        )
        if granted is None:
            # Lost a race with completion or expiry: answer with what the session is now.
            self.get_usable(session_id)
            raise SessionError(400, "Session no longer accepts uploads", "expired")

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
        result = self._update_if(
            session_id,
            UpdateExpression=update,
            ConditionExpression="#s = :requested AND attribute_exists(grants.#g) AND expiresAt > :at",
            ExpressionAttributeNames=names,
            ExpressionAttributeValues=values,
            ReturnValues="ALL_NEW",
        )
        return None if result is None else dict(result["Attributes"])

    def refuse_upload(self, session_id: str, upload_id: str, reason: str) -> None:
        """Record why an upload was refused (the phone reads it); the session stays open."""
        self._update_if(
            session_id,
            UpdateExpression="SET refused.#g = :reason",
            ConditionExpression="attribute_exists(grants.#g)",
            ExpressionAttributeNames={"#g": upload_id},
            ExpressionAttributeValues={":reason": reason},
        )

    def claim_notification(self, session_id: str, upload_key: str, connection_id: str) -> int | None:
        """Reserve the single UPLOAD_COMPLETED notification; None if another delivery has it."""
        claimed_at = now()
        claimed = self._update_if(
            session_id,
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
        return None if claimed is None else claimed_at

    def release_notification(self, session_id: str, claimed_at: int) -> None:
        """Undo a claim whose delivery failed, so Lambda's retry can deliver it."""
        self._update_if(
            session_id,
            UpdateExpression="REMOVE notifiedAt",
            ConditionExpression="notifiedAt = :claimed",
            ExpressionAttributeValues={":claimed": claimed_at},
        )

    def attach_connection(self, session_id: str, connection_id: str) -> None:
        """The newest desktop connection wins; a reconnect replaces the previous id."""
        self._table.update_item(
            Key={SESSION_ID: session_id},
            UpdateExpression="SET wsConnectionId = :cid",
            ConditionExpression="attribute_exists(sessionId)",
            ExpressionAttributeValues={":cid": connection_id},
        )

    def detach_connection(self, session_id: str, connection_id: str) -> bool:
        """Clear wsConnectionId only if it still holds this id (a newer connection may have replaced it)."""
        cleared = self._update_if(
            session_id,
            UpdateExpression="REMOVE wsConnectionId",
            ConditionExpression="wsConnectionId = :cid",
            ExpressionAttributeValues={":cid": connection_id},
        )
        return cleared is not None

    def sessions_for_connection(self, connection_id: str) -> list[str]:
        """Session ids holding this connection, via the GSI (eventually consistent, never a Scan)."""
        result = self._table.query(
            IndexName=CONNECTION_INDEX,
            KeyConditionExpression="wsConnectionId = :cid",
            ExpressionAttributeValues={":cid": connection_id},
            ProjectionExpression="sessionId",
        )
        return [str(item["sessionId"]) for item in result.get("Items", [])]
