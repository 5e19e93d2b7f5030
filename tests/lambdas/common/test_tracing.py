"""The shared tracer: no X-Ray SDK on any handler's cold path."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[3]
HANDLERS = (
    "lambdas.qr_upload.http_api",
    "lambdas.qr_upload.websocket_events",
    "lambdas.tunnel.connect",
    "lambdas.tunnel.disconnect",
    "lambdas.tunnel.forward",
    "lambdas.tunnel.response",
    "lambdas.search.handler",
    "lambdas.functions.api",
    "lambdas.functions.authorizer",
    "lambdas.embedder.handler",
    "lambdas.analyzer.handler",
    "lambdas.image_processor.handler",
)


def _run(code: str) -> str:
    # A Lambda-like environment: Powertools' Tracer would be enabled and patch libraries here.
    lambda_env = {
        "PATH": os.environ["PATH"],
        "AWS_DEFAULT_REGION": "us-east-1",
        "LAMBDA_TASK_ROOT": str(ROOT),
        "AWS_LAMBDA_FUNCTION_NAME": "tracing-test",
        "POWERTOOLS_SERVICE_NAME": "tracing-test",
    }
    result = subprocess.run(
        [sys.executable, "-c", code], cwd=ROOT, env=lambda_env, capture_output=True, text=True, check=True
    )
    return result.stdout.strip()


@pytest.mark.parametrize("module", HANDLERS)
def test_handlers_load_no_xray_sdk(module: str) -> None:
    loaded = _run(f"import sys, importlib\nimportlib.import_module({module!r})\nprint('aws_xray_sdk' in sys.modules)")
    assert loaded == "False"


def test_decorators_return_the_function_itself() -> None:
    from lambdas.common.tracing import ActiveTracingOnly

    def handler(event: dict[str, str], context: object) -> dict[str, str]:
        return event

    tracer = ActiveTracingOnly()
    assert tracer.capture_lambda_handler(handler) is handler
    assert tracer.capture_method(handler) is handler
