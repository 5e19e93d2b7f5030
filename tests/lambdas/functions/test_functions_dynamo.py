"""The stores' `Table` on the low-level client, in moto: what the resource layer did for them
(plain values in, Decimals out, `Key`/`Attr` conditions, conditional failures, batch deletes)."""

from __future__ import annotations

from decimal import Decimal

import pytest
from boto3.dynamodb.conditions import Attr, Key

from lambdas.functions.dynamo import Table
from tests.lambdas.functions.conftest import TABLE, Platform


def test_values_round_trip_as_the_resource_gave_them(platform: Platform) -> None:
    table = Table(TABLE)
    item = {"pk": "P", "sk": "S", "n": 3, "f": 0.25, "tags": ["a"], "map": {"x": None, "ok": True}}
    table.put_item(Item=item, ConditionExpression="attribute_not_exists(pk)")

    stored = table.get_item(Key={"pk": "P", "sk": "S"}, ConsistentRead=True)["Item"]

    assert stored == {**item, "n": Decimal(3), "f": Decimal("0.25")}
    assert platform.ddb_item("P", "S")["f"] == {"N": "0.25"}
    assert "Item" not in table.get_item(Key={"pk": "P", "sk": "missing"})


def test_conditions_and_paging(platform: Platform) -> None:
    table = Table(TABLE)
    for i in range(5):
        table.put_item(Item={"pk": "P", "sk": f"FN#{i}", "tags": ["even"] if i % 2 == 0 else []})
    table.put_item(Item={"pk": "P", "sk": "NAME#x"})

    seen, start = [], None
    while True:
        page = table.query(
            KeyConditionExpression=Key("pk").eq("P") & Key("sk").begins_with("FN#"),
            FilterExpression=Attr("tags").contains("even"),
            Limit=2,
            **({"ExclusiveStartKey": start} if start else {}),
        )
        seen += [item["sk"] for item in page["Items"]]
        start = page.get("LastEvaluatedKey")
        if not start:
            break

    assert seen == ["FN#0", "FN#2", "FN#4"]
    with pytest.raises(table.condition_failed):
        table.update_item(
            Key={"pk": "P", "sk": "FN#1"},
            UpdateExpression="SET #n = :n",
            ConditionExpression=Attr("tags").contains("even"),
            ExpressionAttributeNames={"#n": "n"},
            ExpressionAttributeValues={":n": 1},
        )
    updated = table.update_item(
        Key={"pk": "P", "sk": "FN#0"},
        UpdateExpression="SET #n = :n",
        ConditionExpression=Attr("tags").contains("even"),
        ExpressionAttributeNames={"#n": "n"},
        ExpressionAttributeValues={":n": 1},
        ReturnValues="ALL_NEW",
    )
    assert updated["Attributes"]["n"] == 1


def test_delete_keys_deletes_more_than_one_batch(platform: Platform) -> None:
    table = Table(TABLE)
    keys = [{"pk": "P", "sk": f"V#{i:03d}"} for i in range(60)]
    for key in keys:
        table.put_item(Item=key)

    table.delete_keys(keys)

    assert table.query(KeyConditionExpression=Key("pk").eq("P"), Select="COUNT")["Count"] == 0
