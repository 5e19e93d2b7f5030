"""The local runtime's TransactWriteItems for moto: all or nothing, per-operation cancellation
reasons as DynamoDB gives them, and safe under concurrent requests."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from typing import Any

import boto3
import pytest
from moto import mock_aws

from scripts.local import dynamodb_transactions

TABLE = "tx-test"


@pytest.fixture
def ddb() -> Iterator[Any]:
    dynamodb_transactions.install()
    with mock_aws():
        client = boto3.client("dynamodb", region_name="us-east-1")
        client.create_table(
            TableName=TABLE,
            AttributeDefinitions=[
                {"AttributeName": "pk", "AttributeType": "S"},
                {"AttributeName": "sk", "AttributeType": "S"},
            ],
            KeySchema=[{"AttributeName": "pk", "KeyType": "HASH"}, {"AttributeName": "sk", "KeyType": "RANGE"}],
            BillingMode="PAY_PER_REQUEST",
        )
        yield client


def key(pk: str, sk: str = "x") -> dict[str, Any]:
    return {"pk": {"S": pk}, "sk": {"S": sk}}


def get(ddb: Any, pk: str) -> dict[str, Any] | None:
    return ddb.get_item(TableName=TABLE, Key=key(pk)).get("Item")


def test_a_failed_condition_cancels_every_operation_with_its_reason(ddb: Any) -> None:
    ddb.put_item(TableName=TABLE, Item={**key("a"), "n": {"N": "1"}})
    ddb.put_item(TableName=TABLE, Item={**key("gone"), "n": {"N": "1"}})
    ddb.put_item(TableName=TABLE, Item={**key("exists"), "n": {"N": "1"}})
    with pytest.raises(ddb.exceptions.TransactionCanceledException) as cancelled:
        ddb.transact_write_items(
            TransactItems=[
                {
                    "Update": {
                        "TableName": TABLE,
                        "Key": key("a"),
                        "UpdateExpression": "SET n = :n",
                        "ExpressionAttributeValues": {":n": {"N": "2"}},
                    }
                },
                {"Put": {"TableName": TABLE, "Item": {**key("new"), "n": {"N": "1"}}}},
                {"Delete": {"TableName": TABLE, "Key": key("gone")}},
                {
                    "ConditionCheck": {
                        "TableName": TABLE,
                        "Key": key("exists"),
                        "ConditionExpression": "attribute_not_exists(pk)",
                    }
                },
            ]
        )
    codes = [r["Code"] for r in cancelled.value.response["CancellationReasons"]]
    assert codes == ["None", "None", "None", "ConditionalCheckFailed"]
    assert get(ddb, "a") == {**key("a"), "n": {"N": "1"}}  # rolled back
    assert get(ddb, "new") is None
    assert get(ddb, "gone") == {**key("gone"), "n": {"N": "1"}}


def test_a_successful_transaction_writes_everything(ddb: Any) -> None:
    ddb.transact_write_items(
        TransactItems=[
            {
                "Put": {
                    "TableName": TABLE,
                    "Item": {**key("a"), "n": {"N": "1"}},
                    "ConditionExpression": "attribute_not_exists(pk)",
                }
            },
            {"Put": {"TableName": TABLE, "Item": {**key("b"), "n": {"N": "2"}}}},
        ]
    )
    assert get(ddb, "a") and get(ddb, "b")
    with pytest.raises(ddb.exceptions.ClientError, match=r"cannot include multiple operations on one item"):
        ddb.transact_write_items(
            TransactItems=[
                {"Put": {"TableName": TABLE, "Item": {**key("a"), "n": {"N": "5"}}}},
                {"Delete": {"TableName": TABLE, "Key": key("a")}},
            ]
        )


def test_concurrent_transactions_neither_fail_nor_lose_writes(ddb: Any) -> None:
    for i in range(500):  # a table with some history, as a long local run has
        ddb.put_item(TableName=TABLE, Item={**key(f"old{i}"), "n": {"N": str(i)}})
    errors: list[BaseException] = []

    def worker(index: int) -> None:
        client = boto3.client("dynamodb", region_name="us-east-1")
        try:
            for step in range(25):
                client.transact_write_items(
                    TransactItems=[
                        {
                            "Update": {
                                "TableName": TABLE,
                                "Key": key("counter"),
                                "UpdateExpression": "ADD n :one",
                                "ExpressionAttributeValues": {":one": {"N": "1"}},
                            }
                        },
                        {"Put": {"TableName": TABLE, "Item": {**key(f"w{index}-{step}"), "n": {"N": "1"}}}},
                    ]
                )
        except BaseException as exc:  # collected and asserted below
            errors.append(exc)

    threads = [threading.Thread(target=worker, args=(i,)) for i in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == []
    assert get(ddb, "counter") == {**key("counter"), "n": {"N": "200"}}
