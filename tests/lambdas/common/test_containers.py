"""The registry of per-container caches: one `reset()` forgets every cached value and runs every
registered teardown, as a new Lambda container would start without them."""

from __future__ import annotations

import itertools

import pytest

from lambdas.common import containers
from lambdas.common.aws import client
from lambdas.qr_upload.settings import settings


@pytest.fixture(autouse=True)
def _own_registry(monkeypatch: pytest.MonkeyPatch) -> None:
    """What these tests register stays out of the registry the rest of the suite resets."""
    monkeypatch.setattr(containers, "_resets", list(containers._resets))


def test_a_cached_value_is_kept_until_reset() -> None:
    counter = itertools.count()

    @containers.per_container
    def built(name: str) -> tuple[str, int]:
        return name, next(counter)

    assert built("a") is built("a")
    assert built("b") == ("b", 1)
    containers.reset()
    assert built("a") == ("a", 2)


def test_reset_runs_registered_teardowns() -> None:
    closed: list[str] = []

    @containers.on_reset
    def close() -> None:
        closed.append("conn")

    containers.reset()
    containers.reset()
    assert closed == ["conn", "conn"]


def test_the_systems_caches_are_registered(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SESSIONS_TABLE_NAME", "first")
    assert settings().table_name == "first"
    s3 = client("s3")
    monkeypatch.setenv("SESSIONS_TABLE_NAME", "second")
    assert settings().table_name == "first"  # read once per container
    containers.reset()
    assert settings().table_name == "second"
    assert client("s3") is not s3
