"""The shared entry decorator: Powertools' logging context around metrics around the handler, and
what the import loaded frozen out of the garbage collector's way."""

from __future__ import annotations

import gc
import json
from typing import Any

import pytest
from aws_lambda_powertools import Logger, Metrics

from lambdas.common.entry import entry
from tests.lambdas.common.fakes import FakeContext


def test_logs_carry_the_correlation_id_and_metrics_are_flushed(capsys: pytest.CaptureFixture[str]) -> None:
    logger = Logger(service="entry-test")
    metrics = Metrics(namespace="EntryTest", service="entry-test")

    @entry(logger, metrics, correlation_id_path="requestContext.requestId")
    def handler(event: dict[str, Any], context: Any) -> str:
        logger.info("inside")
        metrics.add_metric(name="Calls", unit="Count", value=1)
        return "done"

    context = FakeContext("entry-test", memory_limit_in_mb=128, aws_request_id="req-1")
    assert handler({"requestContext": {"requestId": "abc-123"}}, context) == "done"
    lines = [json.loads(line) for line in capsys.readouterr().out.splitlines() if line.startswith("{")]
    logged = next(line for line in lines if line.get("message") == "inside")
    assert logged["correlation_id"] == "abc-123"
    assert logged["function_request_id"] == "req-1"
    assert any("Calls" in line and "_aws" in line for line in lines)


def test_wrapping_freezes_what_is_loaded() -> None:
    gc.unfreeze()
    assert gc.get_freeze_count() == 0
    try:
        entry(Logger(service="entry-test"))(lambda event, context: None)
        assert gc.get_freeze_count() > 0
    finally:
        gc.unfreeze()
