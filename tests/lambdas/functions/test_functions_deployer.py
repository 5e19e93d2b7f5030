"""The deployer: uploaded zips validated before anything is created, redelivered and superseded
messages changing nothing, and what it creates in Lambda."""

from __future__ import annotations

import json
from typing import Any

import boto3
import pytest
import requests

from lambdas.functions import deployer
from lambdas.functions.deploy_queue import DeployMessage
from tests.lambdas.functions.conftest import BUCKET, FakeContext, Platform, load_event
from tests.lambdas.functions.stack_schema import bomb, zip_of

BASE = "/v1/orgs/acme/functions"
HANDLER = b"def handler(event, context):\n    return {'ok': True}\n"


def upload(platform: Platform, name: str, data: bytes) -> dict[str, Any]:
    """The CLI's path: presigned POST (form fields + file, as a browser or curl sends it), then PATCH."""
    grant = platform.call("POST", f"{BASE}/{name}/code-upload")
    assert grant.status == 201, grant.body
    body = grant.body
    assert body["max_bytes"] == 50 * 1024 * 1024
    response = requests.post(
        body["url"], data=body["fields"], files={"file": ("code.zip", data, "application/zip")}, timeout=10
    )
    assert response.status_code in (200, 204), response.text
    return dict(platform.call("PATCH", f"{BASE}/{name}", {"code_upload_id": body["upload_id"]}).body)


def test_presigned_post_policy_pins_key_type_and_size(platform: Platform) -> None:
    platform.call("POST", BASE, {"name": "zipped"})
    grant = platform.call("POST", f"{BASE}/zipped/code-upload").body
    import base64

    policy = json.loads(base64.b64decode(grant["fields"]["policy"]))
    conditions = policy["conditions"]
    fid = platform.call("GET", f"{BASE}/zipped").body["id"]
    assert {"key": f"uploads/acme/{fid}/{grant['upload_id']}.zip"} in conditions
    assert ["content-length-range", 1, 50 * 1024 * 1024] in conditions
    assert {"Content-Type": "application/zip"} in conditions


def test_a_valid_zip_upload_deploys(platform: Platform) -> None:
    platform.call("POST", BASE, {"name": "zipped", "handler": "app.main.handler"})
    patched = upload(platform, "zipped", zip_of({"app/__init__.py": b"", "app/main.py": HANDLER}))
    assert patched["status"] == "deploying" and patched["code_sha256"] is None  # validated by the deployer
    platform.drain()
    shown = platform.call("GET", f"{BASE}/zipped").body
    assert shown["status"] == "deployed" and len(shown["code_sha256"]) == 64
    keys = [o["Key"] for o in platform.s3.list_objects_v2(Bucket=BUCKET)["Contents"]]
    assert keys == [f"code/acme/{shown['id']}/{shown['code_sha256']}.zip"]  # the upload was moved


@pytest.mark.parametrize(
    ("entries", "symlink", "reason"),
    [
        ({"main.py": HANDLER}, "evil.py", "symbolic link"),
        ({"main.py": HANDLER, "../../escape.py": b"x"}, None, "contains '..'"),
        ({"main.py": HANDLER, "/tmp/abs.py": b"x"}, None, "is an absolute path"),
        ({"lib.py": HANDLER}, None, "handler module not found"),
    ],
)
def test_hostile_zips_end_failed_with_their_reason_and_create_nothing(
    platform: Platform, entries: dict[str, bytes], symlink: str | None, reason: str
) -> None:
    platform.call("POST", BASE, {"name": "zipped"})
    upload(platform, "zipped", zip_of(entries, symlink))
    platform.drain()
    shown = platform.call("GET", f"{BASE}/zipped").body
    assert shown["status"] == "failed" and reason in shown["error"], shown
    with pytest.raises(platform.lam.exceptions.ResourceNotFoundException):
        platform.lam.get_function(FunctionName=shown["lambda_function"])


