"""The whole handoff over real HTTP: the phone's multipart POST of the presigned form to a moto
server (S3 accepts it), the S3 event, the desktop notification, and the short-lived GET URL.

moto does not enforce POST policies; test_http_api.py checks the signed policy's conditions.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import boto3
import pytest
import requests
from moto.server import ThreadedMotoServer

from lambdas.common import containers

from .conftest import ConnectionsServer
from .helpers import (
    BUCKET,
    REGION,
    TABLE,
    call_events,
    call_http,
    connect_event,
    create_resources,
    create_session,
    request_upload_url,
    s3_event,
    status_event,
    verify_link,
)

PNG = b"\x89PNG\r\n\x1a\n" + bytes(range(256)) * 8


@pytest.fixture
def moto_endpoint(monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    endpoint = f"http://{host}:{port}"
    monkeypatch.setenv("AWS_ENDPOINT_URL", endpoint)
    containers.reset()  # the handlers' clients must be created against this endpoint
    try:
        create_resources(endpoint)
        yield endpoint
    finally:
        server.stop()
        containers.reset()


def _client(service: str, endpoint: str) -> Any:
    return boto3.client(service, region_name=REGION, endpoint_url=endpoint)  # type: ignore[call-overload]


def test_phone_post_of_the_presigned_form_is_accepted_and_completes_the_handoff(
    moto_endpoint: str, connections: ConnectionsServer
) -> None:
    session = create_session(qr=True)
    sid, token = session["sessionId"], session["desktopToken"]
    assert call_events(connect_event(sid, token, "desk-1="))["statusCode"] == 200

    grant = request_upload_url(sid, "image/png").json
    assert grant["uploadUrl"].startswith(f"{moto_endpoint}/{BUCKET}")
    # What the phone page does: every field, then the file last, as multipart/form-data.
    response = requests.post(
        grant["uploadUrl"],
        data=grant["fields"],
        files={"file": ("IMG_0001.png", PNG, "image/png")},
        timeout=10,
    )
    assert response.status_code == 204, response.text

    s3 = _client("s3", moto_endpoint)
    stored = s3.head_object(Bucket=BUCKET, Key=grant["uploadKey"])
    assert stored["ContentType"] == "image/png"
    assert stored["ContentLength"] == len(PNG)

    call_events(s3_event(grant["uploadKey"]))

    item = _client("dynamodb", moto_endpoint).get_item(TableName=TABLE, Key={"sessionId": {"S": sid}})["Item"]
    assert item["status"]["S"] == "COMPLETED"
    assert [(conn, msg["action"], msg["uploadKey"]) for _, conn, msg in connections.posts] == [
        ("desk-1=", "UPLOAD_COMPLETED", grant["uploadKey"])
    ]

    status = call_http(status_event(sid, token))
    assert status.status == 200 and status.json["status"] == "COMPLETED"
    # The desktop's link is signed for that object version (CloudFront serves it; e2e fetches it).
    query = verify_link(status.json["imageUrl"])
    assert query["response-content-type"] == "image/png"
    shown = s3.get_object(Bucket=BUCKET, Key=grant["uploadKey"], VersionId=query["versionId"])["Body"].read()
    assert shown == PNG
