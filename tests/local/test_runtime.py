"""The runtime on the fixture app: each kind of wiring declared in the stack works locally."""

from __future__ import annotations

import json
import time
import uuid
from typing import Any

import boto3
import pytest
import requests
from websockets.exceptions import ConnectionClosed, InvalidStatus
from websockets.sync.client import connect

from scripts.local.runtime import LocalRuntime

pytestmark = pytest.mark.slow
STACK = "Fixture-test"


def out(rt: LocalRuntime, name: str) -> str:
    return str(rt.outputs[STACK][name])


def observed(rt: LocalRuntime, count: int, timeout: float = 10) -> list[dict[str, Any]]:
    """Messages the fixture handlers recorded, waiting until `count` arrived (or the timeout)."""
    sqs = rt.client("sqs")
    found: list[dict[str, Any]] = []
    deadline = time.time() + timeout
    while time.time() < deadline and len(found) < count:
        for m in sqs.receive_message(
            QueueUrl=out(rt, "ObservedQueueUrl"), MaxNumberOfMessages=10, WaitTimeSeconds=0
        ).get("Messages", []):
            found.append(json.loads(m["Body"]))
            sqs.delete_message(QueueUrl=out(rt, "ObservedQueueUrl"), ReceiptHandle=m["ReceiptHandle"])
        time.sleep(0.05)
    return found


def test_outputs_resolve_to_local_addresses(runtime: LocalRuntime) -> None:
    assert out(runtime, "HttpUrl") == f"http://127.0.0.1:{runtime.port_base}"
    assert out(runtime, "WsUrl") == f"ws://127.0.0.1:{runtime.port_base + 1}/test"
    assert out(runtime, "ObservedQueueUrl").startswith(runtime.moto_url)


def test_http_route_gets_a_payload_2_event(runtime: LocalRuntime) -> None:
    response = requests.get(
        f"{out(runtime, 'HttpUrl')}/hello/w%20orld?a=1&a=2&b=x",
        headers={"Cookie": "c1=v1; c2=v2", "X-Multi": "one"},
        timeout=10,
    )
    assert response.status_code == 200
    assert response.cookies.get("seen") == "1"
    body = response.json()
    assert body["greeting"] == "hello"
    assert body["routeKey"] == "GET /hello/{name}"
    assert body["rawPath"] == "/hello/w%20orld"
    assert body["rawQueryString"] == "a=1&a=2&b=x"
    assert body["query"] == {"a": "1,2", "b": "x"}
    assert body["pathParameters"] == {"name": "w orld"}
    assert body["cookies"] == ["c1=v1", "c2=v2"]
    assert body["headers"]["x-multi"] == "one" and "cookie" not in body["headers"]
    assert body["stage"] == "$default"
    assert body["function"].startswith("Fixture-test-HttpFunction")


def test_binary_body_is_base64_and_unknown_route_is_404(runtime: LocalRuntime) -> None:
    body = requests.post(
        f"{out(runtime, 'HttpUrl')}/hello/x",
        data=b"\x00\xff",
        headers={"Content-Type": "application/octet-stream"},
        timeout=10,
    ).json()
    assert body["isBase64Encoded"] is True and body["body"] == "AP8="
    text = requests.post(f"{out(runtime, 'HttpUrl')}/hello/x", json={"a": 1}, timeout=10).json()
    assert text["isBase64Encoded"] is False and json.loads(text["body"]) == {"a": 1}
    assert requests.get(f"{out(runtime, 'HttpUrl')}/nothing", timeout=10).status_code == 404


def test_websocket_route_replies_through_connections(runtime: LocalRuntime) -> None:
    with connect(out(runtime, "WsUrl"), open_timeout=10) as ws:
        ws.send(json.dumps({"action": "echo", "text": "hi", "gone": True}))
        reply = json.loads(ws.recv(timeout=10))
        assert reply["echo"] == "hi"
        assert json.loads(ws.recv(timeout=10)) == {"gone": True}
        ws.send(json.dumps({"action": "nope"}))
        assert json.loads(ws.recv(timeout=10))["message"] == "Forbidden"
        # The management API from outside: GET describes the connection, DELETE closes it.
        management = boto3.client(
            "apigatewaymanagementapi",
            endpoint_url=out(runtime, "WsUrl").replace("ws://", "http://"),
            region_name="us-east-1",
            aws_access_key_id="testing",
            aws_secret_access_key="testing",
        )
        info = management.get_connection(ConnectionId=reply["connectionId"])
        assert info["Identity"]["SourceIp"] == "127.0.0.1" and info["ConnectedAt"]
        management.delete_connection(ConnectionId=reply["connectionId"])
        with pytest.raises(ConnectionClosed):
            ws.recv(timeout=10)
        with pytest.raises(management.exceptions.GoneException):
            management.post_to_connection(ConnectionId=reply["connectionId"], Data=b"late")