def test_a_zip_bomb_ends_failed(platform: Platform) -> None:
    # 260 MB of zeros compresses to about 250 KB: refused from its declared size, never inflated.
    platform.call("POST", BASE, {"name": "bomb"})
    upload(platform, "bomb", bomb(HANDLER))
    platform.drain()
    shown = platform.call("GET", f"{BASE}/bomb").body
    assert shown["status"] == "failed" and "250 MB" in shown["error"]


def test_an_expired_upload_id_is_refused(platform: Platform) -> None:
    platform.call("POST", BASE, {"name": "zipped"})
    answer = platform.call("PATCH", f"{BASE}/zipped", {"code_upload_id": "0" * 32})
    assert answer.status == 409 and "nothing was uploaded" in answer.body["error"]
    assert platform.call("PATCH", f"{BASE}/zipped", {"code_upload_id": "../x"}).status == 400


def run(message: DeployMessage) -> dict[str, Any]:
    record = load_event("sqs_deploy_message.json")
    record["Records"][0]["body"] = message.body()
    return dict(deployer.handler(record, FakeContext(function_name="functions-deployer-test")))


def test_redelivered_messages_change_nothing(platform: Platform) -> None:
    created = platform.call("POST", BASE, {"name": "hello", "source": HANDLER.decode()}).body
    platform.drain()
    before = platform.lam.get_function_configuration(FunctionName=created["lambda_function"])
    assert run(DeployMessage("deploy", "acme", created["id"], 1)) == {"batchItemFailures": []}
    after = platform.lam.get_function_configuration(FunctionName=created["lambda_function"])
    assert after["LastModified"] == before["LastModified"]  # nothing was updated again
    platform.call("POST", f"{BASE}/hello/versions", {})
    platform.drain()
    run(DeployMessage("publish", "acme", created["id"], 1))
    versions = platform.lam.list_versions_by_function(FunctionName=created["lambda_function"])["Versions"]
    assert [v["Version"] for v in versions] == ["$LATEST", "1"]


def test_a_superseded_revision_is_skipped(platform: Platform) -> None:
    created = platform.call("POST", BASE, {"name": "hello", "source": HANDLER.decode()}).body
    platform.call("PATCH", f"{BASE}/hello", {"source": HANDLER.decode().replace("True", "False")})
    platform.drain()  # revision 1's message sees revision 2 and leaves it to its own message
    shown = platform.call("GET", f"{BASE}/hello").body
    assert shown["status"] == "deployed" and shown["revision"] == 2
    code = platform.lam.get_function(FunctionName=created["lambda_function"])["Configuration"]["CodeSha256"]
    import base64

    assert base64.b64decode(code).hex() == shown["code_sha256"]


def test_messages_that_are_not_deploy_messages_are_dropped_not_retried(platform: Platform) -> None:
    record = load_event("sqs_deploy_message.json")
    record["Records"][0]["body"] = "not json"
    assert deployer.handler(record, FakeContext()) == {"batchItemFailures": []}


def test_a_throttled_lambda_api_is_retried(platform: Platform, monkeypatch: pytest.MonkeyPatch) -> None:
    """Throttling is worth retrying: the message is reported as a batch item failure (SQS delivers
    it again), and the function's status is not marked failed."""
    created = platform.call("POST", BASE, {"name": "hello", "source": HANDLER.decode()}).body
    lam = boto3.client("lambda", region_name="eu-west-1")

    def throttled(**_kwargs: Any) -> Any:
        raise lam.exceptions.TooManyRequestsException(
            {"Error": {"Code": "TooManyRequestsException", "Message": "Rate exceeded"}}, "CreateFunction"
        )

    from lambdas.common import aws

    real = aws.client("lambda")
    monkeypatch.setattr(real, "create_function", throttled)
    result = run(DeployMessage("deploy", "acme", created["id"], 1))
    assert len(result["batchItemFailures"]) == 1
    assert platform.call("GET", f"{BASE}/hello").body["status"] == "deploying"
    monkeypatch.undo()
    assert run(DeployMessage("deploy", "acme", created["id"], 1)) == {"batchItemFailures": []}
    assert platform.call("GET", f"{BASE}/hello").body["status"] == "deployed"
