"""DynamoDB `TransactWriteItems` for the local runtime's moto: one transaction at a time, and a
rollback that restores only the items the transaction touched.

moto deep-copies every table a transaction names, before every transaction, so that it can put
the copies back on failure. That costs time in proportion to the table (a table holding a few
thousand invocation records makes each transaction tens of milliseconds slower, and it keeps
growing while `make local` runs), and it is not safe against concurrent requests: a copy taken
while another request writes fails with "dictionary changed size during iteration" (a 500), and
putting a stale copy back would undo the other request's writes. This keeps moto's semantics
(the same checks, the same per-operation errors, all-or-nothing) with a snapshot of each touched
item instead, under a lock.
"""

from __future__ import annotations

import copy
import threading
from typing import Any

from moto.dynamodb.comparisons import get_filter_expression
from moto.dynamodb.exceptions import (
    ConditionalCheckFailed,
    MockValidationException,
    MultipleTransactionsException,
    TooManyTransactionsException,
    TransactionCanceledException,
    TransactWriteSingleOpException,
)
from moto.dynamodb.models import DynamoDBBackend
from moto.dynamodb.models.dynamo_type import DynamoType

_LOCK = threading.RLock()
_installed = False


def install() -> None:
    global _installed
    with _LOCK:
        if not _installed:
            DynamoDBBackend.transact_write_items = transact_write_items  # type: ignore[method-assign]
            _installed = True


def _key_of(backend: DynamoDBBackend, op_type: str, op: dict[str, Any]) -> dict[str, Any]:
    if op_type != "Put":
        return dict(op["Key"])
    table = backend.get_table(op["TableName"])
    attrs = op["Item"]
    key = {table.hash_key_attr: attrs[table.hash_key_attr]}
    if table.range_key_attr is not None:
        key[table.range_key_attr] = attrs[table.range_key_attr]
    return key


def _restore(backend: DynamoDBBackend, table_name: str, key: dict[str, Any], before: Any) -> None:
    table = backend.get_table(table_name)
    hash_value = DynamoType(key[table.hash_key_attr])
    range_value = DynamoType(key[table.range_key_attr]) if table.range_key_attr else None
    if before is None:
        if backend.get_item(table_name, key) is not None:
            table.delete_item(hash_value, range_value)
    elif range_value is not None:
        table.items[hash_value][range_value] = before
    else:
        table.items[hash_value] = before


def transact_write_items(self: DynamoDBBackend, transact_items: list[dict[str, Any]]) -> None:
    if len(transact_items) > 100:
        raise TooManyTransactionsException()
    with _LOCK:
        touched: list[tuple[str, dict[str, Any], Any]] = []
        seen: set[tuple[str, str]] = set()
        errors: list[tuple[str | None, str | None, Any]] = []

        def rollback() -> None:
            for table_name, key, before in reversed(touched):
                _restore(self, table_name, key, before)

        for item in transact_items:
            if len(item) > 1:
                rollback()
                raise TransactWriteSingleOpException
            original_item: Any = None
            try:
                op_type, op = next(iter(item.items()))
                if op_type not in {"ConditionCheck", "Put", "Delete", "Update"}:
                    raise ValueError("Unsupported transaction operation")
                table_name = op["TableName"]
                key = _key_of(self, op_type, op)
                marker = (str(table_name), str(dict(sorted(key.items()))))
                if marker in seen:
                    raise MultipleTransactionsException()
                seen.add(marker)
                current = self.get_item(table_name, key)
                names, values = op.get("ExpressionAttributeNames"), op.get("ExpressionAttributeValues")
                condition = op.get("ConditionExpression")
                if condition is not None and not get_filter_expression(condition, names, values).expr(current):
                    if op.get("ReturnValuesOnConditionCheckFailure") == "ALL_OLD" and current:
                        original_item = current.to_json()["Attributes"]
                    raise ConditionalCheckFailed(item=original_item)
                if op_type != "ConditionCheck":
                    touched.append((table_name, key, copy.deepcopy(current)))
                common = {
                    "condition_expression": condition,
                    "expression_attribute_names": names,
                    "expression_attribute_values": values,
                }
                if op_type == "Put":
                    self.put_item(table_name, op["Item"], **common)
                elif op_type == "Delete":
                    self.delete_item(table_name, key, **common)
                elif op_type == "Update":
                    self.update_item(table_name, key, update_expression=op["UpdateExpression"], **common)
                errors.append((None, None, None))
            except (MultipleTransactionsException, MockValidationException):
                rollback()
                raise
            except ConditionalCheckFailed as exc:
                errors.append(("ConditionalCheckFailed", str(exc.message), original_item))
            except Exception as exc:
                errors.append((type(exc).__name__, str(exc), original_item))
        if any(code is not None for code, _, _ in errors):
            rollback()
            raise TransactionCanceledException(errors)
