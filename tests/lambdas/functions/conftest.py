"""The Functions handlers in moto: the table, code bucket, deploy queue and execution role the stack
declares, an API caller holding an authorizer verdict, and a deployer that drains the queue."""

from __future__ import annotations

import copy
import json
import os
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import boto3
import pytest
from moto import mock_aws

from lambdas.functions import names
from tests.lambdas.common import fakes
from tests.lambdas.functions.stack_schema import create_functions_table, create_idempotency_table

os.environ.setdefault("POWERTOOLS_SERVICE_NAME", "functions")
os.environ.setdefault("POWERTOOLS_METRICS_NAMESPACE", "PlatformTest")
os.environ.setdefault("POWERTOOLS_TRACE_DISABLED", "true")

REGION = "eu-west-1"
TABLE = "functions-test"
BUCKET = "functions-code-test"
QUEUE = "functions-deploy-test.fifo"
RESULTS_QUEUE = "functions-results-test"
BATCH_QUEUE = "functions-batch-test"
IDEMPOTENCY_TABLE = "functions-idempotency-test"


def load_event(name: str) -> dict[str, Any]:
    return fakes.load_event("functions", name)


@dataclass
class FakeContext(fakes.FakeContext):
    function_name: str = "functions-test"
    region: str = REGION
    aws_request_id: str = "5e0c8a4d-7f1b-4c2e-9a3d-1b2c3d4e5f60"


@dataclass
class Answer:
    status: int
    body: Any
    headers: dict[str, str]


def create_resources() -> str:
    """The stack's data resources, by the contract's names; returns the execution role's ARN."""
    ddb = boto3.client("dynamodb", region_name=REGION)
    create_functions_table(ddb, TABLE)
    create_idempotency_table(ddb, IDEMPOTENCY_TABLE)
    boto3.client("s3", region_name=REGION).create_bucket(
        Bucket=BUCKET, CreateBucketConfiguration={"LocationConstraint": REGION}
    )
    boto3.client("sqs", region_name=REGION).create_queue(
        QueueName=QUEUE, Attributes={"FifoQueue": "true", "VisibilityTimeout": "0"}
    )
    for queue in (RESULTS_QUEUE, BATCH_QUEUE):
        boto3.client("sqs", region_name=REGION).create_queue(QueueName=queue, Attributes={"VisibilityTimeout": "0"})
    boto3.client("secretsmanager", region_name=REGION).create_secret(
        Name="functions-callback-key-test", SecretString="k" * 64
    )
    role = boto3.client("iam", region_name=REGION).create_role(
        RoleName="ufn-test-execution",
        AssumeRolePolicyDocument=json.dumps(
            {
                "Version": "2012-10-17",
                "Statement": [
                    {"Effect": "Allow", "Principal": {"Service": "lambda.amazonaws.com"}, "Action": "sts:AssumeRole"}
                ],
            }
        ),
    )
    return str(role["Role"]["Arn"])


