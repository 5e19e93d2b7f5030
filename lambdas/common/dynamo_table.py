"""A DynamoDB table through the low-level client, called like `boto3.resource("dynamodb").Table`:
plain values in and out (numbers back as Decimal), `Key`/`Attr` conditions built into expressions.

The resource layer does the same conversions but costs about 100 ms more on a cold start's first
call (it loads every service's resource model and builds its classes), and a request/response
function's first answer waits for it. Used by the Functions stores and the QR sessions store.
"""

from __future__ import annotations

from decimal import Decimal
from typing import Any

from boto3.dynamodb.conditions import ConditionBase, ConditionExpressionBuilder
from boto3.dynamodb.table import BatchWriter
from boto3.dynamodb.types import TypeDeserializer, TypeSerializer

from lambdas.common.aws import client

_serializer = TypeSerializer()
_deserializer = TypeDeserializer()


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