def test_refused_connect_refuses_the_socket(runtime: LocalRuntime) -> None:
    with pytest.raises(InvalidStatus) as refused:
        connect(out(runtime, "WsUrl") + "?deny=1", open_timeout=10)
    assert refused.value.response.status_code == 403


def test_s3_notification_honours_its_filter(runtime: LocalRuntime) -> None:
    s3 = runtime.client("s3")
    bucket = out(runtime, "BucketName")
    s3.put_object(Bucket=bucket, Key="outside/a.txt", Body=b"no")
    s3.put_object(Bucket=bucket, Key="incoming/b.png", Body=b"no")
    s3.put_object(Bucket=bucket, Key="incoming/my file.txt", Body=b"yes")
    records = observed(runtime, 2, timeout=5)
    assert len(records) == 1
    record = records[0]["event"]["Records"][0]
    assert record["eventName"] == "ObjectCreated:Put"
    assert record["s3"]["bucket"]["name"] == bucket
    assert record["s3"]["object"]["key"] == "incoming/my+file.txt"  # URL-encoded, as S3 sends it
    assert records[0]["function"].startswith("Fixture-test-S3Function")


def test_eventbridge_rule_matches_its_pattern_only(runtime: LocalRuntime) -> None:
    events = runtime.client("events")
    bus = out(runtime, "BusName")
    entries = [
        {
            "Source": "fixture.orders",
            "DetailType": "order",
            "Detail": json.dumps({"amount": 50, "kind": "big-x"}),
            "EventBusName": bus,
        },
        {
            "Source": "fixture.orders",
            "DetailType": "order",
            "Detail": json.dumps({"amount": 500, "kind": "small"}),
            "EventBusName": bus,
        },
        {
            "Source": "fixture.orders",
            "DetailType": "order",
            "Detail": json.dumps({"amount": 500, "kind": "big-one"}),
            "EventBusName": bus,
        },
        {
            "Source": "fixture.orders",
            "DetailType": "order",
            "Detail": json.dumps({"amount": 500, "kind": "big-one"}),
        },  # default bus
    ]
    assert events.put_events(Entries=entries)["FailedEntryCount"] == 0
    records = observed(runtime, 2, timeout=5)
    assert len(records) == 1
    event = records[0]["event"]
    assert event["source"] == "fixture.orders" and event["detail"] == {"amount": 500, "kind": "big-one"}
    assert event["detail-type"] == "order" and event["account"] == "123456789012"


def test_async_failure_is_retried_then_lands_in_its_queue(runtime: LocalRuntime) -> None:
    events = runtime.client("events")
    events.put_events(
        Entries=[
            {
                "Source": "fixture.fail",
                "DetailType": "boom",
                "Detail": json.dumps({"n": 1}),
                "EventBusName": out(runtime, "BusName"),
            }
        ]
    )
    sqs = runtime.client("sqs")
    deadline, messages = time.time() + 10, list[dict[str, Any]]()
    while time.time() < deadline and not messages:
        messages = sqs.receive_message(QueueUrl=out(runtime, "FailureQueueUrl"), WaitTimeSeconds=1).get("Messages", [])
    assert messages, "nothing reached the on-failure destination"
    record = json.loads(messages[0]["Body"])
    assert record["requestContext"]["condition"] == "RetriesExhausted"
    assert record["requestContext"]["approximateInvokeCount"] == 2  # 1 + MaximumRetryAttempts (1)
    assert record["requestPayload"]["detail"] == {"n": 1}
    assert record["responsePayload"]["errorMessage"] == "fixture failure"
    attempts = observed(runtime, 3, timeout=1)
    assert len([a for a in attempts if "attempt" in a]) == 2


def test_function_logs_are_collected_per_function(runtime: LocalRuntime) -> None:
    lines = [line for line in runtime.logs.lines if line.function.startswith("Fixture-test-FailingFunction")]
    assert any("fixture failure" in line.message for line in lines)


