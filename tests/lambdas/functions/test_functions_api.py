"""The Functions API with the deployer behind it, in moto: registry, versions, the live alias,
validation, and who may do what."""

from __future__ import annotations

import base64
import json
import os
import subprocess
import sys
from typing import Any

import pytest

from lambdas.functions import names, openapi
from lambdas.functions.store import FunctionStore
from tests.lambdas.functions.conftest import TABLE, Platform

SOURCE = "def handler(event, context):\n    return {'hello': event.get('name', 'world')}\n"
BASE = "/v1/orgs/acme/functions"


def create(platform: Platform, name: str = "hello", **fields: Any) -> dict[str, Any]:
    answer = platform.call("POST", BASE, {"name": name, "source": SOURCE, **fields})
    assert answer.status == 201, answer.body
    platform.drain()
    return dict(answer.body)


def publish(platform: Platform, name: str = "hello") -> dict[str, Any]:
    answer = platform.call("POST", f"{BASE}/{name}/versions", {})
    assert answer.status in (200, 201), answer.body
    platform.drain()
    return dict(platform.call("GET", f"{BASE}/{name}/versions/{answer.body['version']}").body)


def test_create_deploys_the_draft_as_lambda_latest(platform: Platform) -> None:
    created = create(platform, memory_mb=512, timeout_seconds=10, environment={"GREETING": "hi"}, tags=["demo"])
    assert created["status"] == "deploying" and created["revision"] == 1
    shown = platform.call("GET", f"{BASE}/{created['id']}").body
    assert shown["status"] == "deployed" and shown["error"] is None
    config = platform.lam.get_function(FunctionName=created["lambda_function"])
    assert created["lambda_function"] == f"ufn-test-acme-{created['id']}"
    cfg = config["Configuration"]
    assert (cfg["Runtime"], cfg["Architectures"], cfg["Handler"]) == ("python3.12", ["arm64"], "main.handler")
    assert (cfg["MemorySize"], cfg["Timeout"]) == (512, 10)
    assert cfg["Environment"]["Variables"] == {"GREETING": "hi"}
    assert cfg["Role"].endswith(":role/ufn-test-execution")
    assert "VpcConfig" not in cfg or not cfg["VpcConfig"].get("SubnetIds")
    assert config["Tags"] == {
        "managed-by": "platform-functions",
        "env": "test",
        "org": "acme",
        "function-id": created["id"],
    }
    group = platform.lam.meta.region_name and f"/aws/lambda/{created['lambda_function']}"
    import boto3

    groups = boto3.client("logs", region_name="eu-west-1").describe_log_groups(logGroupNamePrefix=group)["logGroups"]
    assert groups and groups[0]["retentionInDays"] == 7


def test_versions_are_immutable_numbered_and_unchanged_publish_returns_the_existing_one(platform: Platform) -> None:
    create(platform)
    first = publish(platform)
    assert (first["version"], first["status"], first["lambda_version"]) == (1, "published", "1")
    again = platform.call("POST", f"{BASE}/hello/versions", {})
    assert again.status == 200 and again.body["unchanged"] is True and again.body["version"] == 1
    assert platform.call("PATCH", f"{BASE}/hello", {"source": SOURCE.replace("world", "there")}).status == 200
    platform.drain()
    second = publish(platform)
    assert second["version"] == 2 and second["code_sha256"] != first["code_sha256"]
    listed = platform.call("GET", f"{BASE}/hello/versions").body["versions"]
    assert [v["version"] for v in listed] == [2, 1]
    # Version 1's snapshot did not change with the draft.
    assert platform.call("GET", f"{BASE}/hello/versions/1").body == first


def test_version_numbers_are_allocated_by_compare_and_set(platform: Platform) -> None:
    create(platform)
    store = FunctionStore(TABLE)
    fn = store.get("acme", platform.call("GET", f"{BASE}/hello").body["id"])
    assert fn is not None
    version = {
        "version": 1,
        "config": {},
        "config_hash": "x",
        "status": "publishing",
        "created_at": "",
        "created_by": "",
    }
    from lambdas.functions.audit import Entry
    from lambdas.functions.store import Conflict

    entry = Entry("acme", "fk0123456789", "version.publish", fn["id"])
    store.add_version(fn, dict(version), entry)
    with pytest.raises(Conflict):  # a second writer that read the same counter loses
        store.add_version(fn, {**version, "config_hash": "y"}, entry)
    assert store.get("acme", fn["id"])["version_counter"] == 1  # type: ignore[index]


