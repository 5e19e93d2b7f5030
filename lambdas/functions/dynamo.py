"""DynamoDB plumbing shared by the Functions stores: a table with plain values in and out, value
conversion, opaque cursors, update expressions built from a dict, and transactions whose failed
conditions become `Conflict`.

The stores use the low-level client, not `boto3.resource("dynamodb")`: the resource layer does the
same conversions but costs about 100 ms more on a cold start's first call (it lists every service's
resource model and builds its classes), and the first answer of the API waits for it. `Table` keeps
the resource's calling convention (`Key`/`Attr` conditions, plain values, Decimals for numbers) so the
stores read the same.
"""

from __future__ import annotations

import base64
import binascii
import json
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

from boto3.dynamodb.conditions import ConditionBase, ConditionExpressionBuilder
from boto3.dynamodb.table import BatchWriter
from boto3.dynamodb.types import TypeDeserializer, TypeSerializer

from lambdas.common.aws import client

_serializer = TypeSerializer()
_deserializer = TypeDeserializer()
MAX_PAGE = 100


class Conflict(Exception):
    """A conditional write lost to another writer (or the item changed state)."""


class BadCursor(ValueError):
    pass


def plain(value: Any) -> Any:
    """DynamoDB's Decimals back to int/float, recursively."""
    if isinstance(value, Decimal):
        return int(value) if value == value.to_integral_value() else float(value)
    if isinstance(value, dict):
        return {k: plain(v) for k, v in value.items()}
    if isinstance(value, list):
        return [plain(v) for v in value]
    return value


def dynamo(value: Any) -> Any:
    """Python floats are not accepted by boto3: floats become Decimals, recursively."""
    if isinstance(value, float):
        return Decimal(str(value))
    if isinstance(value, dict):
        return {k: dynamo(v) for k, v in value.items()}
    if isinstance(value, list):
        return [dynamo(v) for v in value]
    return value


def typed(item: dict[str, Any]) -> dict[str, Any]:
    """Plain values in DynamoDB's typed wire form (for the low-level client's transactions)."""
    return {k: _serializer.serialize(v) for k, v in dynamo(item).items()}


def untyped(item: dict[str, Any]) -> dict[str, Any]:
    """DynamoDB's typed wire form back to Python values (numbers as Decimal, like the resource)."""
    return {k: _deserializer.deserialize(v) for k, v in item.items()}


# Parameters holding one item or key (typed on the way in), and answers holding items (untyped on
# the way out), for the operations the stores use.
_ITEM_PARAMS = ("Key", "Item", "ExclusiveStartKey", "ExpressionAttributeValues")
_ITEM_ANSWERS = ("Item", "Attributes", "LastEvaluatedKey")
_CONDITIONS = {"ConditionExpression": False, "FilterExpression": False, "KeyConditionExpression": True}


class Table:
    """One table through the low-level client, called like the resource's `Table`: plain values
    in and out, and `Key(...)`/`Attr(...)` conditions built into expressions with placeholders."""

    def __init__(self, name: str) -> None:
        self.name = name

    @property
    def client(self) -> Any:
        return client("dynamodb")

    @property
    def condition_failed(self) -> type[Exception]:
        failed: type[Exception] = self.client.exceptions.ConditionalCheckFailedException
        return failed

    def _call(self, operation: str, params: dict[str, Any]) -> dict[str, Any]:
        params = _with_conditions(params)
        for name in _ITEM_PARAMS:
            if name in params:
                params[name] = typed(params[name])
        answer: dict[str, Any] = getattr(self.client, operation)(TableName=self.name, **params)
        for name in _ITEM_ANSWERS:
            if name in answer:
                answer[name] = untyped(answer[name])
        if "Items" in answer:
            answer["Items"] = [untyped(item) for item in answer["Items"]]
        return answer

    def get_item(self, **params: Any) -> dict[str, Any]:
        return self._call("get_item", params)

    def put_item(self, **params: Any) -> dict[str, Any]:
        return self._call("put_item", params)

    def update_item(self, **params: Any) -> dict[str, Any]:
        return self._call("update_item", params)

    def query(self, **params: Any) -> dict[str, Any]:
        return self._call("query", params)

    def delete_keys(self, keys: list[dict[str, Any]]) -> None:
        """Delete every key, 25 per request, resending what DynamoDB left unprocessed."""
        with BatchWriter(self.name, self.client) as batch:
            for key in keys:
                batch.delete_item(Key=typed(key))


def _with_conditions(params: dict[str, Any]) -> dict[str, Any]:
    """`Key`/`Attr` conditions as expression strings, their placeholders merged into the names and
    values (as the resource layer does); string expressions pass through."""
    params = dict(params)
    builder = ConditionExpressionBuilder()
    names: dict[str, str] = {}
    values: dict[str, Any] = {}
    for name, is_key_condition in _CONDITIONS.items():
        condition = params.get(name)
        if isinstance(condition, ConditionBase):
            built = builder.build_expression(condition, is_key_condition=is_key_condition)
            params[name] = built.condition_expression
            names.update(built.attribute_name_placeholders)
            values.update(built.attribute_value_placeholders)
    if names:
        params["ExpressionAttributeNames"] = {**params.get("ExpressionAttributeNames", {}), **names}
    if values:
        params["ExpressionAttributeValues"] = {**params.get("ExpressionAttributeValues", {}), **values}
    return params


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
