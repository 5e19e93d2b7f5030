from __future__ import annotations

import base64
import json
import threading
import time

import pytest

from lambdas.common import aws, containers
from lambdas.tunnel import connect, disconnect, forward, response, settings
from lambdas.tunnel import protocol as p
from lambdas.tunnel.store import PendingStore, TokenStore
from tests.lambdas.tunnel.support import (
    BUCKET,
    CONNECTIONS,
    PENDING,
    TOKENS,
    FakeAgent,
    connect_event,
    event,
    new_token,
    send,
)

pytestmark = pytest.mark.usefixtures("tunnel_env")


def _ready(
    context, connection_id: str = "c1", subdomain: str = "demo", token: str | None = None, **headers: str
) -> None:
    evt = connect_event(connection_id, token or new_token(), subdomain, **headers)
    assert connect.handler(evt, context)["statusCode"] == 200
    send(response.handler, connection_id, p.encode(p.Ready()), context)


def _agent(gateway, context, answer) -> FakeAgent:
    agent = FakeAgent(answer, context)
    gateway.on_message = agent
    return agent


def _disconnect_event(connection_id: str) -> dict:
    evt = event("disconnect")
    evt["requestContext"]["connectionId"] = connection_id
    return evt


def _body(result: dict) -> bytes:
    body = result.get("body", "")
    return base64.b64decode(body) if result.get("isBase64Encoded") else body.encode()


def _echo(req: p.HttpRequest) -> p.HttpResponse:
    return p.HttpResponse(req.request_id, 200, [("content-type", "application/octet-stream")], req.body)


def test_request_and_response_fidelity_through_path_route(context, gateway) -> None:
    _ready(context)

    def answer(req: p.HttpRequest) -> p.HttpResponse:
        headers = [
            ("Set-Cookie", "a=1; Path=/"),
            ("Set-Cookie", "b=2; HttpOnly"),
            ("Vary", "Accept"),
            ("Vary", "Cookie"),
            ("Location", "/elsewhere"),
            ("Transfer-Encoding", "chunked"),
        ]
        return p.HttpResponse(req.request_id, 302, headers, b"\x00\x01binary\xff")

    agent = _agent(gateway, context, answer)
    result = forward.handler(event("http_api"), context)
    assert not agent.errors

    [req] = agent.requests
    assert req.method == "POST"
    assert req.path == "/api/items/caf%C3%A9"
    assert req.query == "tag=a&tag=b&q=a%20b%2Bc&empty=&x%5B%5D=1"
    assert req.body == b'{"name":"cup"}'
    assert req.client_ip == "198.51.100.23"
    headers = dict(req.headers)
    assert headers["cookie"] == "session=s3cr3t; theme=dark"
    assert headers["x-custom"] == "one,two"
    assert headers["x-forwarded-prefix"] == "/t/demo"
    assert headers["host"] == "p9r8s7t6u5.execute-api.eu-west-1.amazonaws.com"

    assert result["statusCode"] == 302
    # A path tunnel keeps the app's cookies and redirects inside its prefix.
    assert result["cookies"] == ["a=1; Path=/t/demo", "b=2; HttpOnly"]
    assert result["headers"]["vary"] == "Accept, Cookie"
    assert result["headers"]["location"] == "/t/demo/elsewhere"
    assert "transfer-encoding" not in result["headers"]
    assert _body(result) == b"\x00\x01binary\xff"
    # Nothing private is left behind once answered.
    assert (
        aws.client("dynamodb").get_item(TableName=PENDING, Key={"requestId": {"S": req.request_id}}).get("Item") is None
    )


def test_host_route_with_custom_domain(context, gateway, monkeypatch) -> None:
    monkeypatch.setenv("DOMAIN_NAME", "tunnel.example.com")
    _ready(context)
    agent = _agent(gateway, context, _echo)
    evt = event("http_api")
    evt["headers"]["host"] = "demo.tunnel.example.com"
    evt["rawPath"] = "/"
    result = forward.handler(evt, context)
    assert result["statusCode"] == 200
    assert agent.requests[0].path == "/"
    assert "x-forwarded-prefix" not in dict(agent.requests[0].headers)