def test_publish_waits_for_a_deployed_draft(platform: Platform) -> None:
    answer = platform.call("POST", BASE, {"name": "hello", "source": SOURCE})
    assert platform.call("POST", f"{BASE}/{answer.body['id']}/versions", {}).status == 409  # still deploying
    no_code = platform.call("POST", BASE, {"name": "empty"})
    assert no_code.status == 201 and no_code.body["status"] == "draft"
    assert platform.call("POST", f"{BASE}/empty/versions", {}).status == 409


def test_live_alias_canary_and_rollback(platform: Platform) -> None:
    created = create(platform)
    publish(platform)
    platform.call("PATCH", f"{BASE}/hello", {"source": SOURCE.replace("world", "v2")})
    platform.drain()
    publish(platform)
    assert platform.call("PUT", f"{BASE}/hello/aliases/live", {"version": 1}).status == 200
    platform.drain()
    canary = platform.call("PUT", f"{BASE}/hello/aliases/live", {"version": 1, "canary": {"version": 2, "weight": 0.1}})
    assert canary.status == 200 and canary.body["status"] == "updating"
    platform.drain()
    alias = platform.lam.get_alias(FunctionName=created["lambda_function"], Name="live")
    assert alias["FunctionVersion"] == "1" and alias["RoutingConfig"]["AdditionalVersionWeights"] == {"2": 0.1}
    shown = platform.call("GET", f"{BASE}/hello/aliases/live").body
    assert shown["status"] == "ready" and shown["canary"] == {"version": 2, "weight": 0.1}
    assert shown["previous"] == {"version": 1}
    platform.call("PUT", f"{BASE}/hello/aliases/live", {"version": 2})
    platform.drain()
    assert platform.lam.get_alias(FunctionName=created["lambda_function"], Name="live")["FunctionVersion"] == "2"
    back = platform.call("POST", f"{BASE}/hello/rollback")
    assert back.status == 200 and back.body["version"] == 1 and back.body["canary"] == {"version": 2, "weight": 0.1}
    platform.drain()
    alias = platform.lam.get_alias(FunctionName=created["lambda_function"], Name="live")
    assert alias["FunctionVersion"] == "1" and alias["RoutingConfig"]["AdditionalVersionWeights"] == {"2": 0.1}
    platform.call("POST", f"{BASE}/hello/rollback")
    platform.drain()
    assert platform.call("POST", f"{BASE}/hello/rollback").status == 409  # history exhausted


@pytest.mark.parametrize(
    ("body", "status", "message"),
    [
        ({"version": 9}, 404, "version 9 not found"),
        ({"version": 1, "canary": {"version": 1, "weight": 0.5}}, 400, "must differ"),
        ({"version": 1, "canary": {"version": 2, "weight": 1.5}}, 400, "between 0 and 1"),
        ({"version": "one"}, 400, "version number"),
    ],
)
def test_alias_refuses_bad_targets(platform: Platform, body: dict[str, Any], status: int, message: str) -> None:
    create(platform)
    publish(platform)
    answer = platform.call("PUT", f"{BASE}/hello/aliases/live", body)
    assert answer.status == status and message in answer.body["error"]


def test_delete_removes_lambda_versions_code_secrets_and_records(platform: Platform) -> None:
    created = create(platform, secret_environment={"TOKEN": "s3cr3t"})
    publish(platform)
    assert platform.call("DELETE", f"{BASE}/hello").status == 202
    assert platform.call("GET", f"{BASE}/hello").body["status"] == "deleting"
    platform.drain()
    assert platform.call("GET", f"{BASE}/hello").status == 404
    with pytest.raises(platform.lam.exceptions.ResourceNotFoundException):
        platform.lam.get_function(FunctionName=created["lambda_function"])
    assert platform.s3.list_objects_v2(Bucket="functions-code-test").get("KeyCount") == 0
    assert (
        platform.ssm.get_parameters_by_path(Path="/platform/test/functions/secrets", Recursive=True)["Parameters"] == []
    )
    # The name is free again, and the new function is a different one.
    again = create(platform)
    assert again["id"] != created["id"] and again["latest_version"] is None