class Platform:
    """Calls the API as a key holder would (the authorizer's verdict in the event) and runs the
    deployer over whatever the API queued, as the SQS event source mapping would."""

    def __init__(self) -> None:
        self.sqs = boto3.client("sqs", region_name=REGION)
        self.queue_url = self.sqs.get_queue_url(QueueName=QUEUE)["QueueUrl"]
        self.lam = boto3.client("lambda", region_name=REGION)
        self.s3 = boto3.client("s3", region_name=REGION)
        self.ssm = boto3.client("ssm", region_name=REGION)

    def call(
        self,
        method: str,
        path: str,
        body: Any = None,
        *,
        org: str = "acme",
        role: str = "admin",
        function: str = "",
        key_id: str = "fk0123456789",
        query: str = "",
        raw_body: str | None = None,
        headers: dict[str, str] | None = None,
        no_key: bool = False,
    ) -> Answer:
        from lambdas.functions import api

        event = copy.deepcopy(load_event("http_api_authorized.json"))
        event["rawPath"] = event["requestContext"]["http"]["path"] = path
        event["requestContext"]["http"]["method"] = method
        event["rawQueryString"] = query
        if query:
            event["queryStringParameters"] = dict(p.split("=", 1) for p in query.split("&"))
        event["requestContext"]["authorizer"]["lambda"] = {
            "org": org,
            "role": role,
            "key_id": key_id,
            "function": function,
        }
        if no_key:  # routes without the key authorizer (callbacks) get no verdict at all
            del event["requestContext"]["authorizer"]
            del event["headers"]["authorization"]
        event["headers"].update({k.lower(): v for k, v in (headers or {}).items()})
        if raw_body is not None:
            event["body"] = raw_body
        elif body is not None:
            event["body"] = json.dumps(body)
        result = api.handler(event, FakeContext())
        text = result.get("body") or ""
        return Answer(result["statusCode"], json.loads(text) if text else None, result.get("headers") or {})

    def drain(self) -> int:
        """Run the deployer over every queued message (in order); returns how many it handled."""
        from lambdas.functions import deployer

        handled = 0
        while True:
            messages = self.sqs.receive_message(
                QueueUrl=self.queue_url, MaxNumberOfMessages=10, AttributeNames=["All"]
            ).get("Messages", [])
            if not messages:
                return handled
            event = {"Records": [sqs_record(m) for m in messages]}
            result = deployer.handler(event, FakeContext(function_name="functions-deployer-test"))
            failed = {f["itemIdentifier"] for f in result.get("batchItemFailures", [])}
            for message in messages:
                if message["MessageId"] not in failed:
                    self.sqs.delete_message(QueueUrl=self.queue_url, ReceiptHandle=message["ReceiptHandle"])
                    handled += 1
            if failed:
                raise AssertionError(f"deployer failed messages: {failed}")

    def ddb_item(self, pk: str, sk: str) -> dict[str, Any]:
        """The raw stored item (to check what is, and is not, at rest)."""
        ddb = boto3.client("dynamodb", region_name=REGION)
        return dict(ddb.get_item(TableName=TABLE, Key={"pk": {"S": pk}, "sk": {"S": sk}})["Item"])


def sqs_record(message: dict[str, Any]) -> dict[str, Any]:
    template = load_event("sqs_deploy_message.json")["Records"][0]
    return {
        **template,
        "messageId": message["MessageId"],
        "receiptHandle": message["ReceiptHandle"],
        "body": message["Body"],
        "attributes": {**template["attributes"], **message.get("Attributes", {})},
    }


@pytest.fixture
def platform(monkeypatch: pytest.MonkeyPatch) -> Iterator[Platform]:
    monkeypatch.setenv("AWS_DEFAULT_REGION", REGION)
    monkeypatch.setenv("AWS_REGION", REGION)
    with mock_aws():
        role_arn = create_resources()
        sqs = boto3.client("sqs", region_name=REGION)
        queue_url = sqs.get_queue_url(QueueName=QUEUE)["QueueUrl"]
        results_url = sqs.get_queue_url(QueueName=RESULTS_QUEUE)["QueueUrl"]
        batch_url = sqs.get_queue_url(QueueName=BATCH_QUEUE)["QueueUrl"]
        secret_arn = boto3.client("secretsmanager", region_name=REGION).describe_secret(
            SecretId="functions-callback-key-test"
        )["ARN"]
        for name, value in {
            names.ENV_TABLE: TABLE,
            names.ENV_CODE_BUCKET: BUCKET,
            names.ENV_DEPLOY_QUEUE_URL: queue_url,
            names.ENV_PLATFORM_ENV: "test",
            names.ENV_EXECUTION_ROLE_ARN: role_arn,
            names.ENV_SECRET_PREFIX: "/platform/test/functions/secrets",
            names.ENV_MAX_MEMORY_MB: "1024",
            names.ENV_MAX_TIMEOUT_SECONDS: "300",
            names.ENV_LOG_RETENTION_DAYS: "7",
            names.ENV_RESULTS_QUEUE_URL: results_url,
            names.ENV_RESULTS_QUEUE_ARN: f"arn:aws:sqs:{REGION}:123456789012:{RESULTS_QUEUE}",
            names.ENV_BATCH_QUEUE_URL: batch_url,
            names.ENV_IDEMPOTENCY_TABLE: IDEMPOTENCY_TABLE,
            names.ENV_CALLBACK_KEY_SECRET_ARN: secret_arn,
            names.ENV_INVOCATION_RETENTION_DAYS: "30",
        }.items():
            monkeypatch.setenv(name, value)
        yield Platform()
