"""Per-organization quotas on invoking: invocations per minute and GB-seconds per calendar month.

- minute  `ORG#{org}#USAGE` / `MIN#{yyyymmddHHMM}`: `count`, taken with a conditional ADD before an
  invocation starts (never over the limit, even with concurrent callers); expires after a day.
- month   `ORG#{org}#USAGE` / `MONTH#{yyyymm}`: `gb_seconds` and `invocations`, added once per
  finished invocation (billed duration x memory). At or over the budget, new invocations are
  refused until the next month: a hard stop, checked before each invocation starts.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from lambdas.functions.dynamo import Conflict, Table, Update, plain, transact, typed
from lambdas.functions.settings import Quotas


class QuotaExceeded(Exception):
    def __init__(self, message: str, retry_after: int | None = None) -> None:
        super().__init__(message)
        self.retry_after = retry_after


def usage_pk(org: str) -> str:
    return f"ORG#{org}#USAGE"


def _minute(now: float) -> str:
    return datetime.fromtimestamp(now, UTC).strftime("%Y%m%d%H%M")


def _month(now: float) -> str:
    return datetime.fromtimestamp(now, UTC).strftime("%Y%m")


def gb_seconds(billed_ms: float, memory_mb: int) -> float:
    return (billed_ms / 1000.0) * (memory_mb / 1024.0)


@dataclass(frozen=True)
class Usage:
    table_name: str
    quotas: Quotas

    @property
    def table(self) -> Table:
        return Table(self.table_name)

    def _get(self, org: str, sk: str) -> dict[str, Any]:
        item = self.table.get_item(Key={"pk": usage_pk(org), "sk": sk}, ConsistentRead=True).get("Item")
        return plain(item) if item else {}

    def check_budget(self, org: str, now: float | None = None) -> None:
        now = now or time.time()
        used = float(self._get(org, f"MONTH#{_month(now)}").get("gb_seconds", 0))
        budget = self.quotas.monthly_gb_seconds
        if used >= budget:
            raise QuotaExceeded(
                f"monthly budget exhausted: {used:.1f} of {budget} GB-seconds used this month; "
                "invocations resume next month or when the budget is raised"
            )

    def take(
        self, org: str, count: int = 1, now: float | None = None, with_operations: list[dict[str, Any]] | None = None
    ) -> None:
        """Reserve `count` invocations in this minute, check the month's budget, and write
        `with_operations` (e.g. the invocation records), all in one transaction; QuotaExceeded
        (with the seconds until the next minute for the rate limit) when a quota is exhausted."""
        now = now or time.time()
        limit = self.quotas.invocations_per_minute
        retry_after = max(1, 60 - int(now) % 60)
        if count > limit:
            raise QuotaExceeded(f"{count} invocations at once exceed the limit of {limit} per minute", retry_after)
        minute = Update(
            key={"pk": usage_pk(org), "sk": f"MIN#{_minute(now)}"},
            add={"count": count},
            set={"ttl": int(now) + 86400},
            condition="attribute_not_exists(#count) OR #count <= :room",
            names={"#count": "count"},
            values={":room": limit - count},
        )
        budget = {
            "ConditionCheck": {
                "TableName": self.table_name,
                "Key": typed({"pk": usage_pk(org), "sk": f"MONTH#{_month(now)}"}),
                "ConditionExpression": "attribute_not_exists(gb_seconds) OR gb_seconds < :budget",
                "ExpressionAttributeValues": typed({":budget": self.quotas.monthly_gb_seconds}),
            }
        }
        try:
            transact([minute.transact(self.table_name), budget, *(with_operations or [])])
        except Conflict as exc:
            reasons = exc.args[1] if len(exc.args) > 1 else []
            if reasons[:1] == ["ConditionalCheckFailed"]:
                raise QuotaExceeded(f"rate limit: at most {limit} invocations per minute", retry_after) from None
            if reasons[1:2] == ["ConditionalCheckFailed"]:
                self.check_budget(org, now)  # raises with the figures
            raise

    def charge(self, org: str, billed_ms: float | None, memory_mb: int, now: float | None = None) -> dict[str, Any]:
        """The transaction operation adding a finished invocation's GB-seconds to its month."""
        now = now or time.time()
        spent = gb_seconds(billed_ms or 0.0, memory_mb)
        update = Update(
            key={"pk": usage_pk(org), "sk": f"MONTH#{_month(now)}"},
            add={"gb_seconds": round(spent, 6), "invocations": 1},
        )
        return update.transact(self.table_name)

    def record(self, org: str, billed_ms: float | None, memory_mb: int, now: float | None = None) -> None:
        """Add a finished invocation's GB-seconds to the month (call once per invocation)."""
        now = now or time.time()
        spent = gb_seconds(billed_ms or 0.0, memory_mb)
        self.table.update_item(
            **Update(
                key={"pk": usage_pk(org), "sk": f"MONTH#{_month(now)}"},
                add={"gb_seconds": round(spent, 6), "invocations": 1},
            ).params()
        )

    def view(self, org: str, functions: int, now: float | None = None) -> dict[str, Any]:
        now = now or time.time()
        month = self._get(org, f"MONTH#{_month(now)}")
        minute = self._get(org, f"MIN#{_minute(now)}")
        used = float(month.get("gb_seconds", 0))
        return {
            "month": datetime.fromtimestamp(now, UTC).strftime("%Y-%m"),
            "gb_seconds": math.floor(used * 1000) / 1000,
            "gb_seconds_budget": self.quotas.monthly_gb_seconds,
            "invocations": int(month.get("invocations", 0)),
            "invocations_this_minute": int(minute.get("count", 0)),
            "invocations_per_minute_limit": self.quotas.invocations_per_minute,
            "functions": functions,
            "functions_limit": self.quotas.max_functions,
            "versions_kept": self.quotas.versions_kept,
        }
