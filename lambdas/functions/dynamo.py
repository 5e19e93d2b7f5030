"""DynamoDB plumbing shared by the Functions stores: opaque cursors, update expressions built from
a dict, and transactions whose failed conditions become `Conflict`, over the low-level client table
of lambdas/common/dynamo_table.py (re-exported here so the stores import one module)."""

from __future__ import annotations

import base64
import binascii
import json
from dataclasses import dataclass, field
from typing import Any

from lambdas.common.aws import client
from lambdas.common.dynamo_table import Table, dynamo, plain, typed, untyped

__all__ = ["BadCursor", "Conflict", "Table", "Update", "decode_cursor", "delete", "dynamo", "encode_cursor"]
__all__ += ["plain", "put", "transact", "typed", "untyped"]
MAX_PAGE = 100


class Conflict(Exception):
    """A conditional write lost to another writer (or the item changed state)."""


class BadCursor(ValueError):
    pass


def encode_cursor(key: dict[str, Any] | None) -> str | None:
    if not key:
        return None
    return base64.urlsafe_b64encode(json.dumps(plain(key), separators=(",", ":")).encode()).decode().rstrip("=")


def decode_cursor(cursor: str | None, partition: tuple[str, str]) -> dict[str, Any] | None:
    """An opaque cursor back to an ExclusiveStartKey, only if it belongs to the expected partition
    (`(attribute, value)`): a cursor can never be used to read another organization's items."""
    if not cursor:
        return None
    try:
        key = json.loads(base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)))
    except (ValueError, binascii.Error):
        raise BadCursor("invalid cursor") from None
    attribute, value = partition
    if not isinstance(key, dict) or key.get(attribute) != value or not all(isinstance(v, str) for v in key.values()):
        raise BadCursor("invalid cursor")
    if len(key) > 4:
        raise BadCursor("invalid cursor")
    return key


@dataclass
class Update:
    """`SET`/`REMOVE`/`ADD` with a condition, as parameters for UpdateItem or a transaction."""

    key: dict[str, Any]
    set: dict[str, Any] = field(default_factory=dict)
    remove: tuple[str, ...] = ()
    add: dict[str, Any] = field(default_factory=dict)
    condition: str | None = None
    names: dict[str, str] = field(default_factory=dict)
    values: dict[str, Any] = field(default_factory=dict)

    def params(self) -> dict[str, Any]:
        names = dict(self.names)
        values = dict(self.values)
        clauses = []
        if self.set:
            parts = []
            for i, (attribute, value) in enumerate(self.set.items()):
                names[f"#s{i}"] = attribute
                values[f":s{i}"] = value
                parts.append(f"#s{i} = :s{i}")
            clauses.append("SET " + ", ".join(parts))
        if self.add:
            parts = []
            for i, (attribute, value) in enumerate(self.add.items()):
                names[f"#d{i}"] = attribute
                values[f":d{i}"] = value
                parts.append(f"#d{i} :d{i}")
            clauses.append("ADD " + ", ".join(parts))
        if self.remove:
            for i, attribute in enumerate(self.remove):
                names[f"#r{i}"] = attribute
            clauses.append("REMOVE " + ", ".join(f"#r{i}" for i in range(len(self.remove))))
        params: dict[str, Any] = {"Key": self.key, "UpdateExpression": " ".join(clauses)}
        if self.condition:
            params["ConditionExpression"] = self.condition
        if names:
            params["ExpressionAttributeNames"] = names
        if values:
            params["ExpressionAttributeValues"] = dynamo(values)
        return params

    def transact(self, table: str) -> dict[str, Any]:
        params = self.params()
        params["Key"] = typed(params["Key"])
        if "ExpressionAttributeValues" in params:
            params["ExpressionAttributeValues"] = typed(params["ExpressionAttributeValues"])
        return {"Update": {"TableName": table, **params}}


def put(table: str, item: dict[str, Any], condition: str | None = None) -> dict[str, Any]:
    operation: dict[str, Any] = {"TableName": table, "Item": typed(item)}
    if condition:
        operation["ConditionExpression"] = condition
    return {"Put": operation}


def delete(
    table: str, key: dict[str, Any], condition: str | None = None, values: dict[str, Any] | None = None
) -> dict[str, Any]:
    operation: dict[str, Any] = {"TableName": table, "Key": typed(key)}
    if condition:
        operation["ConditionExpression"] = condition
    if values:
        operation["ExpressionAttributeValues"] = typed(values)
    return {"Delete": operation}


def transact(operations: list[dict[str, Any]]) -> list[str | None]:
    """Write all or nothing. Conflict (with each operation's cancellation code, e.g.
    `ConditionalCheckFailed`, in `.args[1]`) when a condition failed or a concurrent transaction
    touched the same items."""
    ddb = client("dynamodb")
    try:
        ddb.transact_write_items(TransactItems=operations)
    except ddb.exceptions.TransactionCanceledException as exc:
        reasons = [
            r.get("Code") if r.get("Code") != "None" else None for r in exc.response.get("CancellationReasons", [])
        ]
        raise Conflict("a concurrent change won; read again and retry", reasons) from None
    return []
