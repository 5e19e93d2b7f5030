"""The photo-link key pair custom resource: the private key goes only into the secret, the answer
(to CloudFormation's ResponseURL, over real HTTP) carries only the public key, and a redeploy keeps
the key pair."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import boto3
import pytest
import rsa
from moto import mock_aws

from lambdas.qr_upload import signing_key

from .helpers import REGION, FakeContext


class _ResponseUrl(ThreadingHTTPServer):
    def __init__(self) -> None:
        super().__init__(("127.0.0.1", 0), _Handler)
        self.answers: list[dict[str, Any]] = []

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server_address[1]}/cfn-response?X-Amz-Signature=abc"


class _Handler(BaseHTTPRequestHandler):
    server: _ResponseUrl

    def do_PUT(self) -> None:
        self.server.answers.append(json.loads(self.rfile.read(int(self.headers["Content-Length"]))))
        self.send_response(200)
        self.send_header("Content-Length", "0")
        self.end_headers()

    def log_message(self, format: str, *args: Any) -> None:
        pass


@pytest.fixture
def response_url() -> Iterator[_ResponseUrl]:
    server = _ResponseUrl()
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield server
    server.shutdown()
    server.server_close()


def _event(request: str, secret_arn: str, url: str, physical_id: str | None = None) -> dict[str, Any]:
    event = {
        "RequestType": request,
        "ServiceToken": "arn:aws:lambda:eu-west-1:123456789012:function:qr-upload-dev-signing-key",
        "ResponseURL": url,
        "StackId": "arn:aws:cloudformation:eu-west-1:123456789012:stack/QrUpload-dev/abc",
        "RequestId": f"req-{request}",
        "LogicalResourceId": "PhotoLinksKeyPairFD58DA70",
        "ResourceType": "Custom::PhotoLinkSigningKey",
        "ResourceProperties": {"ServiceToken": "x", "SecretArn": secret_arn},
    }
    if physical_id:
        event["PhysicalResourceId"] = physical_id
    return event


def test_create_stores_the_private_key_answers_the_public_one_and_update_keeps_it(
    response_url: _ResponseUrl, capsys: pytest.CaptureFixture[str]
) -> None:
    with mock_aws():
        secrets = boto3.client("secretsmanager", region_name=REGION)
        arn = secrets.create_secret(Name="photo-link-key", SecretString="random-placeholder")["ARN"]
        created = signing_key.handler(_event("Create", arn, response_url.url), FakeContext())
        stored = secrets.get_secret_value(SecretId=arn)["SecretString"]
        private = rsa.PrivateKey.load_pkcs1(stored.encode())
        public = rsa.PublicKey.load_pkcs1_openssl_pem(created["Data"]["PublicKeyPem"].encode())
        assert (public.n, public.e) == (private.n, private.e) and public.n.bit_length() == 2048
        assert created["Data"]["PublicKeyPem"].startswith("-----BEGIN PUBLIC KEY-----")
        # What CloudFormation received: the public key, never the private one.
        (answer,) = response_url.answers
        assert answer["Status"] == "SUCCESS" and answer["Data"] == created["Data"]
        assert answer["LogicalResourceId"] == "PhotoLinksKeyPairFD58DA70" and answer["RequestId"] == "req-Create"
        assert "PRIVATE" not in json.dumps(answer) and "PRIVATE" not in capsys.readouterr().out

        updated = signing_key.handler(
            _event("Update", arn, response_url.url, created["PhysicalResourceId"]), FakeContext()
        )
        assert updated["Data"] == created["Data"]
        assert secrets.get_secret_value(SecretId=arn)["SecretString"] == stored
        deleted = signing_key.handler(
            _event("Delete", arn, response_url.url, created["PhysicalResourceId"]), FakeContext()
        )
        assert deleted["Status"] == "SUCCESS" and [a["Status"] for a in response_url.answers] == ["SUCCESS"] * 3


def test_a_failure_is_reported_to_cloudformation_instead_of_leaving_it_waiting(response_url: _ResponseUrl) -> None:
    with mock_aws():
        missing = "arn:aws:secretsmanager:eu-west-1:123456789012:secret:no-such-secret"
        answer = signing_key.handler(_event("Create", missing, response_url.url), FakeContext())
    assert answer["Status"] == "FAILED" and "ResourceNotFoundException" in answer["Reason"]
    assert response_url.answers[0]["Status"] == "FAILED"