def test_secret_variables_are_write_only(platform: Platform) -> None:
    created = create(platform, secret_environment={"API_TOKEN": "s3cr3t-value"}, environment={"MODE": "x"})
    for answer in (
        platform.call("GET", f"{BASE}/hello"),
        platform.call("GET", BASE),
        platform.call("GET", f"{BASE}/hello/versions"),
    ):
        assert "s3cr3t-value" not in json.dumps(answer.body)
    assert platform.call("GET", f"{BASE}/hello").body["secret_environment"] == ["API_TOKEN"]
    parameter = platform.ssm.get_parameter(
        Name=f"/platform/test/functions/secrets/acme/{created['id']}/API_TOKEN", WithDecryption=False
    )["Parameter"]
    assert parameter["Type"] == "SecureString"
    variables = platform.lam.get_function_configuration(FunctionName=created["lambda_function"])["Environment"]
    assert variables["Variables"] == {"MODE": "x", "API_TOKEN": "s3cr3t-value"}
    # Removing it redeploys without it.
    platform.call("PATCH", f"{BASE}/hello", {"secret_environment": {"API_TOKEN": None}})
    platform.drain()
    variables = platform.lam.get_function_configuration(FunctionName=created["lambda_function"])["Environment"]
    assert variables["Variables"] == {"MODE": "x"}


@pytest.mark.parametrize(
    ("body", "message"),
    [
        ({"name": "bad name"}, "name must be"),
        ({"name": "fn-abcdefghijkl"}, "must not look like a function id"),
        ({"name": "ok", "memory_mb": 64}, "memory_mb must be an integer from 128 to 1024"),
        ({"name": "ok", "timeout_seconds": 301}, "timeout_seconds must be an integer from 1 to 300"),
        ({"name": "ok", "vpc_config": {"SubnetIds": ["subnet-1"]}}, "vpc_config cannot be chosen"),
        ({"name": "ok", "layers": ["arn:aws:lambda:eu-west-1:1:layer:x:1"]}, "layers cannot be chosen"),
        ({"name": "ok", "environment": {"AWS_REGION": "x"}}, "'AWS_REGION' is not an allowed variable name"),
        ({"name": "ok", "environment": {"A": 1}}, "A must be a string"),
        ({"name": "ok", "environment": {"A": "x" * 5000}}, "Lambda allows 4096"),
        ({"name": "ok", "handler": "main"}, "must look like module.function"),
        ({"name": "ok", "source": "def handler(:\n"}, "main.py line 1"),
        ({"name": "ok", "tags": "x"}, "tags must be a list"),
    ],
)
def test_create_refuses_bad_input_with_a_clear_400(platform: Platform, body: dict[str, Any], message: str) -> None:
    answer = platform.call("POST", BASE, body)
    assert answer.status == 400, answer.body
    assert message in answer.body["error"]


def test_bad_bodies_and_duplicate_names(platform: Platform) -> None:
    assert platform.call("POST", BASE, raw_body="{not json").status == 400
    assert platform.call("POST", BASE, raw_body="[1, 2]").body == {"error": "request body must be a JSON object"}
    create(platform)
    assert platform.call("POST", BASE, {"name": "hello", "source": SOURCE}).status == 409
    assert platform.call("PATCH", f"{BASE}/hello", {"name": "other"}).status == 400
    early = platform.call("POST", BASE, {"name": "early", "code_upload_id": "0" * 32})
    assert early.status == 400 and "applies to an existing function" in early.body["error"]
    assert platform.call("GET", f"{BASE}/nope").status == 404
    assert platform.call("GET", f"{BASE}/hello/versions/abc").status == 400


def test_paging_with_an_opaque_cursor_and_a_tag_filter(platform: Platform) -> None:
    for index in range(5):
        assert (
            platform.call("POST", BASE, {"name": f"f{index}", "tags": ["even" if index % 2 == 0 else "odd"]}).status
            == 201
        )
    seen, cursor = [], None
    while True:
        page = platform.call("GET", BASE, query=f"limit=2&cursor={cursor}" if cursor else "limit=2").body
        seen += [f["name"] for f in page["functions"]]
        cursor = page["next_cursor"]
        if not cursor:
            break
    assert sorted(seen) == [f"f{i}" for i in range(5)]
    evens = platform.call("GET", BASE, query="tag=even").body["functions"]
    assert sorted(f["name"] for f in evens) == ["f0", "f2", "f4"]
    assert platform.call("GET", BASE, query="cursor=garbage").status == 400
    # A cursor from another org's listing is refused, not followed.
    platform.call("POST", "/v1/orgs/other/functions", {"name": "x1"}, org="other")
    platform.call("POST", "/v1/orgs/other/functions", {"name": "x2"}, org="other")
    foreign = platform.call("GET", "/v1/orgs/other/functions", org="other", query="limit=1").body["next_cursor"]
    assert platform.call("GET", BASE, query=f"cursor={foreign}").status == 400
    assert platform.call("GET", BASE, query="limit=1000").status == 400


