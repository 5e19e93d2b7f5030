"""scripts/logs.py against moto: function resolution from stacks, filtering, rendering, errors."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator

import boto3
import pytest
from moto import mock_aws

from scripts import logs

TEMPLATE = {
    "Resources": {
        "Role": {
            "Type": "AWS::IAM::Role",
            "Properties": {
                "AssumeRolePolicyDocument": {
                    "Statement": [
                        {
                            "Effect": "Allow",
                            "Principal": {"Service": "lambda.amazonaws.com"},
                            "Action": "sts:AssumeRole",
                        }
                    ]
                }
            },
        },
        "Fn": {
            "Type": "AWS::Lambda::Function",
            "Properties": {
                "FunctionName": "qr-upload-http-api-dev",
                "Runtime": "python3.12",
                "Handler": "index.handler",
                "Role": {"Fn::GetAtt": ["Role", "Arn"]},
                "Code": {"ZipFile": "def handler(e, c): pass"},
            },
        },
    }
}


@pytest.fixture
def aws() -> Iterator[None]:
    with mock_aws():
        boto3.client("cloudformation").create_stack(StackName="QrUpload-dev", TemplateBody=json.dumps(TEMPLATE))
        client = boto3.client("logs")
        client.create_log_group(logGroupName="/aws/lambda/qr-upload-http-api-dev")
        client.create_log_stream(logGroupName="/aws/lambda/qr-upload-http-api-dev", logStreamName="s1")
        now = int(time.time() * 1000)
        record = {
            "level": "INFO",
            "message": "session created",
            "timestamp": "2026-11-23 19:00:00,000+0000",
            "service": "qr-upload-http-api",
            "correlation_id": "req-123",
            "sessionId": "abc",
        }
        client.put_log_events(
            logGroupName="/aws/lambda/qr-upload-http-api-dev",
            logStreamName="s1",
            logEvents=[
                {"timestamp": now - 1000, "message": "START RequestId: req-123 Version: $LATEST"},
                {"timestamp": now - 500, "message": json.dumps(record)},
                {"timestamp": now - 400, "message": json.dumps({**record, "message": "upload url issued"})},
            ],
        )
        yield


def test_short_name_resolves_and_events_render_as_one_line(aws: None, capsys: pytest.CaptureFixture[str]) -> None:
    assert logs.main(["--env", "dev", "qr-upload-http-api", "--since", "5m"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert len(lines) == 3
    assert lines[0].endswith("START RequestId: req-123 Version: $LATEST")
    assert "INFO    [req-123] session created sessionId=abc" in lines[1]
    assert "upload url issued" in lines[2]


def test_filter_keeps_only_matching_events(aws: None, capsys: pytest.CaptureFixture[str]) -> None:
    assert logs.main(["--env", "dev", "http-api", "--filter", "upload url"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert len(lines) == 1 and "upload url issued" in lines[0]


def test_unknown_function_is_one_clear_line(aws: None, capsys: pytest.CaptureFixture[str]) -> None:
    assert logs.main(["--env", "dev", "nope"]) == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert err == ["error: no function matching 'nope' in environment 'dev' (deployed: qr-upload-http-api-dev)"]


def test_other_environment_has_no_functions(aws: None, capsys: pytest.CaptureFixture[str]) -> None:
    assert logs.main(["--env", "prod", "qr-upload-http-api"]) == 1
    assert "deployed: none" in capsys.readouterr().err


def test_bad_since_is_rejected(aws: None, capsys: pytest.CaptureFixture[str]) -> None:
    assert logs.main(["qr", "--since", "yesterday"]) == 1
    assert "--since must look like" in capsys.readouterr().err


def test_ambiguous_name_lists_candidates() -> None:
    with pytest.raises(logs.LogsError, match="several functions: a-dev, ab-dev"):
        logs.resolve_function(["a-dev", "ab-dev"], "dev", "dev")


def test_exception_is_rendered_indented() -> None:
    line = logs.render(0, json.dumps({"level": "ERROR", "message": "boom", "exception": "Traceback\nValueError"}))
    assert line.startswith("1970-01-01T00:00:00.000Z ERROR   [-] boom")
    assert line.endswith("\n    Traceback\n    ValueError")


def test_user_functions_of_the_functions_system_are_found_by_prefix_or_id(
    aws: None, capsys: pytest.CaptureFixture[str]
) -> None:
    import io
    import zipfile

    code = io.BytesIO()
    with zipfile.ZipFile(code, "w") as archive:
        archive.writestr("main.py", "def handler(e, c):\n    return 1\n")
    role = boto3.client("iam").create_role(RoleName="ufn-dev-execution", AssumeRolePolicyDocument="{}")["Role"]["Arn"]
    name = "ufn-dev-acme-fn-abcdefghijkl"
    boto3.client("lambda").create_function(
        FunctionName=name, Runtime="python3.12", Handler="main.handler", Role=role, Code={"ZipFile": code.getvalue()}
    )
    client = boto3.client("logs")
    client.create_log_group(logGroupName=f"/aws/lambda/{name}")
    client.create_log_stream(logGroupName=f"/aws/lambda/{name}", logStreamName="s1")
    client.put_log_events(
        logGroupName=f"/aws/lambda/{name}",
        logStreamName="s1",
        logEvents=[{"timestamp": int(time.time() * 1000) - 100, "message": "hello from a user function"}],
    )
    assert logs.main(["--env", "dev", "fn-abcdefghijkl"]) == 0
    assert capsys.readouterr().out.strip().endswith("hello from a user function")
    assert logs.main(["--env", "prod", name]) == 1  # another environment's prefix
