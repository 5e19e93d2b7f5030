"""The session store's condition expressions, each exercised where the handlers' own read-before-write
checks cannot reach it (a concurrent change between the read and the write)."""

from __future__ import annotations

import time

import pytest
from botocore.exceptions import ClientError

from lambdas.qr_upload.sessions import SessionError, SessionStore

from .helpers import TABLE, item, table

pytestmark = pytest.mark.usefixtures("aws")

KEY_A = "session-uploads/{sid}/image-" + "a" * 32
KEY_B = "session-uploads/{sid}/image-" + "b" * 32


@pytest.fixture
def store() -> SessionStore:
    return SessionStore(TABLE)


def _set(session_id: str, **values: object) -> None:
    names = {f"#{k}": k for k in values}
    table().update_item(
        Key={"sessionId": session_id},
        UpdateExpression="SET " + ", ".join(f"#{k} = :{k}" for k in values),
        ExpressionAttributeNames=names,
        ExpressionAttributeValues={f":{k}": v for k, v in values.items()},
    )


def test_request_upload_refuses_a_session_that_expired_after_it_was_read(store: SessionStore) -> None:
    sid = store.create(1800).session_id
    _set(sid, expiresAt=int(time.time()) - 1)
    with pytest.raises(SessionError) as refused:
        store.request_upload(sid, KEY_A.format(sid=sid))
    assert (refused.value.status, refused.value.message) == (400, "Session expired")
    assert "uploadKey" not in item(sid)


def test_request_upload_refuses_a_session_completed_after_it_was_read(store: SessionStore) -> None:
    sid = store.create(1800).session_id
    _set(sid, status="COMPLETED", uploadKey=KEY_A.format(sid=sid))
    with pytest.raises(SessionError) as refused:
        store.request_upload(sid, KEY_B.format(sid=sid))
    assert refused.value.message == "Session already completed"
    assert item(sid)["uploadKey"] == KEY_A.format(sid=sid)


def test_request_upload_of_a_missing_session_is_404(store: SessionStore) -> None:
    with pytest.raises(SessionError) as refused:
        store.request_upload("3f0c9b3e-8a6e-4d53-9a8e-2a4f6f1c7b21", "k")
    assert refused.value.status == 404


def test_complete_only_for_the_current_key_and_only_once(store: SessionStore) -> None:
    sid = store.create(1800).session_id
    store.request_upload(sid, KEY_A.format(sid=sid))
    store.request_upload(sid, KEY_B.format(sid=sid))
    assert store.complete(sid, KEY_A.format(sid=sid)) is None
    assert item(sid)["status"] == "UPLOAD_REQUESTED"
    completed = store.complete(sid, KEY_B.format(sid=sid))
    assert completed is not None and completed["status"] == "COMPLETED"
    assert store.complete(sid, KEY_B.format(sid=sid)) is None


def test_notification_claim_is_single_and_tied_to_the_connection(store: SessionStore) -> None:
    sid = store.create(1800).session_id
    key = KEY_A.format(sid=sid)
    store.request_upload(sid, key)
    store.attach_connection(sid, "conn-1=")
    assert store.claim_notification(sid, key, "conn-1=") is None  # not completed yet
    store.complete(sid, key)
    assert store.claim_notification(sid, key, "other=") is None  # the desktop moved on
    claimed = store.claim_notification(sid, key, "conn-1=")
    assert claimed is not None
    assert store.claim_notification(sid, key, "conn-1=") is None
    store.release_notification(sid, claimed)
    assert store.claim_notification(sid, key, "conn-1=") is not None


def test_detach_only_clears_the_same_connection(store: SessionStore) -> None:
    sid = store.create(1800).session_id
    store.attach_connection(sid, "new=")
    assert store.detach_connection(sid, "old=") is False
    assert item(sid)["wsConnectionId"] == "new="
    assert store.detach_connection(sid, "new=") is True
    assert "wsConnectionId" not in item(sid)


def test_attach_to_a_missing_session_fails(store: SessionStore) -> None:
    with pytest.raises(ClientError):
        store.attach_connection("3f0c9b3e-8a6e-4d53-9a8e-2a4f6f1c7b21", "conn=")


def test_sessions_for_connection_uses_the_index(store: SessionStore) -> None:
    first, second = store.create(1800).session_id, store.create(1800).session_id
    store.attach_connection(first, "conn-x=")
    store.attach_connection(second, "conn-y=")
    assert store.sessions_for_connection("conn-x=") == [first]
    assert store.sessions_for_connection("nobody=") == []
