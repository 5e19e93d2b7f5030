from __future__ import annotations

import pytest

from lambdas.common import aws
from lambdas.tunnel import connect, disconnect
from lambdas.tunnel.store import PendingStore
from tests.lambdas.tunnel.support import CONNECTIONS, PENDING, connect_event, event, new_token

pytestmark = pytest.mark.usefixtures("tunnel_env")


def test_disconnect_removes_connection_and_fails_only_its_pending_requests(context) -> None:
    assert connect.handler(connect_event("c1", new_token()), context)["statusCode"] == 200
    pending = PendingStore(PENDING)
    pending.put("r1", "c1", "a1")
    pending.put("r2", "c1", "a2")
    pending.put("r3", "c2", "a3")
    pending.put("r4", "c1", "a4")
    pending.finish("r4", "completed", response_data="{}")

    evt = event("disconnect")
    evt["requestContext"]["connectionId"] = "c1"
    assert disconnect.handler(evt, context)["statusCode"] == 200

    item = aws.client("dynamodb").get_item(TableName=CONNECTIONS, Key={"connectionId": {"S": "c1"}})
    assert "Item" not in item
    assert [(pending.get(r) or {}).get("status") for r in ("r1", "r2", "r3", "r4")] == [
        "failed",
        "failed",
        "pending",
        "completed",
    ]
    assert (pending.get("r1") or {}).get("errorMessage") == "agent disconnected"


def test_disconnect_of_unknown_connection_is_harmless(context) -> None:
    evt = event("disconnect")
    evt["requestContext"]["connectionId"] = "never-seen"
    assert disconnect.handler(evt, context)["statusCode"] == 200
