"""A running fixture runtime, shared by the module's tests (starting one takes ~10 s)."""

from __future__ import annotations

import sys
from collections.abc import Iterator

import pytest

from scripts.local import ports
from scripts.local.runtime import LAMBDA_OFFSET, LocalRuntime

FIXTURE_APP = "tests.local.fixture_app.stack:build"


def free_port_base(count: int = 3) -> int:
    """A base whose API ports, moto port and Lambda API port are all free."""
    for _ in range(20):
        base = ports.free_port_base(count, 20000, 26000)
        if ports.port_is_free(base + LAMBDA_OFFSET):
            return base
    raise RuntimeError("no free port range")


def start_fixture(**context: object) -> LocalRuntime:
    return LocalRuntime(
        "test",
        port_base=free_port_base(),
        app=FIXTURE_APP,
        context=dict(context),
        retry_delay=0.05,
        # The fixture's database has no deploy-time Trigger: the runtime applies the project's migrations.
        migrate=[sys.executable, "-m", "lambdas.migrations"],
    ).start()


@pytest.fixture(scope="module")
def runtime() -> Iterator[LocalRuntime]:
    rt = start_fixture()
    yield rt
    rt.stop()
