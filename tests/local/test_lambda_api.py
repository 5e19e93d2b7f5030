"""The runtime's Lambda API: functions created at run time through boto3, as the platform's
deployer creates them, then invoked as on AWS (in worker processes, never in the test process).
One runtime for the module (conftest's `runtime` fixture)."""

from __future__ import annotations

import base64
import io
import json
import os
import re
import time
import uuid
import zipfile
from typing import Any

import pytest

from scripts.local.runtime import LocalRuntime

pytestmark = pytest.mark.slow
STACK = "Fixture-test"

SOURCE = """
import os
import time

import boto3

CODE = "{code}"
print("cold start", CODE)


def handler(event, context):
    action = event.get("action")
    print(f"handling {{action}} in {{context.aws_request_id}}")
    if action == "fail":
        raise ValueError("user code failed")
    if action == "sleep":
        time.sleep(event["seconds"])
    if action == "env":
        return dict(os.environ)
    if action == "pid":
        return os.getpid()
    if action == "import":
        try:
            __import__(event["module"])
        except ImportError as exc:
            return type(exc).__name__
        return "imported"
    if action == "allocate":
        return len(bytearray(event["mb"] * 1024 * 1024))
    if action == "write":
        body = context.function_version.encode()
        boto3.client("s3").put_object(Bucket=event["bucket"], Key=event["key"], Body=body)
    return {{
        "code": CODE,
        "version": context.function_version,
        "name": context.function_name,
        "memory": context.memory_limit_in_mb,
        "event": event,
    }}
"""


def code_zip(code: str = "v1", entries: dict[str, str] | None = None) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        archive.writestr("app/main.py", SOURCE.format(code=code))
        for name, text in (entries or {}).items():
            archive.writestr(name, text)
    return buffer.getvalue()


@pytest.fixture(scope="module")
def lam(runtime: LocalRuntime) -> Any:
    return runtime.client("lambda")


def create(runtime: LocalRuntime, lam: Any, name: str, code: bytes | None = None, **config: Any) -> str:
    """A function as the deployer creates one: code from S3, a role, tags; waits until Active."""
    s3 = runtime.client("s3")
    bucket = runtime.outputs[STACK]["BucketName"]
    key = f"code/{name}.zip"
    s3.put_object(Bucket=bucket, Key=key, Body=code or code_zip())
    lam.create_function(
        FunctionName=name,
        Runtime="python3.12",
        Role=runtime.outputs[STACK]["UserFunctionRoleArn"],
        Handler="app/main.handler",
        Code={"S3Bucket": bucket, "S3Key": key},
        Timeout=config.pop("Timeout", 3),
        MemorySize=config.pop("MemorySize", 128),
        Architectures=["arm64"],
        Tags={"managed-by": "platform-functions"},
        **config,
    )
    lam.get_waiter("function_active_v2").wait(FunctionName=name)
    return name


def call(lam: Any, name: str, payload: Any = None, **kwargs: Any) -> tuple[dict[str, Any], Any]:
    response = lam.invoke(FunctionName=name, Payload=json.dumps(payload or {}).encode(), **kwargs)
    raw = response["Payload"].read()
    return response, json.loads(raw) if raw else None


@pytest.fixture(scope="module")
def basic(runtime: LocalRuntime, lam: Any) -> str:
    return create(runtime, lam, "ufn-test-basic", Environment={"Variables": {"GREETING": "hi"}})


def test_request_response_returns_the_payload_and_the_executed_version(lam: Any, basic: str) -> None:
    response, payload = call(lam, basic, {"n": 1})
    assert response["StatusCode"] == 200 and "FunctionError" not in response
    assert response["ExecutedVersion"] == "$LATEST"
    assert payload == {"code": "v1", "version": "$LATEST", "name": basic, "memory": 128, "event": {"n": 1}}


def test_function_error_comes_back_in_lambdas_shape(lam: Any, basic: str) -> None:
    response, payload = call(lam, basic, {"action": "fail"})
    assert response["StatusCode"] == 200 and response["FunctionError"] == "Unhandled"
    assert payload["errorType"] == "ValueError" and payload["errorMessage"] == "user code failed"
    assert any("raise ValueError" in frame for frame in payload["stackTrace"])