def test_unknown_address_and_unknown_subdomain_are_json_404(context, gateway) -> None:
    evt = event("http_api")
    evt["rawPath"] = "/favicon.ico"
    result = forward.handler(evt, context)
    assert result["statusCode"] == 404 and "error" in json.loads(result["body"])
    result = forward.handler(event("http_api"), context)  # no agent for "demo"
    assert result["statusCode"] == 404 and "demo" in json.loads(result["body"])["error"]
    assert gateway.posts == []


def test_connected_but_not_ready_is_not_routable(context, gateway) -> None:
    assert connect.handler(connect_event("c1", new_token(), "demo"), context)["statusCode"] == 200
    result = forward.handler(event("http_api"), context)
    assert result["statusCode"] == 503 and "offline" in json.loads(result["body"])["error"]
    assert gateway.messages("c1") == []


def test_claimed_name_without_agent_is_agent_offline_and_unclaimed_is_404(context, gateway) -> None:
    _ready(context)
    disconnect.handler(_disconnect_event("c1"), context)
    offline = forward.handler(event("http_api"), context)
    assert offline["statusCode"] == 503
    assert json.loads(offline["body"]) == {"error": "tunnel 'demo' is offline: its agent is not connected"}
    evt = event("http_api")
    evt["rawPath"] = "/t/nobody/"
    assert forward.handler(evt, context)["statusCode"] == 404


def test_revoked_token_connection_is_not_routed(context, gateway) -> None:
    token = new_token()
    _ready(context, token=token)
    _agent(gateway, context, _echo)
    assert forward.handler(event("http_api"), context)["statusCode"] == 200
    assert TokenStore(TOKENS).revoke(token.split(".")[0])
    # The connection row is still there (nothing closed it here), but its token owns nothing now.
    result = forward.handler(event("http_api"), context)
    assert result["statusCode"] == 404
    assert [m["type"] for m in gateway.messages("c1")].count("HttpRequest") == 1


def test_body_over_limit_is_413_at_once(context, gateway) -> None:
    _ready(context)
    evt = event("http_api")
    evt["body"] = base64.b64encode(b"x" * (p.MAX_BODY_BYTES + 1)).decode()
    result = forward.handler(evt, context)
    assert result["statusCode"] == 413 and "error" in json.loads(result["body"])
    assert gateway.messages("c1")[-1]["type"] == "ConnectionEstablished"  # nothing forwarded


def test_large_bodies_travel_through_the_bucket_both_ways(context, gateway) -> None:
    _ready(context)
    big_in = bytes(range(256)) * 1200  # 300 KB, well over one WebSocket message
    big_out = b"\xfe" * 400_000
    agent = _agent(gateway, context, lambda req: p.HttpResponse(req.request_id, 200, [], big_out))
    evt = event("http_api")
    evt["body"] = base64.b64encode(big_in).decode()
    result = forward.handler(evt, context)
    assert not agent.errors
    assert agent.requests[0].body == big_in
    [posted] = [m for m in gateway.messages("c1") if m["type"] == "HttpRequest"]
    assert "body" not in posted and posted["body_url"].startswith("https://")
    assert len(json.dumps(posted)) < p.MAX_MESSAGE_BYTES
    assert result["statusCode"] == 200 and _body(result) == big_out
    # Bodies are removed once delivered; the bucket's 1-day expiry is only the backstop.
    assert aws.client("s3").list_objects_v2(Bucket=BUCKET).get("KeyCount") == 0


def test_gone_agent_is_502_and_stale_connection_removed(context, gateway) -> None:
    _ready(context)
    gateway.gone.add("c1")
    result = forward.handler(event("http_api"), context)
    assert result["statusCode"] == 502 and "error" in json.loads(result["body"])
    assert "Item" not in aws.client("dynamodb").get_item(TableName=CONNECTIONS, Key={"connectionId": {"S": "c1"}})


def test_silent_agent_is_504_at_the_deadline(context, gateway, monkeypatch) -> None:
    monkeypatch.setenv("REQUEST_TIMEOUT_MS", "400")
    containers.reset()
    _ready(context)
    agent = _agent(gateway, context, lambda req: None)
    started = time.monotonic()
    result = forward.handler(event("http_api"), context)
    elapsed = time.monotonic() - started
    assert result["statusCode"] == 504 and "error" in json.loads(result["body"])
    assert 0.4 <= elapsed < 2.5  # the default test timeout is 3 s
    assert (PendingStore(PENDING).get(agent.requests[0].request_id) or {}).get("status") == "timeout"


