"""The QR-upload system under the local runtime, a headless Debian chromium, and the local app the
tunnel tests put behind their tunnels."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from scripts.local import ports
from scripts.local.runtime import LocalRuntime
from tests.lambdas.tunnel.agent_peers import LocalApp

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


def free_port_base() -> int:
    # The dev platform serves four HTTP APIs, two WebSocket APIs and one CloudFront distribution
    # from the base upward.
    return ports.free_port_base(7, 26000, 32500)


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


@pytest.fixture(scope="module")
def app() -> Iterator[LocalApp]:
    local = LocalApp()
    yield local
    local.close()
