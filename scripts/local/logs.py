"""Function logs as one readable line each: time, level, function, correlation id, message.

Powertools JSON lines are rendered from their fields by scripts/powertools_log.py, the renderer
scripts/logs.py uses for deployed functions (extra keys as key=value, a logged exception on
indented lines below); EMF metric blobs become `metrics name=value`; anything else (tracebacks,
prints) is shown as is.
"""

from __future__ import annotations

import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import TextIO

from scripts.powertools_log import json_object, render_record

_COLOURS = [36, 35, 33, 32, 34, 91, 96, 95, 93, 92]
_LEVEL_COLOURS = {"ERROR": 31, "CRITICAL": 31, "WARNING": 33, "DEBUG": 90}


@dataclass
class LogLine:
    time: float
    function: str
    level: str
    correlation_id: str
    message: str
    raw: str


def parse(function: str, raw: str) -> LogLine:
    now = time.time()
    data = json_object(raw)
    if data is None:
        level = "ERROR" if raw.startswith(("[ERROR]", "Traceback")) else "INFO"
        return LogLine(now, function, level, "", raw, raw)
    if "_aws" in data:  # CloudWatch embedded metric format
        names = [m["Name"] for d in data["_aws"].get("CloudWatchMetrics", []) for m in d.get("Metrics", [])]
        values = " ".join(f"{n}={data.get(n)}" for n in names)
        return LogLine(now, function, "METRIC", "", f"metrics {values}", raw)
    record = render_record(data, quote_strings=True)
    return LogLine(now, function, record.level or "INFO", record.correlation_id, record.text, raw)


class LogStream:
    """Keeps every line (tests read them) and, when given a stream, prints them coloured."""

    def __init__(self, out: TextIO | None = None, colour: bool = True) -> None:
        self.out = out
        self.colour = colour
        self._lines: deque[LogLine] = deque(maxlen=20_000)  # bounded: `make local` may run for days
        self._colours: dict[str, int] = {}
        self._lock = threading.Lock()
        self.listeners: list[Callable[[LogLine], None]] = []

    @property
    def lines(self) -> list[LogLine]:
        """A snapshot (safe to iterate while functions keep logging)."""
        with self._lock:
            return list(self._lines)

    def __call__(self, function: str, raw: str) -> None:
        if not raw.strip():
            return
        self.add(parse(function, raw))

    def add(self, line: LogLine) -> None:
        with self._lock:
            self._lines.append(line)
            if self.out is not None:
                self.out.write(self.render(line) + "\n")
                self.out.flush()
        for listener in list(self.listeners):
            listener(line)

    def render(self, line: LogLine) -> str:
        stamp = datetime.fromtimestamp(line.time).strftime("%H:%M:%S.%f")[:-3]
        corr = f" [{line.correlation_id}]" if line.correlation_id else ""
        text = f"{stamp} {line.level:<7} {line.function}{corr} {line.message}"
        if not self.colour:
            return text
        colour = self._colours.setdefault(line.function, _COLOURS[len(self._colours) % len(_COLOURS)])
        level_colour = _LEVEL_COLOURS.get(line.level, 0)
        return (
            f"\033[90m{stamp}\033[0m \033[{level_colour}m{line.level:<7}\033[0m "
            f"\033[{colour}m{line.function}\033[0m{corr} {line.message}"
        )
