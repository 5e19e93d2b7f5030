"""Event builders and readers shared by the QR-upload tests."""

from __future__ import annotations

import copy
import json
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from functools import cache
from typing import Any
from urllib.parse import parse_qsl, quote, unquote, urlencode

import boto3

from tests.lambdas.common import fakes

REGION = "eu-west-1"
TABLE = "qr-upload-sessions-test"
BUCKET = "qr-upload-test-bucket"
DOMAIN = "a1b2c3d4e5.execute-api.eu-west-1.amazonaws.com"
# The photo links' distribution, public key id and signing-key secret, as the stack wires them.
PHOTO_LINKS_URL = "https://d111111abcdef8.cloudfront.net"
KEY_PAIR_ID = "K2JCJMDEHXQW5F"
SIGNING_SECRET = "qr-upload-photo-link-key-test"


def load_event(name: str) -> dict[str, Any]:
    return fakes.load_event("qr_upload", name)


@dataclass
class FakeContext(fakes.FakeContext):
    function_name: str = "qr-upload-test"
    region: str = REGION
    aws_request_id: str = "6f1b2c3d-0000-4000-8000-000000000001"


@dataclass
class HttpResult:
    status: int
    headers: dict[str, str]
    body: str

    @property
    def json(self) -> Any:
        return json.loads(self.body)


def http_event(
    fixture: str,
    *,
    method: str | None = None,
    path: str | None = None,
    query: dict[str, str] | None = None,
    body: str | None = None,
    headers: dict[str, str] | None = None,
    drop_headers: tuple[str, ...] = (),
) -> dict[str, Any]:
    """A fixture event with its request line changed consistently (rawPath, path, query, route)."""
    event = copy.deepcopy(load_event(fixture))
    stage = event["requestContext"]["stage"]
    if method:
        event["requestContext"]["http"]["method"] = method
    if path is not None:
        raw = path if stage == "$default" else f"/{stage}{path}"
        event["rawPath"] = raw
        event["requestContext"]["http"]["path"] = raw
        event["routeKey"] = event["requestContext"]["routeKey"] = "$default"
        event.pop("pathParameters", None)
    if query is not None:
        event["rawQueryString"] = urlencode(query)
        if query:
            event["queryStringParameters"] = dict(query)
        else:
            event.pop("queryStringParameters", None)
    if body is not None:
        event["body"] = body
    for name in drop_headers:
        event["headers"].pop(name, None)
    event["headers"].update(headers or {})
    return event


def status_event(session_id: str, token: str | None) -> dict[str, Any]:
    event = http_event("http_session_status.json", drop_headers=("authorization",))
    raw = f"/dev/sessions/{quote(session_id, safe='')}"
    event["rawPath"] = event["requestContext"]["http"]["path"] = raw
    event["pathParameters"] = {"sessionId": session_id}
    if token is not None:
        event["headers"]["authorization"] = f"Bearer {token}"
    return event


def call_http(event: dict[str, Any]) -> HttpResult:
    from lambdas.qr_upload import http_api

    response = http_api.handler(event, FakeContext())
    return HttpResult(response["statusCode"], response.get("headers") or {}, response.get("body") or "")


def call_events(event: dict[str, Any]) -> dict[str, Any]:
    from lambdas.qr_upload import websocket_events

    result: dict[str, Any] = websocket_events.handler(event, FakeContext())
    return result


def create_session(qr: bool = False) -> dict[str, Any]:
    result = call_http(http_event("http_create_session.json", body=json.dumps({"qr": qr})))
    assert result.status == 200, result.body
    session: dict[str, Any] = result.json
    return session


def request_upload_url(session_id: str, content_type: str = "image/jpeg") -> HttpResult:
    return call_http(http_event("http_upload_url.json", query={"sessionId": session_id, "contentType": content_type}))


def connect_event(session_id: str | None, token: str | None, connection_id: str) -> dict[str, Any]:
    event = copy.deepcopy(load_event("ws_connect.json"))
    params = {k: v for k, v in (("sessionId", session_id), ("token", token)) if v is not None}
    event["queryStringParameters"] = params or None
    event["multiValueQueryStringParameters"] = {k: [v] for k, v in params.items()} or None
    event["requestContext"]["connectionId"] = connection_id
    return event


def disconnect_event(connection_id: str) -> dict[str, Any]:
    event = copy.deepcopy(load_event("ws_disconnect.json"))
    event["requestContext"]["connectionId"] = connection_id
    return event


def s3_record(
    key: str, *, encode: bool = True, version_id: str | None = None, at: float | None = None
) -> dict[str, Any]:
    """One S3 record for `key`, URL-encoded the way S3 writes keys into events; a versioned
    bucket's records carry the object's versionId. eventTime is now unless `at` (epoch) says."""
    record: dict[str, Any] = copy.deepcopy(load_event("s3_object_created.json")["Records"][0])
    record["s3"]["object"]["key"] = quote(key, safe="/").replace("%20", "+") if encode else key
    if version_id is not None:
        record["s3"]["object"]["versionId"] = version_id
    stamp = datetime.fromtimestamp(time.time() if at is None else at, UTC)
    record["eventTime"] = stamp.strftime("%Y-%m-%dT%H:%M:%S.") + f"{stamp.microsecond // 1000:03d}Z"
    return record


