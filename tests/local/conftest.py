"""A running fixture runtime, shared by the module's tests (starting one takes ~10 s)."""

from __future__ import annotations

import random
import socket
from collections.abc import Iterator

import pytest

from scripts.local.runtime import MOTO_OFFSET, LocalRuntime

FIXTURE_APP = "tests.local.fixture_app.stack:build"


def port_is_free(port: int) -> bool:
    with socket.socket() as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


def free_port_base(count: int = 3) -> int:
    for _ in range(50):
        base = random.randrange(20000, 40000)
        if all(port_is_free(p) for p in [*range(base, base + count), base + MOTO_OFFSET]):
            return base
    raise RuntimeError("no free port range")


def start_fixture(**context: object) -> LocalRuntime:
    return LocalRuntime(
        "test", port_base=free_port_base(), app=FIXTURE_APP, context=dict(context), retry_delay=0.05
    ).start()


@pytest.fixture(scope="module")
def runtime() -> Iterator[LocalRuntime]:
    rt = start_fixture()
    yield rt
    rt.stop()
