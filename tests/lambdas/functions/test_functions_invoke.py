"""Invoking, in moto: async records finished by the recorder from Lambda's destination records,
webhooks, Idempotency-Key, quotas, batch, limits, dry runs, callback tokens and the audit log.

moto cannot run a function (it answers Invoke with a canned error without Docker), so what needs
a function to really run is tested end to end on the local runtime (tests/e2e); here Lambda's
destination records are built as Lambda sends them.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import threading
import time
from collections.abc import Iterator
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import boto3
import pytest

from lambdas.common import containers
from lambdas.functions import batch as batch_worker
from lambdas.functions import callbacks, names, recorder
from tests.lambdas.functions.conftest import (
    BATCH_QUEUE,
    REGION,
    RESULTS_QUEUE,
    FakeContext,
    Platform,
    load_event,
)

SOURCE = "def handler(event, context):\n    return event\n"
BASE = "/v1/orgs/acme/functions"


@pytest.fixture
def live(platform: Platform) -> dict[str, Any]:
    """`echo`, deployed with version 1 live."""
    created = platform.call("POST", BASE, {"name": "echo", "source": SOURCE})
    assert created.status == 201
    platform.drain()
    platform.call("POST", f"{BASE}/echo/versions", {})
    platform.drain()
    platform.call("PUT", f"{BASE}/echo/aliases/live", {"version": 1})
    platform.drain()
    return dict(platform.call("GET", f"{BASE}/echo").body)


def destination(request_id: str, function_arn: str, *, ok: bool, payload: Any, count: int = 1) -> dict[str, Any]:
    """A destination record exactly as Lambda sends it to an SQS destination."""
    response: dict[str, Any] = {"statusCode": 200, "executedVersion": "1"}
    if not ok:
        response["functionError"] = "Unhandled"
    return {
        "version": "1.0",
        "timestamp": datetime.now(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z"),
        "requestContext": {
            "requestId": request_id,
            "functionArn": f"{function_arn}:live",
            "condition": "Success" if ok else "RetriesExhausted",
            "approximateInvokeCount": count,
        },
        "requestPayload": {"n": 1},
        "responseContext": response,
        "responsePayload": payload,
    }


def feed_recorder(*bodies: dict[str, Any]) -> dict[str, Any]:
    event = load_event("sqs_deploy_message.json")
    template = event["Records"][0]
    event["Records"] = [
        {
            **template,
            "messageId": f"m{i}",
            "body": json.dumps(b),
            "eventSourceARN": f"arn:aws:sqs:{REGION}:1:{RESULTS_QUEUE}",
        }
        for i, b in enumerate(bodies)
    ]
    return dict(recorder.handler(event, FakeContext(function_name="functions-recorder-test")))


def async_invoke(platform: Platform, payload: Any = None, **body: Any) -> dict[str, Any]:
    answer = platform.call("POST", f"{BASE}/echo/invoke", {"mode": "async", "payload": payload or {"n": 1}, **body})
    assert answer.status == 202, answer.body
    return dict(platform.call("GET", f"/v1/orgs/acme/invocations/{answer.body['invocation_id']}").body)


def test_async_invocation_is_recorded_then_finished_once_by_the_recorder(
    platform: Platform, live: dict[str, Any]
) -> None:
    record = async_invoke(platform)
    assert record["status"] == "queued" and record["mode"] == "async" and record["request_id"]
    assert record["payload_size"] == len(b'{"n":1}')
    assert record["payload_sha256"] == hashlib.sha256(b'{"n":1}').hexdigest()
    arn = f"arn:aws:lambda:{REGION}:123456789012:function:{live['lambda_function']}"
    done = destination(record["request_id"], arn, ok=True, payload={"echo": 1})
    assert feed_recorder(done) == {"batchItemFailures": []}
    finished = platform.call("GET", f"/v1/orgs/acme/invocations/{record['invocation_id']}").body
    assert finished["status"] == "succeeded" and finished["result"] == {"echo": 1}
    assert finished["executed_version"] == "1" and finished["finished_at"]
    usage = platform.call("GET", "/v1/orgs/acme/usage").body
    assert usage["invocations"] == 1
    # The same record delivered again changes nothing and is not counted twice.
    assert feed_recorder(done) == {"batchItemFailures": []}
    assert platform.call("GET", "/v1/orgs/acme/usage").body["invocations"] == 1
    listed = platform.call("GET", f"{BASE}/echo/invocations").body["invocations"]
    assert [i["invocation_id"] for i in listed] == [record["invocation_id"]]
    assert "result" not in listed[0]  # lists stay light; the record has it


@pytest.mark.parametrize(
    ("payload", "status", "error_type"),
    [
        ({"errorMessage": "boom", "errorType": "ValueError", "stackTrace": []}, "failed", "ValueError"),
        ({"errorMessage": "2026-12-01T18:00:00Z abc Task timed out after 3.00 seconds"}, "timed_out", "Unhandled"),
        (
            {"errorType": "Sandbox.Timedout", "errorMessage": "RequestId: x Error: Task timed out after 3.00 seconds"},
            "timed_out",
            "Sandbox.Timedout",
        ),
    ],
)
def test_failures_after_retries_are_recorded_with_their_error(
    platform: Platform, live: dict[str, Any], payload: dict[str, Any], status: str, error_type: str
) -> None:
    record = async_invoke(platform)
    feed_recorder(destination(record["request_id"], "arn:x", ok=False, payload=payload, count=3))
    finished = platform.call("GET", f"/v1/orgs/acme/invocations/{record['invocation_id']}").body
    assert finished["status"] == status and finished["error"]["type"] == error_type
    assert finished["attempts"] == 3 and finished["result"] is None


def test_a_record_for_an_unknown_request_is_retried_not_dropped(platform: Platform) -> None:
    record = destination("no-such-request", "arn:x", ok=True, payload=1)
    assert feed_recorder(record) == {"batchItemFailures": []}
    sqs = boto3.client("sqs", region_name=REGION)
    url = sqs.get_queue_url(QueueName=RESULTS_QUEUE)["QueueUrl"]
    messages: list[dict[str, Any]] = []
    deadline = time.time() + 5
    while not messages and time.time() < deadline:
        messages = sqs.receive_message(QueueUrl=url).get("Messages", [])
        time.sleep(0.2)
    assert json.loads(messages[0]["Body"]) == {"kind": "destination", "attempt": 2, "record": record}
    # After ten looks it is left to the queue (a batch item failure: redelivery, then the DLQ).
    last = {"kind": "destination", "attempt": recorder.LOOKUP_TRIES, "record": record}
    assert feed_recorder(last) == {"batchItemFailures": [{"itemIdentifier": "m0"}]}


class Receiver(BaseHTTPRequestHandler):
    answers: list[int] = []
    received: list[tuple[dict[str, str], bytes]] = []

    def do_POST(self) -> None:
        body = self.rfile.read(int(self.headers["Content-Length"]))
        Receiver.received.append((dict(self.headers), body))
        self.send_response(Receiver.answers.pop(0) if Receiver.answers else 200)
        self.end_headers()

    def log_message(self, *_args: Any) -> None:
        pass


@pytest.fixture
def receiver() -> Iterator[str]:
    Receiver.answers, Receiver.received = [], []
    server = ThreadingHTTPServer(("127.0.0.1", 0), Receiver)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}/hook"
    server.shutdown()
    server.server_close()


@pytest.fixture
def fast_webhook_retries(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(names.ENV_WEBHOOK_RETRY_BASE_SECONDS, "1")


@pytest.mark.usefixtures("fast_webhook_retries")
def test_callback_url_gets_a_signed_post_and_is_retried_with_backoff(
    platform: Platform, live: dict[str, Any], receiver: str
) -> None:
    Receiver.answers = [503]
    record = async_invoke(platform, callback_url=receiver)
    feed_recorder(destination(record["request_id"], "arn:x", ok=True, payload={"v": 2}))
    assert len(Receiver.received) == 1
    sqs = boto3.client("sqs", region_name=REGION)
    url = sqs.get_queue_url(QueueName=RESULTS_QUEUE)["QueueUrl"]
    retry = sqs.receive_message(QueueUrl=url, WaitTimeSeconds=0, MaxNumberOfMessages=10).get("Messages", [])
    # moto honours DelaySeconds: the retry becomes visible only after its backoff.
    assert retry == []
    messages: list[dict[str, Any]] = []
    deadline = time.time() + 5
    while not messages and time.time() < deadline:
        messages = sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=10).get("Messages", [])
        time.sleep(0.2)
    assert messages, "no retry was scheduled"
    assert json.loads(messages[0]["Body"]) == {
        "kind": "webhook",
        "org": "acme",
        "iid": record["invocation_id"],
        "attempt": 2,
    }
    feed_recorder(json.loads(messages[0]["Body"]))
    assert len(Receiver.received) == 2
    headers, body = Receiver.received[1]
    assert headers["X-Platform-Invocation"] == record["invocation_id"]
    key = platform.call("GET", "/v1/orgs/acme/webhook-secret").body["key"]
    stamp, signature = (part.split("=", 1)[1] for part in headers["X-Platform-Signature"].split(","))
    expected = hmac.new(bytes.fromhex(key), f"{stamp}.".encode() + body, hashlib.sha256).hexdigest()
    assert hmac.compare_digest(signature, expected)
    assert json.loads(body)["status"] == "succeeded" and json.loads(body)["result"] == {"v": 2}
    assert platform.call("GET", "/v1/orgs/acme/webhook-secret", role="developer").status == 403


def test_idempotency_key_returns_the_same_invocation_and_never_runs_twice(
    platform: Platform, live: dict[str, Any]
) -> None:
    body = {"mode": "async", "payload": {"order": 7}}
    first = platform.call("POST", f"{BASE}/echo/invoke", body, headers={"Idempotency-Key": "order-7"})
    second = platform.call("POST", f"{BASE}/echo/invoke", body, headers={"Idempotency-Key": "order-7"})
    assert first.status == second.status == 202
    assert first.body == second.body
    assert len(platform.call("GET", f"{BASE}/echo/invocations").body["invocations"]) == 1
    other = platform.call(
        "POST",
        f"{BASE}/echo/invoke",
        {"mode": "async", "payload": {"order": 8}},
        headers={"Idempotency-Key": "order-7"},
    )
    assert other.status == 422 and "different request" in other.body["error"]
    # Keys are per org and function: another org may use the same key.
    assert platform.call("POST", f"{BASE}/echo/invoke", body, headers={"Idempotency-Key": ""}).status == 400


def test_rate_limit_answers_429_with_retry_after(
    platform: Platform, live: dict[str, Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("QUOTA_INVOCATIONS_PER_MINUTE", "2")
    containers.reset()
    assert async_invoke(platform)["status"] == "queued"
    assert async_invoke(platform)["status"] == "queued"
    refused = platform.call("POST", f"{BASE}/echo/invoke", {"mode": "async", "payload": {}})
    assert refused.status == 429 and "at most 2 invocations per minute" in refused.body["error"]
    assert 1 <= int(refused.headers["Retry-After"]) <= 60
    assert len(platform.call("GET", f"{BASE}/echo/invocations").body["invocations"]) == 2  # nothing recorded


def test_monthly_budget_is_a_hard_stop(
    platform: Platform, live: dict[str, Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("QUOTA_MONTHLY_GB_SECONDS", "1")
    containers.reset()
    record = async_invoke(platform)
    from lambdas.functions import invoke_service

    invoke_service.usage().record("acme", 5000, 256)  # 1.25 GB-s
    refused = platform.call("POST", f"{BASE}/echo/invoke", {"mode": "async", "payload": {}})
    assert refused.status == 429 and "monthly budget exhausted" in refused.body["error"]
    assert "Retry-After" not in refused.headers
    dry = platform.call("POST", f"{BASE}/echo/invoke", {"mode": "dryrun", "payload": {}})
    assert dry.status == 429
    usage = platform.call("GET", "/v1/orgs/acme/usage").body
    assert usage["gb_seconds"] == 1.25 and usage["gb_seconds_budget"] == 1
    assert record["status"] == "queued"


def test_function_count_quota(platform: Platform, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("QUOTA_MAX_FUNCTIONS", "2")
    containers.reset()
    assert platform.call("POST", BASE, {"name": "a"}).status == 201
    assert platform.call("POST", BASE, {"name": "b"}).status == 201
    third = platform.call("POST", BASE, {"name": "c"})
    assert third.status == 429 and "at most 2 functions" in third.body["error"]


def test_batch_fans_out_through_the_queue_and_items_are_independent(platform: Platform, live: dict[str, Any]) -> None:
    answer = platform.call("POST", f"{BASE}/echo/batch", {"payloads": [{"i": i} for i in range(25)]})
    assert answer.status == 202, answer.body
    items = answer.body["invocations"]
    assert [i["index"] for i in items] == list(range(25)) and len({i["invocation_id"] for i in items}) == 25
    sqs = boto3.client("sqs", region_name=REGION)
    url = sqs.get_queue_url(QueueName=BATCH_QUEUE)["QueueUrl"]
    messages: list[dict[str, Any]] = []
    while len(messages) < 25:
        page = sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=10).get("Messages", [])
        assert page, f"only {len(messages)} batch messages queued"
        messages += page
    event = load_event("sqs_deploy_message.json")
    template = event["Records"][0]
    event["Records"] = [{**template, "messageId": m["MessageId"], "body": m["Body"]} for m in messages[:10]]
    assert batch_worker.handler(event, FakeContext()) == {"batchItemFailures": []}
    handed = [platform.call("GET", f"/v1/orgs/acme/invocations/{i['invocation_id']}").body for i in items]
    assert sum(1 for r in handed if r["request_id"]) == 10
    assert all(r["mode"] == "batch" and r["batch_id"] == answer.body["batch_id"] for r in handed)
    # Redelivery of handled items does not invoke them again (their request ids stay).
    before = {r["invocation_id"]: r["request_id"] for r in handed if r["request_id"]}
    batch_worker.handler(event, FakeContext())
    again = {i: platform.call("GET", f"/v1/orgs/acme/invocations/{i}").body["request_id"] for i in before}
    assert again == before
    too_many = platform.call("POST", f"{BASE}/echo/batch", {"payloads": [{}] * 26})
    assert too_many.status == 413 and "at most 25" in too_many.body["error"]


def test_payload_limits_and_large_async_inputs_by_reference(platform: Platform, live: dict[str, Any]) -> None:
    big = {"blob": "x" * (300 * 1024)}
    record = async_invoke(platform, payload=big)
    keys = [o["Key"] for o in platform.s3.list_objects_v2(Bucket="functions-code-test", Prefix="inputs/")["Contents"]]
    assert keys == [f"inputs/acme/{record['invocation_id']}.json"]
    huge = platform.call("POST", f"{BASE}/echo/invoke", raw_body=json.dumps({"payload": "y" * (7 * 1024 * 1024)}))
    assert huge.status == 413 and "6 MB" in huge.body["error"]


def test_dry_run_checks_the_input_schema_and_runs_nothing(platform: Platform, live: dict[str, Any]) -> None:
    schema = {"type": "object", "required": ["name"], "properties": {"name": {"type": "string"}}}
    changed = platform.call("PATCH", f"{BASE}/echo", {"input_schema": schema})
    assert changed.status == 200 and changed.body["status"] == "deployed"  # no redeploy for a schema
    bad = platform.call("POST", f"{BASE}/echo/invoke", {"mode": "dryrun", "payload": {"name": 3}})
    assert bad.status == 400 and "at name: 3 is not of type 'string'" in bad.body["error"]
    missing = platform.call("POST", f"{BASE}/echo/invoke", {"mode": "async", "payload": {}})
    assert missing.status == 400 and "'name' is a required property" in missing.body["error"]
    good = platform.call("POST", f"{BASE}/echo/invoke", {"mode": "dryrun", "payload": {"name": "ana"}}, role="invoker")
    assert good.status == 200 and good.body["status"] == "valid"
    assert any("input_schema" in c for c in good.body["checks"])
    assert platform.call("GET", f"{BASE}/echo/invocations").body["invocations"] == []
    # Errors at paths of mixed kinds (a key and an index) are reported, not a 500.
    nested = {
        "type": "object",
        "properties": {"a": {"type": "string"}, "b": {"type": "array", "items": {"type": "integer"}}},
    }
    platform.call("PATCH", f"{BASE}/echo", {"input_schema": nested})
    mixed = platform.call("POST", f"{BASE}/echo/invoke", {"mode": "dryrun", "payload": {"a": 1, "b": ["x"]}})
    assert mixed.status == 400 and "input_schema at" in mixed.body["error"]
    invalid = platform.call("PATCH", f"{BASE}/echo", {"input_schema": {"type": "nonsense"}})
    assert invalid.status == 400 and "not a valid JSON Schema" in invalid.body["error"]


def test_sync_invoke_refuses_functions_longer_than_a_synchronous_call(platform: Platform, live: dict[str, Any]) -> None:
    platform.call("PATCH", f"{BASE}/echo", {"timeout_seconds": 120})
    platform.drain()
    answer = platform.call("POST", f"{BASE}/echo/invoke", {"qualifier": "draft", "payload": {}})
    assert answer.status == 409 and "mode async" in answer.body["error"]


def test_callback_token_opens_only_its_own_invocation(platform: Platform, live: dict[str, Any]) -> None:
    first = async_invoke(platform, callback=True)
    second = async_invoke(platform, callback=True)
    token, _claims = callbacks.mint("acme", live["id"], first["invocation_id"], timeout_seconds=30)
    path = f"/v1/callback/invocations/{first['invocation_id']}"
    headers = {"Authorization": f"Bearer {token}"}
    got = platform.call("GET", f"{path}/input", headers=headers, no_key=True)
    assert got.status == 200 and got.body["input"] == {"n": 1}
    progress = platform.call(
        "POST", f"{path}/progress", {"message": "half", "percent": 50}, headers=headers, no_key=True
    )
    assert progress.status == 200
    record = platform.call("GET", f"/v1/orgs/acme/invocations/{first['invocation_id']}").body
    assert record["status"] == "running" and record["progress"]["percent"] == 50
    other = f"/v1/callback/invocations/{second['invocation_id']}"
    for method, suffix, body in (
        ("GET", "/input", None),
        ("POST", "/progress", {"message": "x"}),
        ("POST", "/result", {"result": 1}),
    ):
        refused = platform.call(method, other + suffix, body, headers=headers, no_key=True)
        assert refused.status == 401 and "another invocation" in refused.body["error"]
    forged = token[:-4] + ("AAAA" if not token.endswith("AAAA") else "BBBB")
    assert (
        platform.call("GET", f"{path}/input", headers={"Authorization": f"Bearer {forged}"}, no_key=True).status == 401
    )
    expired, _ = callbacks.mint("acme", live["id"], first["invocation_id"], timeout_seconds=-61)
    answer = platform.call("GET", f"{path}/input", headers={"Authorization": f"Bearer {expired}"}, no_key=True)
    assert answer.status == 401 and "expired" in answer.body["error"]
    done = platform.call("POST", f"{path}/result", {"result": {"ok": True}}, headers=headers, no_key=True)
    assert done.status == 200
    assert platform.call("POST", f"{path}/result", {"result": 2}, headers=headers, no_key=True).status == 409
    assert platform.call("GET", f"/v1/orgs/acme/invocations/{first['invocation_id']}").body["result"] == {"ok": True}


def test_every_change_writes_an_audit_row(platform: Platform, live: dict[str, Any]) -> None:
    platform.call("POST", f"{BASE}/echo/rollback")
    platform.call("DELETE", f"{BASE}/echo")
    entries = platform.call("GET", "/v1/orgs/acme/audit").body["entries"]
    actions = [e["action"] for e in entries]
    assert actions == ["function.delete", "alias.move", "version.publish", "function.create"]  # newest first
    assert all(e["actor"] == "fk0123456789" for e in entries)
    assert platform.call("GET", "/v1/orgs/acme/audit", role="developer").status == 403
    assert platform.call("GET", "/v1/orgs/acme/audit", org="globex").status == 404


def test_old_versions_are_garbage_collected_unless_referenced(
    platform: Platform, live: dict[str, Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("QUOTA_VERSIONS_KEPT", "2")
    containers.reset()
    for n in range(2, 5):  # versions 2, 3, 4; live stays on 1
        platform.call("PATCH", f"{BASE}/echo", {"description": f"v{n}", "memory_mb": 128 + n})
        platform.drain()
        assert platform.call("POST", f"{BASE}/echo/versions", {}).status == 201
        platform.drain()
    statuses = {v["version"]: v["status"] for v in platform.call("GET", f"{BASE}/echo/versions").body["versions"]}
    assert statuses == {1: "published", 2: "deleted", 3: "published", 4: "published"}
    versions = platform.lam.list_versions_by_function(FunctionName=live["lambda_function"])["Versions"]
    assert sorted(v["Version"] for v in versions) == ["$LATEST", "1", "3", "4"]
    assert platform.call("PUT", f"{BASE}/echo/aliases/live", {"version": 2}).status == 409  # gone
