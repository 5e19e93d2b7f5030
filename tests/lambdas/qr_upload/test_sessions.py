"""The session store's condition expressions, each exercised where the handlers' own read-before-write
checks cannot reach it (a concurrent change between the read and the write)."""

from __future__ import annotations

import time

import pytest
from botocore.exceptions import ClientError

from lambdas.qr_upload.sessions import SessionError
from lambdas.qr_upload.store import SessionStore

from .helpers import TABLE, item, table

pytestmark = pytest.mark.usefixtures("aws")

KEY_A = "session-uploads/{sid}/image-" + "a" * 32
KEY_B = "session-uploads/{sid}/image-" + "b" * 32
ID_A, ID_B = "a" * 32, "b" * 32


def _complete(store: SessionStore, sid: str, key: str, upload_id: str, at: int | None = None) -> object:
    return store.complete(
        sid,
        key,
        upload_id,
        uploaded_at=int(time.time()) if at is None else at,
        version_id="v1",
        content_type="image/jpeg",
    )


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
        store.request_upload(sid, KEY_A.format(sid=sid), ID_A)
    assert (refused.value.status, refused.value.message) == (400, "Session expired")
    assert "uploadKey" not in item(sid)


def test_request_upload_refuses_a_session_completed_after_it_was_read(store: SessionStore) -> None:
    sid = store.create(1800).session_id
    _set(sid, status="COMPLETED", uploadKey=KEY_A.format(sid=sid))
    with pytest.raises(SessionError) as refused:
        store.request_upload(sid, KEY_B.format(sid=sid), ID_B)
    assert refused.value.message == "Session already completed"
    assert item(sid)["uploadKey"] == KEY_A.format(sid=sid)


def test_request_upload_of_a_missing_session_is_404(store: SessionStore) -> None:
    with pytest.raises(SessionError) as refused:
        store.request_upload("3f0c9b3e-8a6e-4d53-9a8e-2a4f6f1c7b21", "k", ID_A)
    assert refused.value.status == 404


def test_the_first_upload_of_any_grant_completes_and_only_once(store: SessionStore) -> None:
    sid = store.create(1800).session_id
    store.request_upload(sid, KEY_A.format(sid=sid), ID_A)
    store.request_upload(sid, KEY_B.format(sid=sid), ID_B)
    # The older grant's upload arrives first: it wins, although B's grant is newer.
    completed = _complete(store, sid, KEY_A.format(sid=sid), ID_A)
    assert isinstance(completed, dict) and completed["status"] == "COMPLETED"
    assert completed["uploadKey"] == KEY_A.format(sid=sid) and completed["uploadVersionId"] == "v1"
    assert _complete(store, sid, KEY_B.format(sid=sid), ID_B) is None
    assert _complete(store, sid, KEY_A.format(sid=sid), ID_A) is None
    assert item(sid)["uploadKey"] == KEY_A.format(sid=sid)


def test_complete_refuses_a_key_the_session_never_granted(store: SessionStore) -> None:
    sid = store.create(1800).session_id
    store.request_upload(sid, KEY_A.format(sid=sid), ID_A)
    assert _complete(store, sid, KEY_B.format(sid=sid), ID_B) is None
    assert item(sid)["status"] == "UPLOAD_REQUESTED"


def test_complete_refuses_an_upload_made_at_or_after_expiry(store: SessionStore) -> None:
    sid = store.create(1800).session_id
    store.request_upload(sid, KEY_A.format(sid=sid), ID_A)
    expires_at = int(item(sid)["expiresAt"])
    assert _complete(store, sid, KEY_A.format(sid=sid), ID_A, at=expires_at) is None
    assert item(sid)["status"] == "UPLOAD_REQUESTED"
    assert _complete(store, sid, KEY_A.format(sid=sid), ID_A, at=expires_at - 1) is not None


def test_notification_claim_is_single_and_tied_to_the_connection(store: SessionStore) -> None:
    sid = store.create(1800).session_id
    key = KEY_A.format(sid=sid)
    store.request_upload(sid, key, ID_A)
    store.attach_connection(sid, "conn-1=")
    assert store.claim_notification(sid, key, "conn-1=") is None  # not completed yet
    _complete(store, sid, key, ID_A)
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