LATER = ["lambdas.functions.callback_routes", "lambdas.functions.invoke_routes", "lambdas.functions.org_routes"]


def test_a_cold_start_loads_the_registry_routes_only_and_the_rest_on_first_need() -> None:
    """What a fresh interpreter has loaded after importing the handler, and after a request that
    only a later route serves (answered by that route: its 404 names the invocation)."""
    code = (
        "import json, sys\n"
        "from lambdas.functions import api\n"
        f"later = {LATER!r}\n"
        "print(sorted(m for m in later if m in sys.modules))\n"
        "event = json.load(open('tests/events/functions/http_api_authorized.json'))\n"
        "event['rawPath'] = event['requestContext']['http']['path'] = '/v1/orgs/acme/invocations/iv-nope'\n"
        "print(api.resolve(event, None)['body'])\n"
        "print(sorted(m for m in later if m in sys.modules))\n"
    )
    env = {**os.environ, "AWS_DEFAULT_REGION": "eu-west-1", names.ENV_TABLE: TABLE}
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True, timeout=60)
    before, body, after = out.stdout.strip().splitlines()[-3:]
    assert before == "[]"
    assert after == repr(LATER)
    assert json.loads(body) == {"error": "invocation 'iv-nope' not found"}


def test_openapi_document_is_served_and_current(platform: Platform) -> None:
    answer = platform.call("GET", "/v1/openapi.json")
    assert answer.status == 200
    assert answer.body == json.loads(openapi.generate())
    paths = answer.body["paths"]
    for path in (
        "/v1/orgs/{org}/functions",
        "/v1/orgs/{org}/functions/{fid}",
        "/v1/orgs/{org}/functions/{fid}/versions",
        "/v1/orgs/{org}/functions/{fid}/aliases/live",
        "/v1/orgs/{org}/functions/{fid}/rollback",
        "/v1/orgs/{org}/functions/{fid}/code-upload",
        "/v1/orgs/{org}/functions/{fid}/invoke",
    ):
        assert path in paths, path


@pytest.mark.parametrize("body", [base64.b64encode(b"\xff\xfe{not utf-8").decode(), "%%% not base64 %%%"])
def test_a_body_that_is_not_utf8_or_not_base64_is_400(platform: Platform, body: str) -> None:
    import copy

    from lambdas.functions import api
    from tests.lambdas.functions.conftest import FakeContext, load_event

    event = copy.deepcopy(load_event("http_api_authorized.json"))
    event["requestContext"]["http"]["method"] = "POST"
    event.update(body=body, isBase64Encoded=True)
    answer = api.handler(event, FakeContext())
    assert answer["statusCode"] == 400 and json.loads(answer["body"]) == {"error": "request body is not valid JSON"}


def test_a_failed_publish_can_be_retried(platform: Platform) -> None:
    created = create(platform)
    # Lambda refuses the publish: $LATEST no longer holds the draft's code (as if changed behind
    # the platform's back), so the version ends failed with the reason.
    platform.lam.update_function_code(FunctionName=created["lambda_function"], ZipFile=b"PK\x05\x06" + b"\0" * 18)
    answer = platform.call("POST", f"{BASE}/hello/versions", {})
    platform.drain()
    failed = platform.call("GET", f"{BASE}/hello/versions/{answer.body['version']}").body
    assert failed["status"] == "failed" and "draft changed" in failed["error"]
    # Put the draft back (a redeploy), then publishing again makes a new version, not "unchanged".
    platform.call("PATCH", f"{BASE}/hello", {"memory_mb": 300})
    platform.call("PATCH", f"{BASE}/hello", {"memory_mb": 256})
    platform.drain()
    again = platform.call("POST", f"{BASE}/hello/versions", {})
    assert again.status == 201 and again.body["version"] == failed["version"] + 1
    platform.drain()
    assert platform.call("GET", f"{BASE}/hello/versions/{again.body['version']}").body["status"] == "published"
