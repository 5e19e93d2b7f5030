"""The audit log: one row per change (create, update, delete, publish, alias move, rollback, key
issue/revoke, result edit/verify), written in the same DynamoDB transaction as the change itself,
so there is never a change without its row nor a row without its change.
"""

from __future__ import annotations

import secrets
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from boto3.dynamodb.conditions import Key

from lambdas.functions.dynamo import MAX_PAGE, Table, decode_cursor, encode_cursor, plain, put


def audit_pk(org: str) -> str:
    return f"ORG#{org}#AUDIT"


@dataclass(frozen=True)
class Entry:
    org: str
    actor: str  # the key id that made the change (or "operator" for the keys command)
    action: str  # e.g. function.create, version.publish, alias.move, key.revoke
    target: str  # what changed: a function id, a key id, fid/subject
    details: dict[str, Any] | None = None

    def item(self) -> dict[str, Any]:
        now = datetime.now(UTC)
        at = now.isoformat(timespec="milliseconds").replace("+00:00", "Z")
        return {
            "pk": audit_pk(self.org),
            "sk": f"{at}#{secrets.token_hex(4)}",
            "at": at,
            "actor": self.actor,
            "action": self.action,
            "target": self.target,
            "details": self.details or {},
        }

    def put(self, table: str) -> dict[str, Any]:
        """The transaction operation that writes this row."""
        return put(table, self.item(), "attribute_not_exists(pk)")


def entry_view(item: dict[str, Any]) -> dict[str, Any]:
    return {k: item[k] for k in ("at", "actor", "action", "target", "details")}


def list_entries(table: str, org: str, limit: int, cursor: str | None) -> tuple[list[dict[str, Any]], str | None]:
    pk = audit_pk(org)
    kwargs: dict[str, Any] = {
        "KeyConditionExpression": Key("pk").eq(pk),
        "ScanIndexForward": False,
        "Limit": min(max(limit, 1), MAX_PAGE),
    }
    start = decode_cursor(cursor, ("pk", pk))
    if start:
        kwargs["ExclusiveStartKey"] = start
    page = Table(table).query(**kwargs)
    return [entry_view(plain(i)) for i in page.get("Items", [])], encode_cursor(page.get("LastEvaluatedKey"))