def test_deadline_respects_lambda_remaining_time(context, gateway) -> None:
    context.remaining_ms = 1500  # leaves 0.5 s after the 1 s safety margin
    _ready(context)
    _agent(gateway, context, lambda req: None)
    started = time.monotonic()
    assert forward.handler(event("http_api"), context)["statusCode"] == 504
    assert time.monotonic() - started < 2.5  # 3 s without the remaining-time cap


def test_agent_disconnect_mid_request_is_502_at_once(context, gateway, monkeypatch) -> None:
    monkeypatch.setenv("REQUEST_TIMEOUT_MS", "20000")
    containers.reset()
    _ready(context)

    def die(req: p.HttpRequest) -> None:
        evt = event("disconnect")
        evt["requestContext"]["connectionId"] = "c1"
        disconnect.handler(evt, context)

    agent = _agent(gateway, context, die)
    started = time.monotonic()
    result = forward.handler(event("http_api"), context)
    assert not agent.errors
    assert result["statusCode"] == 502 and "disconnected" in json.loads(result["body"])["error"]
    assert time.monotonic() - started < 3.0  # the deadline is 20 s


def test_agent_error_message_is_502(context, gateway) -> None:
    _ready(context)
    _agent(gateway, context, lambda req: p.Error("upstream_unreachable", "connection refused", req.request_id))
    result = forward.handler(event("http_api"), context)
    assert result["statusCode"] == 502
    assert json.loads(_body(result))["error"] == "tunnel agent error: upstream_unreachable"


def test_newest_ready_connection_wins(context, gateway) -> None:
    token = new_token()
    _ready(context, "old", token=token)
    time.sleep(1.05)  # createdAt has one-second resolution
    _ready(context, "new", token=token, x_tunnel_rotate="old")  # the agent's rotation
    agent = _agent(gateway, context, _echo)
    assert forward.handler(event("http_api"), context)["statusCode"] == 200
    assert [cid for cid, data in gateway.posts if b"HttpRequest" in data] == ["new"]
    assert agent.requests


def test_response_too_large_for_lambda_is_json_502(context, gateway) -> None:
    _ready(context)
    huge = b"\x00" * 4_800_000  # under the tunnel's 5 MiB, over what 6 MB of base64 JSON can carry
    _agent(gateway, context, lambda req: p.HttpResponse(req.request_id, 200, [], huge))
    result = forward.handler(event("http_api"), context)
    assert result["statusCode"] == 502 and "too large" in json.loads(result["body"])["error"]


def test_response_claimed_in_bucket_but_missing_is_502(context, gateway) -> None:
    _ready(context)

    def lie(req: p.HttpRequest) -> p.HttpResponse:
        return p.HttpResponse(req.request_id, 200, [], b"", body_in_bucket=True)

    _agent(gateway, context, lie)
    result = forward.handler(event("http_api"), context)
    assert result["statusCode"] == 502 and "missing" in json.loads(result["body"])["error"]


def test_requests_over_the_per_tunnel_cap_are_429_with_retry_after(context, gateway, monkeypatch) -> None:
    monkeypatch.setenv("MAX_INFLIGHT_PER_TUNNEL", "2")
    monkeypatch.setenv("BUSY_RETRY_AFTER_SECONDS", "3")
    containers.reset()
    _ready(context)
    release = threading.Event()

    def held(req: p.HttpRequest) -> p.HttpResponse:
        release.wait(5)
        return _echo(req)

    agent = _agent(gateway, context, held)
    results: list[dict] = []
    threads = [threading.Thread(target=lambda: results.append(forward.handler(event("http_api"), context)))
               for _ in range(2)]  # fmt: skip
    try:
        # One at a time until each is in flight at the agent: DynamoDB's conditional ADD is atomic,
        # moto's in-process table is not (two simultaneous updates can count once).
        for started, thread in enumerate(threads, start=1):
            thread.start()
            deadline = time.monotonic() + 5
            while len(agent.requests) < started:
                assert time.monotonic() < deadline
                time.sleep(0.01)
        refused = forward.handler(event("http_api"), context)
        assert refused["statusCode"] == 429 and refused["headers"]["retry-after"] == "3"
        assert "error" in json.loads(refused["body"])
    finally:  # never leave a handler running into the next test
        release.set()
        for thread in threads:
            if thread.ident is not None:  # started
                thread.join(10)
    assert [r["statusCode"] for r in results] == [200, 200]
    # The slots are given back: the next request goes through, and the count is back to zero.
    assert forward.handler(event("http_api"), context)["statusCode"] == 200
    item = aws.client("dynamodb").get_item(TableName=CONNECTIONS, Key={"connectionId": {"S": "c1"}})["Item"]
    assert item["inflight"] == {"N": "0"}


