from __future__ import annotations

import pytest

from lambdas.common import aws
from lambdas.tunnel import connect, response
from lambdas.tunnel import protocol as p
from lambdas.tunnel.store import PendingStore
from tests.lambdas.tunnel.support import CONNECTIONS, PENDING, connect_event, new_token, send

pytestmark = pytest.mark.usefixtures("tunnel_env")


def _connected(context, connection_id: str = "c1", subdomain: str | None = "demo") -> None:
    assert connect.handler(connect_event(connection_id, new_token(), subdomain), context)["statusCode"] == 200


def _status(request_id: str) -> dict:
    return PendingStore(PENDING).get(request_id) or {}


def test_ready_makes_connection_routable_and_returns_public_url(context, gateway) -> None:
    _connected(context)
    assert send(response.handler, "c1", p.encode(p.Ready()), context)["statusCode"] == 200
    item = aws.client("dynamodb").get_item(TableName=CONNECTIONS, Key={"connectionId": {"S": "c1"}})["Item"]
    assert item["publicSubdomain"]["S"] == "demo"
    [message] = gateway.messages("c1")
    assert message["type"] == "ConnectionEstablished"
    assert message["public_url"].endswith("/t/demo") and message["subdomain"] == "demo"


def test_ready_from_unknown_connection_gets_an_error(context, gateway) -> None:
    send(response.handler, "nobody", p.encode(p.Ready()), context)
    [message] = gateway.messages("nobody")
    assert message["type"] == "Error" and message["code"] == "unknown_connection"


def test_ping_is_answered_with_pong(context, gateway) -> None:
    send(response.handler, "c1", p.encode(p.Ping(timestamp=42)), context)
    assert gateway.messages("c1") == [{"v": 1, "type": "Pong", "timestamp": 42}]


def test_response_completes_only_its_own_pending_request(context) -> None:
    pending = PendingStore(PENDING)
    pending.put("r1", "c1", "apigw-1")
    pending.put("r2", "c2", "apigw-2")
    answer = p.HttpResponse("r1", 201, [("set-cookie", "a=1"), ("set-cookie", "b=2")], b"\x00\xff")
    send(response.handler, "c1", p.encode(answer), context)
    stored = _status("r1")
    assert stored["status"] == "completed"
    assert p.decode(stored["responseData"]) == answer
    # Another agent answering r2 (not sent to it) changes nothing.
    send(response.handler, "c1", p.encode(p.HttpResponse("r2", 200)), context)
    assert _status("r2")["status"] == "pending"


def test_late_response_after_timeout_is_dropped(context) -> None:
    pending = PendingStore(PENDING)
    pending.put("r1", "c1", "apigw-1")
    assert pending.finish("r1", "timeout")
    send(response.handler, "c1", p.encode(p.HttpResponse("r1", 200)), context)
    assert _status("r1")["status"] == "timeout" and "responseData" not in _status("r1")


def test_agent_error_becomes_a_502_response(context) -> None:
    PendingStore(PENDING).put("r1", "c1", "apigw-1")
    send(response.handler, "c1", p.encode(p.Error("upstream_unreachable", "refused", "r1")), context)
    stored = p.decode(_status("r1")["responseData"])
    assert isinstance(stored, p.HttpResponse) and stored.status == 502
    assert b"upstream_unreachable" in stored.body


@pytest.mark.parametrize(
    "body",
    ["not json", '{"v":2,"type":"Ping"}', '{"v":1,"type":"Nope"}', '{"v":1,"type":"HttpResponse","status":"x"}'],
)
def test_bad_messages_are_answered_with_an_error(context, gateway, body) -> None:
    assert send(response.handler, "c1", body, context)["statusCode"] == 200
    [message] = gateway.messages("c1")
    assert message["type"] == "Error" and message["code"] == "bad_message"
