"""Fixtures shared by the infrastructure tests."""

from __future__ import annotations

import pytest


@pytest.fixture(scope="module", params=["dev", "prod"])
def env_name(request: pytest.FixtureRequest) -> str:
    """Each environment in turn: every stack is asserted in both."""
    return str(request.param)
