"""Settings every test shares: quiet jsii, no real AWS credentials, a fixed region."""

from __future__ import annotations

import os

import pytest

os.environ.setdefault("JSII_SILENCE_WARNING_END_OF_LIFE_NODE_VERSION", "20")
# Nothing may reach real AWS: fake credentials, and a region for SDK clients.
os.environ["AWS_ACCESS_KEY_ID"] = "testing"
os.environ["AWS_SECRET_ACCESS_KEY"] = "testing"
os.environ["AWS_SESSION_TOKEN"] = "testing"
os.environ.setdefault("AWS_DEFAULT_REGION", "us-east-1")
os.environ.setdefault("AWS_REGION", "us-east-1")
os.environ.pop("AWS_PROFILE", None)


@pytest.fixture(autouse=True)
def _fresh_container() -> None:
    """Each test starts like a fresh Lambda container: settings, clients, keys and connections
    cached in an earlier test (another environment, region or endpoint) must not leak into this one."""
    from lambdas.common import containers

    containers.reset()
