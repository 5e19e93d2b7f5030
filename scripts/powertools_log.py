"""Powertools JSON log records as readable text: one renderer for scripts/logs.py (a deployed
function's CloudWatch events) and the local runtime's log stream (scripts/local/logs.py).

A record becomes its message, then its own keys as key=value, then its exception (a traceback)
on indented lines; level and correlation id are left to the caller's columns.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

# Shown in the caller's own columns (time, level, correlation id, message) or not at all.
STANDARD_KEYS = frozenset(
    {
        "timestamp",
        "level",
        "message",
        "correlation_id",
        "service",
        "location",
        "function_name",
        "function_memory_size",
        "function_arn",
        "function_request_id",
        "cold_start",
        "xray_trace_id",
        "sampling_rate",
        "exception",
    }
)


@dataclass(frozen=True)
class Record:
    level: str  # upper case; "" when the record names none
    correlation_id: str  # "" when none
    text: str


def json_object(line: str) -> dict[str, Any] | None:
    """The line as a JSON object; None for anything else (START/END/REPORT, prints, tracebacks)."""
    try:
        value = json.loads(line)
    except ValueError:
        return None
    return value if isinstance(value, dict) else None


def _value(value: Any, quote_strings: bool) -> str:
    if isinstance(value, str) and not quote_strings:
        return value
    return json.dumps(value, default=str, ensure_ascii=False)  # Unicode shown as text


def render_record(fields: dict[str, Any], *, quote_strings: bool) -> Record:
    """`quote_strings`: string values as JSON (`name="José"`, where the local runtime's many
    functions share one stream) or bare (`sessionId=abc`, one function's tail)."""
    message = fields.get("message", "")
    text = message if isinstance(message, str) else _value(message, True)
    extras = " ".join(f"{k}={_value(v, quote_strings)}" for k, v in fields.items() if k not in STANDARD_KEYS)
    if extras:
        text = f"{text} {extras}"
    if fields.get("exception"):
        text += "\n    " + str(fields["exception"]).replace("\n", "\n    ")
    return Record(str(fields.get("level", "")).upper(), str(fields.get("correlation_id") or ""), text)