def test_tail_log_has_start_end_report_and_the_handlers_output(lam: Any, basic: str) -> None:
    response, _ = call(lam, basic, {"action": "tail"}, LogType="Tail")
    request_id = response["ResponseMetadata"]["RequestId"]
    log = base64.b64decode(response["LogResult"]).decode()
    lines = log.splitlines()
    start = lines.index(f"START RequestId: {request_id} Version: $LATEST")
    assert lines[start + 1] == f"handling tail in {request_id}"
    assert lines[-2] == f"END RequestId: {request_id}"
    report = re.fullmatch(
        rf"REPORT RequestId: {request_id}\tDuration: [\d.]+ ms\tBilled Duration: \d+ ms\t"
        r"Memory Size: 128 MB\tMax Memory Used: (\d+) MB(\tInit Duration: [\d.]+ ms)?",
        lines[-1],
    )
    assert report and 5 < int(report.group(1)) <= 128


def test_logs_reach_cloudwatch_and_the_runtime_log_stream(runtime: LocalRuntime, lam: Any, basic: str) -> None:
    response, _ = call(lam, basic, {"action": "logged"})
    request_id = response["ResponseMetadata"]["RequestId"]
    logs = runtime.client("logs")
    found: list[dict[str, Any]] = []
    deadline = time.time() + 5
    while time.time() < deadline and len(found) < 4:
        found = logs.filter_log_events(logGroupName=f"/aws/lambda/{basic}", filterPattern=f'"{request_id}"')["events"]
        time.sleep(0.1)
    messages = [e["message"] for e in found]
    assert f"START RequestId: {request_id} Version: $LATEST" in messages
    assert f"handling logged in {request_id}" in messages
    assert any(m.startswith(f"REPORT RequestId: {request_id}\t") for m in messages)
    assert all(re.fullmatch(r"\d{4}/\d{2}/\d{2}/\[\$LATEST\][0-9a-f]{32}", e["logStreamName"]) for e in found)
    assert any(
        line.function == basic and line.message == f"handling logged in {request_id}" for line in runtime.logs.lines
    )


def test_timeout_kills_the_process_and_is_reported_as_lambda_does(runtime: LocalRuntime, lam: Any) -> None:
    name = create(runtime, lam, "ufn-test-slow", Timeout=1)
    _, pid = call(lam, name, {"action": "pid"})
    started = time.time()
    response, payload = call(lam, name, {"action": "sleep", "seconds": 10}, LogType="Tail")
    assert time.time() - started < 3
    assert response["FunctionError"] == "Unhandled"
    assert payload["errorType"] == "Sandbox.Timedout"
    assert "Task timed out after 1.00 seconds" in payload["errorMessage"]
    assert "Status: timeout" in base64.b64decode(response["LogResult"]).decode()
    assert not os.path.exists(f"/proc/{pid}")  # killed and reaped
    _, fresh = call(lam, name, {"action": "pid"})
    assert fresh != pid


def test_memory_size_is_a_limit(runtime: LocalRuntime, lam: Any, basic: str) -> None:
    response, payload = call(lam, basic, {"action": "allocate", "mb": 400})
    assert response["FunctionError"] == "Unhandled" and payload["errorType"] == "Runtime.OutOfMemory"
    _, payload = call(lam, basic, {"action": "allocate", "mb": 20})
    assert payload == 20 * 1024 * 1024  # a new worker took over


def test_event_runs_asynchronously(runtime: LocalRuntime, lam: Any, basic: str) -> None:
    bucket, key = runtime.outputs[STACK]["BucketName"], f"user/{uuid.uuid4().hex}.bin"
    response, _ = call(lam, basic, {"action": "write", "bucket": bucket, "key": key}, InvocationType="Event")
    assert response["StatusCode"] == 202
    s3 = runtime.client("s3")
    deadline = time.time() + 5
    while time.time() < deadline:
        try:
            assert s3.get_object(Bucket=bucket, Key=key)["Body"].read() == b"$LATEST"
            return
        except s3.exceptions.NoSuchKey:
            time.sleep(0.05)
    raise AssertionError("the asynchronous invocation never wrote its object")


