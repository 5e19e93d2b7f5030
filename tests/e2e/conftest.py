"""The QR-upload system under the local runtime, and a headless Debian chromium."""

from __future__ import annotations

import random
import socket
from collections.abc import Iterator
from typing import Any

import pytest

from scripts.local.runtime import MOTO_OFFSET, LocalRuntime

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-quic",
    "--no-first-run",
    "--disable-component-update",
    "--disable-sync",
]


def _free(port: int) -> bool:
    with socket.socket() as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


def free_port_base() -> int:
    for _ in range(50):
        base = random.randrange(40000, 60000)
        if all(_free(p) for p in (base, base + 1, base + 2, base + MOTO_OFFSET)):
            return base
    raise RuntimeError("no free port range")


def start_platform(**kwargs: Any) -> LocalRuntime:
    return LocalRuntime("dev", port_base=free_port_base(), **kwargs).start()


@pytest.fixture(scope="module")
def runtime() -> Iterator[LocalRuntime]:
    rt = start_platform()
    yield rt
    rt.stop()


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        chromium = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        yield chromium
        chromium.close()
