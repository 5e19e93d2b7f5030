"""The agent CLI as its users meet it, on the local runtime: size-bounded uploads of large
responses (S3 itself refuses one over the limit), the request lines, the short form and `login`,
Ctrl-C that lets requests in flight finish, and the request inspector's JSON API."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator

import pytest
import requests

from scripts.local.runtime import LocalRuntime
from tests.e2e.conftest import free_port_base
from tests.e2e.test_tunnel_local import AgentProcess, call, new_token
from tests.lambdas.tunnel.agent_peers import LocalApp, sized_bytes

pytestmark = pytest.mark.slow

# Lowered so an upload over it is cheap to make; the protocol's own limit is 5 MiB.
MAX_RESPONSE_BYTES = 1024 * 1024
FORWARD_TIMEOUT_MS = 4000


@pytest.fixture(scope="module")
def runtime() -> Iterator[LocalRuntime]:
    rt = LocalRuntime(
        "dev",
        port_base=free_port_base(),
        app="tests.e2e.test_tunnel_local:tunnel_only_app",
        set_env={
            "tunnel-forward-dev": {
                "MAX_RESPONSE_BYTES": str(MAX_RESPONSE_BYTES),
                "REQUEST_TIMEOUT_MS": str(FORWARD_TIMEOUT_MS),
            }
        },
    ).start()
    yield rt
    rt.stop()


@pytest.fixture(scope="module")
def app() -> Iterator[LocalApp]:
    local = LocalApp()
    yield local
    local.close()


@pytest.fixture(scope="module")
def agent(runtime: LocalRuntime, app: LocalApp) -> Iterator[AgentProcess]:
    running = AgentProcess(runtime, new_token(runtime), app.port, "--subdomain", "e2eagent")
    running.wait_url()
    yield running
    running.stop()


# --- large responses: a presigned POST bounded by the max response size --------------------------


def test_a_large_response_within_the_limit_passes_byte_for_byte(agent) -> None:
    size = MAX_RESPONSE_BYTES - 1000  # far over one WebSocket message: through the bucket
    response = call(f"{agent.public_url}/bytes?n={size}")
    assert response.status == 200
    assert response.data == sized_bytes(size)


def test_a_response_over_the_limit_is_refused_by_s3_and_the_client_gets_a_clear_502(agent) -> None:
    started = time.monotonic()
    response = call(f"{agent.public_url}/bytes?n={MAX_RESPONSE_BYTES + 1}")
    assert time.monotonic() - started < FORWARD_TIMEOUT_MS / 1000  # an answer, not the timeout
    assert response.status == 502
    assert json.loads(response.data) == {"error": "tunnel agent error: response_too_large"}


def test_the_local_s3_enforces_a_post_policys_size_range(runtime) -> None:
    """What the refusal above rests on: S3 (here the runtime's) checks the signed policy itself."""
    s3 = runtime.client("s3")
    bucket = runtime.outputs["Tunnel-dev"]["BodyBucketName"]
    form = s3.generate_presigned_post(
        bucket, "responses/policy-check", Conditions=[["content-length-range", 1, 100]], ExpiresIn=60
    )
    over = requests.post(form["url"], data=form["fields"], files={"file": b"x" * 101}, timeout=10)
    assert over.status_code == 400 and "<Code>EntityTooLarge</Code>" in over.text
    assert s3.list_objects_v2(Bucket=bucket, Prefix="responses/policy-check").get("KeyCount") == 0
    within = requests.post(form["url"], data=form["fields"], files={"file": b"x" * 100}, timeout=10)
    assert within.status_code == 204
    assert s3.get_object(Bucket=bucket, Key="responses/policy-check")["Body"].read() == b"x" * 100