def test_event_failures_are_retried_then_sent_to_the_on_failure_destination(runtime: LocalRuntime, lam: Any) -> None:
    name = create(runtime, lam, "ufn-test-async")
    sqs = runtime.client("sqs")
    queue_url = sqs.create_queue(QueueName="ufn-test-failures")["QueueUrl"]
    queue_arn = sqs.get_queue_attributes(QueueUrl=queue_url, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
    lam.put_function_event_invoke_config(
        FunctionName=name, MaximumRetryAttempts=1, DestinationConfig={"OnFailure": {"Destination": queue_arn}}
    )
    assert call(lam, name, {"action": "fail", "n": 7}, InvocationType="Event")[0]["StatusCode"] == 202
    messages: list[dict[str, Any]] = []
    deadline = time.time() + 5
    while time.time() < deadline and not messages:
        messages = sqs.receive_message(QueueUrl=queue_url, WaitTimeSeconds=1).get("Messages", [])
    assert messages, "nothing reached the on-failure destination"
    record = json.loads(messages[0]["Body"])
    assert record["requestContext"]["condition"] == "RetriesExhausted"
    assert record["requestContext"]["approximateInvokeCount"] == 2
    assert record["requestContext"]["functionArn"].endswith(f":function:{name}:$LATEST")
    assert record["requestPayload"] == {"action": "fail", "n": 7}
    assert record["responseContext"] == {"statusCode": 200, "executedVersion": "$LATEST", "functionError": "Unhandled"}
    assert record["responsePayload"]["errorMessage"] == "user code failed"
    attempts = [line for line in runtime.logs.lines if line.function == name and line.message.startswith("handling")]
    assert len(attempts) == 2


def test_dry_run_answers_204_without_running(runtime: LocalRuntime, lam: Any, basic: str) -> None:
    before = len([line for line in runtime.logs.lines if line.function == basic])
    response, _ = call(lam, basic, {"action": "dry"}, InvocationType="DryRun")
    assert response["StatusCode"] == 204
    time.sleep(0.2)
    assert len([line for line in runtime.logs.lines if line.function == basic]) == before


def test_versions_updates_and_a_weighted_alias(runtime: LocalRuntime, lam: Any) -> None:
    name = create(runtime, lam, "ufn-test-versions")
    assert lam.publish_version(FunctionName=name)["Version"] == "1"
    lam.update_function_code(FunctionName=name, ZipFile=code_zip("v2"))
    lam.get_waiter("function_updated_v2").wait(FunctionName=name)
    assert call(lam, name)[1]["code"] == "v2"  # $LATEST runs the new code at once
    assert lam.publish_version(FunctionName=name)["Version"] == "2"
    response, payload = call(lam, name, Qualifier="1")
    assert (response["ExecutedVersion"], payload["version"], payload["code"]) == ("1", "1", "v1")
    lam.create_alias(
        FunctionName=name, Name="live", FunctionVersion="1", RoutingConfig={"AdditionalVersionWeights": {"2": 0.2}}
    )
    executed = []
    for _ in range(200):
        response, payload = call(lam, f"{name}:live")
        assert payload["version"] == response["ExecutedVersion"]
        assert payload["code"] == {"1": "v1", "2": "v2"}[payload["version"]]
        executed.append(response["ExecutedVersion"])
    assert 15 <= executed.count("2") <= 70, executed.count("2")  # 40 expected
    lam.update_alias(FunctionName=name, Name="live", FunctionVersion="2", RoutingConfig={})
    assert {call(lam, name, Qualifier="live")[0]["ExecutedVersion"] for _ in range(5)} == {"2"}


def test_unknown_function_or_qualifier_is_resource_not_found(lam: Any, basic: str) -> None:
    for kwargs in ({"FunctionName": "ufn-test-missing"}, {"FunctionName": basic, "Qualifier": "9"}):
        with pytest.raises(lam.exceptions.ResourceNotFoundException, match="Function not found"):
            lam.invoke(**kwargs)
    with pytest.raises(lam.exceptions.ResourceNotFoundException):
        lam.invoke(FunctionName=f"{basic}:nope")


def test_deleted_function_is_gone_and_its_worker_stopped(runtime: LocalRuntime, lam: Any) -> None:
    name = create(runtime, lam, "ufn-test-deleted")
    _, pid = call(lam, name, {"action": "pid"})
    lam.delete_function(FunctionName=name)
    with pytest.raises(lam.exceptions.ResourceNotFoundException):
        lam.invoke(FunctionName=name)
    deadline = time.time() + 5
    while os.path.exists(f"/proc/{pid}") and time.time() < deadline:
        time.sleep(0.05)
    assert not os.path.exists(f"/proc/{pid}")


def test_reserved_concurrency_zero_throttles(lam: Any, basic: str) -> None:
    lam.put_function_concurrency(FunctionName=basic, ReservedConcurrentExecutions=0)
    try:
        with pytest.raises(lam.exceptions.TooManyRequestsException):
            lam.invoke(FunctionName=basic)
    finally:
        lam.delete_function_concurrency(FunctionName=basic)
    assert call(lam, basic)[0]["StatusCode"] == 200


def test_oversized_payload_is_refused(lam: Any, basic: str) -> None:
    with pytest.raises(lam.exceptions.RequestTooLargeException):
        lam.invoke(FunctionName=basic, Payload=b'"' + b"x" * (6 * 1024 * 1024) + b'"')


def test_unsafe_zip_is_refused(runtime: LocalRuntime, lam: Any) -> None:
    name = create(runtime, lam, "ufn-test-unsafe", code=code_zip(entries={"../escape.py": "x = 1"}))
    with pytest.raises(lam.exceptions.InvalidZipFileException):
        lam.invoke(FunctionName=name)


def test_user_function_sees_only_its_own_environment(runtime: LocalRuntime, lam: Any) -> None:
    os.environ["PLATFORM_ONLY_SECRET"] = "must not leak"  # the runtime's own process
    try:
        name = create(runtime, lam, "ufn-test-env", Environment={"Variables": {"USER_SETTING": "1"}})
        _, env = call(lam, name, {"action": "env"})
    finally:
        del os.environ["PLATFORM_ONLY_SECRET"]
    assert env["USER_SETTING"] == "1" and env["AWS_LAMBDA_FUNCTION_VERSION"] == "$LATEST"
    assert env["AWS_ENDPOINT_URL"] == runtime.moto_url
    assert env["AWS_LAMBDA_LOG_GROUP_NAME"] == f"/aws/lambda/{name}"
    runtime_set = {
        "PATH", "LANG", "TZ", "AWS_REGION", "AWS_DEFAULT_REGION", "AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY",
        "AWS_SESSION_TOKEN", "AWS_ENDPOINT_URL", "AWS_EXECUTION_ENV", "AWS_LAMBDA_FUNCTION_NAME",
        "AWS_LAMBDA_FUNCTION_VERSION", "AWS_LAMBDA_FUNCTION_MEMORY_SIZE", "AWS_LAMBDA_LOG_GROUP_NAME",
        "AWS_LAMBDA_LOG_STREAM_NAME", "AWS_LAMBDA_INITIALIZATION_TYPE", "LAMBDA_TASK_ROOT", "_HANDLER",
        "_X_AMZN_TRACE_ID",
    }  # fmt: skip
    python_set = {"LC_CTYPE"}  # Python's own C-locale coercion (PEP 538), when en_US.UTF-8 is not installed
    assert set(env) - python_set == runtime_set | {"USER_SETTING"}


def test_only_the_asset_and_the_runtime_are_importable(lam: Any, basic: str) -> None:
    """As on Lambda: the platform's own packages, installed in the developer's environment (editable),
    are not there for a function whose asset does not carry them."""
    for module in ("lambdas.common", "tunnel_agent", "infrastructure"):
        assert call(lam, basic, {"action": "import", "module": module})[1] == "ModuleNotFoundError", module
    assert call(lam, basic, {"action": "import", "module": "boto3"})[1] == "imported"


def test_platform_handlers_reach_it_through_boto3(runtime: LocalRuntime, lam: Any, basic: str) -> None:
    caller = runtime.outputs[STACK]["LambdaCallerName"]
    response, answer = call(lam, caller, {"function": basic, "payload": {"via": "caller"}})
    assert response["ExecutedVersion"] == "$LATEST" and "FunctionError" not in response  # a template function
    assert answer["endpoint"] == runtime.lambda_url
    assert answer["status"] == 200 and answer["executed_version"] == "$LATEST"
    assert answer["payload"]["event"] == {"via": "caller"}