def test_sqs_event_source_mapping_delivers_batches(runtime: LocalRuntime) -> None:
    sqs = runtime.client("sqs")
    for n in range(3):
        sqs.send_message(QueueUrl=out(runtime, "JobsQueueUrl"), MessageBody=json.dumps({"job": n}))
    records: list[dict[str, Any]] = []
    deadline = time.time() + 10
    while time.time() < deadline and len(records) < 3:  # batches of up to 5: one to three messages
        records += [r for m in observed(runtime, 1, timeout=1) for r in m["event"]["Records"]]
    assert sorted(json.loads(r["body"])["job"] for r in records) == [0, 1, 2]
    assert all(
        r["eventSource"] == "aws:sqs"
        and r["eventSourceARN"].endswith(":" + out(runtime, "JobsQueueUrl").rsplit("/", 1)[1])
        for r in records
    )
    time.sleep(1)
    attributes = sqs.get_queue_attributes(QueueUrl=out(runtime, "JobsQueueUrl"), AttributeNames=["All"])["Attributes"]
    assert (
        attributes["ApproximateNumberOfMessages"] == "0" and attributes["ApproximateNumberOfMessagesNotVisible"] == "0"
    )


def authorizer_runs(rt: LocalRuntime) -> int:
    """How many times the fixture's authorizer function has been invoked so far."""
    return sum(
        1
        for _, kind, info in rt.timeline
        if kind == "invoke.start" and info["function"].startswith(f"{STACK}-AuthorizerFunction")
    )


def test_authorizer_allows_and_its_context_reaches_the_route(runtime: LocalRuntime) -> None:
    token = f"good-{uuid.uuid4().hex}"
    response = requests.get(
        f"{out(runtime, 'HttpUrl')}/private/thing", headers={"Authorization": f"Bearer {token}"}, timeout=10
    )
    assert response.status_code == 200
    body = response.json()
    assert body["routeKey"] == "GET /private/{item}" and body["pathParameters"] == {"item": "thing"}
    assert body["authorizer"] == {
        "lambda": {"org": "acme", "token": token, "routeKey": "GET /private/{item}", "type": "REQUEST"}
    }


def test_authorizer_refuses_as_api_gateway_does(runtime: LocalRuntime) -> None:
    url = f"{out(runtime, 'HttpUrl')}/private/thing"
    before = authorizer_runs(runtime)
    missing = requests.get(url, timeout=10)
    assert (missing.status_code, missing.json()) == (401, {"message": "Unauthorized"})
    empty = requests.get(url, headers={"Authorization": ""}, timeout=10)
    assert empty.status_code == 401
    assert authorizer_runs(runtime) == before  # not invoked without its identity source
    denied = requests.get(url, headers={"Authorization": f"Bearer bad-{uuid.uuid4().hex}"}, timeout=10)
    assert (denied.status_code, denied.json()) == (403, {"message": "Forbidden"})
    for failing in ("Bearer boom", "Bearer junk"):  # raises; answers the wrong shape
        response = requests.get(url, headers={"Authorization": failing}, timeout=10)
        assert (response.status_code, response.json()) == (500, {"message": "Internal Server Error"})


def test_authorizer_answers_are_cached_by_identity_for_the_ttl(runtime: LocalRuntime) -> None:
    url = f"{out(runtime, 'HttpUrl')}/private/thing"
    allowed, denied = f"Bearer good-{uuid.uuid4().hex}", f"Bearer bad-{uuid.uuid4().hex}"
    before = authorizer_runs(runtime)
    assert [requests.get(url, headers={"Authorization": allowed}, timeout=10).status_code for _ in range(2)] == [
        200,
        200,
    ]
    assert authorizer_runs(runtime) == before + 1
    assert [requests.get(url, headers={"Authorization": denied}, timeout=10).status_code for _ in range(2)] == [
        403,
        403,
    ]
    assert authorizer_runs(runtime) == before + 2
    other = requests.get(url, headers={"Authorization": f"Bearer good-{uuid.uuid4().hex}"}, timeout=10)
    assert other.status_code == 200 and authorizer_runs(runtime) == before + 3


def test_policy_authorizer_is_evaluated_per_request_without_a_cache(runtime: LocalRuntime) -> None:
    url = f"{out(runtime, 'HttpUrl')}/policy/thing"
    headers = {"Authorization": "Bearer good"}
    before = authorizer_runs(runtime)
    allowed = requests.get(url, params={"item": "x"}, headers=headers, timeout=10)
    assert allowed.status_code == 200
    assert allowed.json()["authorizer"] == {"lambda": {"via": "policy", "resource": "/policy/{item}"}}
    assert requests.get(url, params={"item": "x"}, headers=headers, timeout=10).status_code == 200
    assert requests.get(url, params={"item": "secret"}, headers=headers, timeout=10).status_code == 403
    assert authorizer_runs(runtime) == before + 3  # TTL 0: every request
    assert requests.get(url, headers=headers, timeout=10).status_code == 401  # the query identity source is missing


