"""Stand-ins the handler tests share: Lambda's context object, and the recorded events of
tests/events."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

EVENTS = Path(__file__).resolve().parents[2] / "events"


def load_event(system: str, name: str) -> dict[str, Any]:
    """tests/events/{system}/{name}, parsed afresh (callers may change it)."""
    loaded: dict[str, Any] = json.loads((EVENTS / system / name).read_text())
    return loaded


@dataclass
class FakeContext:
    """The attributes of Lambda's context object that Powertools reads; the function's ARN
    follows from its name and region."""

    function_name: str = "test-function"
    region: str = "us-east-1"
    memory_limit_in_mb: int = 256
    aws_request_id: str = "6f1b2c3d-0000-4000-8000-000000000000"
    function_version: str = "$LATEST"
    remaining_ms: int = 30_000

    @property
    def invoked_function_arn(self) -> str:
        return f"arn:aws:lambda:{self.region}:123456789012:function:{self.function_name}"

    def get_remaining_time_in_millis(self) -> int:
        return self.remaining_ms