def test_text_over_binary_limit_passes_and_bodies_stay_byte_exact(context, gateway) -> None:
    _ready(context)
    text = ("caf\u00e9 " + "<p>" * 40 + "\n").encode() * 40_000  # ~5 MB of UTF-8 text (HTML-like)
    assert 4.8 * 1024 * 1024 < len(text) <= p.MAX_BODY_BYTES
    odd = b"latin-1 caf\xe9 \xff\xfe"  # "text" that is not UTF-8

    def answer(req: p.HttpRequest) -> p.HttpResponse:
        return p.HttpResponse(req.request_id, 200, [("content-type", "text/plain")], odd if "odd" in req.path else text)

    _agent(gateway, context, answer)
    result = forward.handler(event("http_api"), context)
    assert result["statusCode"] == 200 and result["isBase64Encoded"] is False
    assert _body(result) == text and len(json.dumps(result)) < 6 * 1024 * 1024
    evt = event("http_api")
    evt["rawPath"] = "/t/demo/odd"
    result = forward.handler(evt, context)
    assert result["isBase64Encoded"] is True and _body(result) == odd


def test_head_keeps_content_length_and_no_content_type_is_added(context, gateway) -> None:
    _ready(context)

    def answer(req: p.HttpRequest) -> p.HttpResponse:
        return p.HttpResponse(req.request_id, 200, [("Content-Length", "1234"), ("X-App", "1")], b"")

    _agent(gateway, context, answer)
    evt = event("http_api")
    evt["requestContext"]["http"]["method"] = "HEAD"
    evt.pop("body", None)
    head = forward.handler(evt, context)
    assert head["headers"] == {"content-length": "1234", "x-app": "1"}
    get = event("http_api")
    get["requestContext"]["http"]["method"] = "GET"
    get.pop("body", None)
    assert forward.handler(get, context)["headers"] == {"x-app": "1"}  # the gateway measures bodies itself


def _signed_policy(posted: dict) -> dict:
    return json.loads(base64.b64decode(posted["response_upload_fields"]["policy"]))


@pytest.mark.parametrize(("configured", "bound"), [(None, p.MAX_BODY_BYTES), ("1048576", 1048576)])
def test_the_response_upload_is_a_presigned_post_bounded_by_the_max_response_size(
    context, gateway, monkeypatch, configured, bound
) -> None:
    if configured:
        monkeypatch.setenv("MAX_RESPONSE_BYTES", configured)
    containers.reset()
    _ready(context)
    _agent(gateway, context, _echo)
    forward.handler(event("http_api"), context)
    [posted] = [m for m in gateway.messages("c1") if m["type"] == "HttpRequest"]
    fields = posted["response_upload_fields"]
    assert fields["key"] == f"responses/{posted['request_id']}"
    assert fields["x-amz-algorithm"] == "AWS4-HMAC-SHA256" and fields["x-amz-signature"]
    conditions = _signed_policy(posted)["conditions"]
    assert ["content-length-range", 1, bound] in conditions
    assert {"key": fields["key"]} in conditions  # exactly this key, not a prefix
    assert BUCKET in posted["response_upload_url"]


def test_a_configured_max_response_size_above_the_protocol_limit_is_capped(monkeypatch) -> None:
    monkeypatch.setenv("MAX_RESPONSE_BYTES", str(p.MAX_BODY_BYTES * 4))
    assert settings.Settings.from_env().max_response_bytes == p.MAX_BODY_BYTES


def test_an_agent_refused_by_s3_is_a_json_502_naming_the_reason(context, gateway) -> None:
    _ready(context)

    def refused(req: p.HttpRequest) -> p.Error:
        return p.Error("response_too_large", "S3 refused the 6000000-byte response body", req.request_id)

    _agent(gateway, context, refused)
    started = time.monotonic()
    result = forward.handler(event("http_api"), context)
    assert time.monotonic() - started < 2  # answered at once, not at the deadline
    assert result["statusCode"] == 502
    assert json.loads(result["body"]) == {"error": "tunnel agent error: response_too_large"}