def s3_event(*keys: str) -> dict[str, Any]:
    return {"Records": [s3_record(key, version_id=latest_version(key)) for key in keys]}


def latest_version(key: str) -> str | None:
    """The current version of an upload in the (versioned) bucket, None if there is none."""
    try:
        version: str = _s3().head_object(Bucket=BUCKET, Key=key)["VersionId"]
    except Exception:
        return None
    return version


@cache
def table() -> Any:
    return boto3.resource("dynamodb", region_name=REGION).Table(TABLE)


@cache
def _s3() -> Any:
    return boto3.client("s3", region_name=REGION)


def item(session_id: str) -> dict[str, Any]:
    found: dict[str, Any] = table().get_item(Key={"sessionId": session_id}, ConsistentRead=True)["Item"]
    return found


def put_object(key: str, body: bytes, content_type: str) -> str:
    """Store an upload as the phone's POST would; returns its version id."""
    version: str = _s3().put_object(Bucket=BUCKET, Key=key, Body=body, ContentType=content_type)["VersionId"]
    return version


def metrics_from(output: str) -> dict[str, float]:
    """Sum of each metric emitted as CloudWatch EMF lines in captured stdout."""
    totals: dict[str, float] = {}
    for line in output.splitlines():
        try:
            blob = json.loads(line)
        except ValueError:
            continue
        if not isinstance(blob, dict) or "_aws" not in blob:
            continue
        for directive in blob["_aws"]["CloudWatchMetrics"]:
            for metric in directive["Metrics"]:
                value = blob[metric["Name"]]
                values = value if isinstance(value, list) else [value]
                totals[metric["Name"]] = totals.get(metric["Name"], 0) + sum(values)
    return totals


@cache
def aws_client(service: str, endpoint_url: str | None = None) -> Any:
    return boto3.client(service, region_name=REGION, endpoint_url=endpoint_url)  # type: ignore[call-overload]


def create_resources(endpoint_url: str | None = None, *, table: str = TABLE, bucket: str = BUCKET) -> None:
    """The table and bucket exactly as the stack declares them (key, GSI, TTL)."""
    dynamodb = aws_client("dynamodb", endpoint_url)
    dynamodb.create_table(
        TableName=table,
        BillingMode="PAY_PER_REQUEST",
        AttributeDefinitions=[
            {"AttributeName": "sessionId", "AttributeType": "S"},
            {"AttributeName": "wsConnectionId", "AttributeType": "S"},
        ],
        KeySchema=[{"AttributeName": "sessionId", "KeyType": "HASH"}],
        GlobalSecondaryIndexes=[
            {
                "IndexName": "wsConnectionId-index",
                "KeySchema": [{"AttributeName": "wsConnectionId", "KeyType": "HASH"}],
                "Projection": {"ProjectionType": "ALL"},
            }
        ],
    )
    dynamodb.update_time_to_live(
        TableName=table, TimeToLiveSpecification={"Enabled": True, "AttributeName": "expiresAt"}
    )
    s3 = aws_client("s3", endpoint_url)
    s3.create_bucket(Bucket=bucket, CreateBucketConfiguration={"LocationConstraint": REGION})
    s3.put_bucket_versioning(Bucket=bucket, VersioningConfiguration={"Status": "Enabled"})
    aws_client("secretsmanager", endpoint_url).create_secret(Name=SIGNING_SECRET, SecretString=signing_key()[1])


@cache
def signing_key() -> tuple[str, str]:
    """(public key PEM, private key PEM) of one key pair made by the custom resource's own code,
    once per test run (pure-Python RSA key generation takes seconds)."""
    from moto import mock_aws

    from lambdas.qr_upload import signing_key as custom_resource

    with mock_aws():
        client = boto3.client("secretsmanager", region_name=REGION)
        arn = client.create_secret(Name="key-maker", SecretString="placeholder")["ARN"]
        public = custom_resource.ensure_key(arn)
        return public, client.get_secret_value(SecretId=arn)["SecretString"]


def verify_link(url: str, public_pem: str | None = None) -> dict[str, str]:
    """What CloudFront checks of a canned-policy signed URL: the signature over the URL as it is
    (without the signing parameters) and its expiry. Returns the other query parameters."""
    import rsa

    from scripts.local.cloudfront import SIGNING_PARAMS, cloudfront_b64decode

    base, _, query = url.partition("?")
    params = dict(parse_qsl(query))
    kept = [p for p in query.split("&") if unquote(p.split("=", 1)[0]) not in SIGNING_PARAMS]
    resource = base + ("?" + "&".join(kept) if kept else "")
    statement = {"Resource": resource, "Condition": {"DateLessThan": {"AWS:EpochTime": int(params["Expires"])}}}
    policy = json.dumps({"Statement": [statement]}, separators=(",", ":")).encode()
    key = rsa.PublicKey.load_pkcs1_openssl_pem((public_pem or signing_key()[0]).encode())
    rsa.verify(policy, cloudfront_b64decode(params["Signature"]), key)  # raises if it does not match
    assert params["Key-Pair-Id"] == KEY_PAIR_ID
    assert int(params["Expires"]) > time.time()
    return {k: v for k, v in params.items() if k not in SIGNING_PARAMS}
