"""Fixtures for the tunnel handler tests: moto, the stack's tables, a fake management API."""

from __future__ import annotations

import os
from collections.abc import Iterator

import pytest
from moto import mock_aws

from tests.lambdas.common.fakes import FakeContext
from tests.lambdas.tunnel import support

# Powertools reads these when a handler module is imported, before any fixture runs.
os.environ.setdefault("POWERTOOLS_SERVICE_NAME", "tunnel")
os.environ.setdefault("POWERTOOLS_METRICS_NAMESPACE", "PlatformTest")
os.environ.setdefault("POWERTOOLS_TRACE_DISABLED", "true")


@pytest.fixture
def context() -> FakeContext:
    return FakeContext("tunnel-test", aws_request_id="6f1c7e1a-5b0e-4a39-9d49-6f0c1b9d1a11")


@pytest.fixture(scope="session")
def _gateway_server() -> Iterator[support.FakeManagementApi]:
    with support.FakeManagementApi() as api:
        yield api


@pytest.fixture
def gateway(_gateway_server: support.FakeManagementApi) -> support.FakeManagementApi:
    # One server for the session, emptied for each test (the handlers' clients are created per
    # test anyway: tests/conftest.py resets the container's caches).
    _gateway_server.reset()
    return _gateway_server


@pytest.fixture
def tunnel_env(monkeypatch: pytest.MonkeyPatch, gateway: support.FakeManagementApi) -> Iterator[None]:
    for name, value in {
        "CONNECTIONS_TABLE_NAME": support.CONNECTIONS,
        "PENDING_REQUESTS_TABLE_NAME": support.PENDING,
        "TOKENS_TABLE_NAME": support.TOKENS,
        "BODY_BUCKET_NAME": support.BUCKET,
        "WS_API_ENDPOINT": gateway.endpoint,
        "PUBLIC_HTTP_URL": "https://p9r8s7t6u5.execute-api.eu-west-1.amazonaws.com",
        "REQUEST_TIMEOUT_MS": "3000",
        "POWERTOOLS_SERVICE_NAME": "tunnel",
        "POWERTOOLS_METRICS_NAMESPACE": "PlatformTest",
        "POWERTOOLS_TRACE_DISABLED": "true",
    }.items():
        monkeypatch.setenv(name, value)
    monkeypatch.delenv("DOMAIN_NAME", raising=False)
    monkeypatch.delenv("AWS_ENDPOINT_URL", raising=False)
    # The handlers' clients are created afresh in each test (tests/conftest.py resets the
    # container's caches) and inside this mock_aws().
    with mock_aws():
        support.create_resources()
        yield
