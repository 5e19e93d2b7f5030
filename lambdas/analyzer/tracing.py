"""Optional LangSmith tracing of model calls: only when the LANGSMITH_API_KEY parameter exists.

The SDK is imported and its client built on the first traced call, never at import time, and
only in containers that have the key. Each analysis becomes one `llm` run (model, prompt
version, item, token usage, the validated analysis or the error; never the image bytes),
sent synchronously (`auto_batch_tracing=False`): a background batch thread could be frozen
with the Lambda container before it flushed. Tracing failures are logged and never fail the
analysis. LANGSMITH_ENDPOINT / LANGSMITH_PROJECT override the endpoint and project.
"""

from __future__ import annotations

import os
from datetime import datetime
from typing import Any

from aws_lambda_powertools import Logger

from lambdas.collections.names import LANGSMITH_API_KEY
from lambdas.collections.pipeline import api_key
from lambdas.common.containers import per_container

logger = Logger(child=True)


@per_container
def _langsmith(key: str) -> Any:
    from langsmith import Client

    return Client(
        api_url=os.environ.get("LANGSMITH_ENDPOINT") or None,
        api_key=key,
        auto_batch_tracing=False,
        timeout_ms=(2_000, 5_000),
    )


def record_run(
    *, inputs: dict[str, Any], outputs: dict[str, Any] | None, error: str | None, start: datetime, end: datetime
) -> bool:
    """Send one run if tracing is configured; True if it was sent."""
    key = api_key(LANGSMITH_API_KEY)
    if not key:
        return False
    try:
        _langsmith(key).create_run(
            name="collections.analyze_image",
            run_type="llm",
            inputs=inputs,
            outputs=outputs,
            error=error,
            start_time=start,
            end_time=end,
            project_name=os.environ.get("LANGSMITH_PROJECT", "collections"),
        )
    except Exception as exc:  # tracing is best effort by design
        logger.warning("LangSmith trace not sent", extra={"error": f"{type(exc).__name__}: {exc}"})
        return False
    return True