def test_fifo_mapping_keeps_each_groups_order_through_failures_and_dead_letters(runtime: LocalRuntime) -> None:
    sqs = runtime.client("sqs")
    processed: list[dict[str, Any]] = []

    def send(group: str, name: str, fail_until: int = 0) -> None:
        sqs.send_message(
            QueueUrl=out(runtime, "DeploysQueueUrl"),
            MessageBody=json.dumps({"name": name, "fail_until": fail_until}),
            MessageGroupId=group,
            MessageDeduplicationId=f"{name}-{uuid.uuid4().hex}",
        )

    def wait_for(name: str) -> None:
        deadline = time.time() + 15
        while time.time() < deadline and name not in {p["name"] for p in processed}:
            for m in sqs.receive_message(
                QueueUrl=out(runtime, "FifoObservedQueueUrl"), MaxNumberOfMessages=10, WaitTimeSeconds=1
            ).get("Messages", []):
                processed.append(json.loads(m["Body"]))
                sqs.delete_message(QueueUrl=out(runtime, "FifoObservedQueueUrl"), ReceiptHandle=m["ReceiptHandle"])

    # a2 fails on its first receive: a3 must wait for it. b2 always fails: after maxReceiveCount (2)
    # receives it goes to the dead-letter queue, and only then does its group move on (b3).
    for group, name, fail_until in [("A", "a1", 0), ("B", "b1", 0), ("A", "a2", 2), ("B", "b2", 99), ("A", "a3", 0)]:
        send(group, name, fail_until)
    wait_for("a3")
    dead: list[dict[str, Any]] = []
    deadline = time.time() + 15
    while time.time() < deadline and not dead:
        dead = sqs.receive_message(
            QueueUrl=out(runtime, "DeploysDlqUrl"), AttributeNames=["All"], WaitTimeSeconds=1
        ).get("Messages", [])
    send("B", "b3")
    wait_for("b3")
    assert [p["name"] for p in processed if p["group"] == "A"] == ["a1", "a2", "a3"]
    assert next(p["attempt"] for p in processed if p["name"] == "a2") == 2
    assert [p["name"] for p in processed if p["group"] == "B"] == ["b1", "b3"]
    assert [json.loads(m["Body"])["name"] for m in dead] == ["b2"]
    assert dead[0]["Attributes"]["MessageGroupId"] == "B"
    assert int(dead[0]["Attributes"]["ApproximateReceiveCount"]) >= 2


def test_iam_route_takes_a_sigv4_request_and_refuses_what_is_not_one(runtime: LocalRuntime) -> None:
    from botocore.auth import SigV4Auth
    from botocore.awsrequest import AWSRequest
    from botocore.credentials import Credentials

    url = f"{out(runtime, 'HttpUrl')}/iam/x"
    signed = AWSRequest(method="GET", url=url)
    SigV4Auth(Credentials("AKIAIOSFODNN7EXAMPLE", "secret"), "execute-api", "us-east-1").add_auth(signed)
    response = requests.get(url, headers=dict(signed.headers), timeout=10)
    assert response.status_code == 200
    assert response.json()["authorizer"]["iam"]["accessKey"] == "AKIAIOSFODNN7EXAMPLE"
    for bad in ("AWS4-HMAC-SHA256 garbage", "AWS4-HMAC-SHA256", "Bearer x", ""):
        refused = requests.get(url, headers={"Authorization": bad} if bad else {}, timeout=10)
        assert (refused.status_code, refused.json()) == (403, {"message": "Forbidden"}), bad


def test_a_very_long_url_is_one_answer_and_one_log_line(
    runtime: LocalRuntime, caplog: pytest.LogCaptureFixture
) -> None:
    import http.client

    base = out(runtime, "HttpUrl").removeprefix("http://")
    host, port = base.split(":")
    for length, expected in ((20_000, 414), (100_000, 400)):  # over what the parser takes at all: its 400
        before = len(runtime.logs.lines)
        caplog.clear()
        conn = http.client.HTTPConnection(host, int(port), timeout=10)
        conn.request("GET", "/hello/x?q=" + "a" * length)
        answer = conn.getresponse()
        answer.read()
        conn.close()
        assert answer.status == expected
        time.sleep(0.2)
        new = [line.message for line in runtime.logs.lines[before:]]
        records = [r for r in caplog.records if r.name.startswith("aiohttp")]
        assert len(new) + len(records) == 1, (new, [r.getMessage() for r in records])
        assert all(r.exc_info is None for r in records)
        assert all(len(message) < 200 for message in new + [r.getMessage() for r in records])
