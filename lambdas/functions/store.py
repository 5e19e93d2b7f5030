"""DynamoDB access for Functions: every read and state change the API and the deployer make.

One table (`pk`/`sk`), every key partitioned by organization:

- function       `ORG#{org}` / `FN#{fid}`: configuration, draft state (`revision`, `status`,
  `deployed_revision`), code, `version_counter`, the `live` alias and its history.
- name claim     `ORG#{org}` / `NAME#{name}`: `fid`; makes names unique per org (same transaction).
- version        `ORG#{org}#FN#{fid}` / `V#{n:010d}`: immutable snapshot once published.

State changes are conditional: the draft by `revision`, the alias by `alias_seq`, version numbers
by compare-and-set on `version_counter` (never max+1), so concurrent writers cannot overwrite
each other and a redelivered deploy message changes nothing.
"""

from __future__ import annotations

import base64
import binascii
import json
from decimal import Decimal
from typing import Any

from boto3.dynamodb.conditions import Attr, Key
from boto3.dynamodb.types import TypeSerializer

from lambdas.common.aws import client, resource

_serializer = TypeSerializer()
MAX_LIST = 100


class NameTaken(Exception):
    pass


class Conflict(Exception):
    """A conditional write lost to another writer (or the item changed state)."""


class BadCursor(ValueError):
    pass


def fn_key(org: str, fid: str) -> dict[str, str]:
    return {"pk": f"ORG#{org}", "sk": f"FN#{fid}"}


def name_key(org: str, name: str) -> dict[str, str]:
    return {"pk": f"ORG#{org}", "sk": f"NAME#{name}"}


def versions_pk(org: str, fid: str) -> str:
    return f"ORG#{org}#FN#{fid}"


def version_key(org: str, fid: str, number: int) -> dict[str, str]:
    return {"pk": versions_pk(org, fid), "sk": f"V#{number:010d}"}


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


def _typed(item: dict[str, Any]) -> dict[str, Any]:
    return {k: _serializer.serialize(v) for k, v in dynamo(item).items()}


def encode_cursor(key: dict[str, Any] | None) -> str | None:
    if not key:
        return None
    return base64.urlsafe_b64encode(json.dumps(plain(key), separators=(",", ":")).encode()).decode().rstrip("=")


def decode_cursor(cursor: str | None, pk: str) -> dict[str, Any] | None:
    """An opaque cursor back to an ExclusiveStartKey, only if it belongs to partition `pk` (a cursor
    can never be used to read another organization's items)."""
    if not cursor:
        return None
    try:
        key = json.loads(base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)))
    except (ValueError, binascii.Error):
        raise BadCursor("invalid cursor") from None
    if not isinstance(key, dict) or key.get("pk") != pk or not isinstance(key.get("sk"), str) or len(key) != 2:
        raise BadCursor("invalid cursor")
    return key


class FunctionStore:
    def __init__(self, table: str) -> None:
        self.table_name = table

    @property
    def table(self) -> Any:
        return resource("dynamodb").Table(self.table_name)

    # --- functions --------------------------------------------------------------------------
    def create(self, record: dict[str, Any]) -> None:
        """Put a new function and claim its name, together; NameTaken if the name is in use."""
        org, fid, name = record["org"], record["id"], record["name"]
        try:
            client("dynamodb").transact_write_items(
                TransactItems=[
                    {
                        "Put": {
                            "TableName": self.table_name,
                            "Item": _typed({**fn_key(org, fid), **record}),
                            "ConditionExpression": "attribute_not_exists(pk)",
                        }
                    },
                    {
                        "Put": {
                            "TableName": self.table_name,
                            "Item": _typed({**name_key(org, name), "fid": fid}),
                            "ConditionExpression": "attribute_not_exists(pk)",
                        }
                    },
                ]
            )
        except client("dynamodb").exceptions.TransactionCanceledException as exc:
            reasons = [r.get("Code") for r in exc.response.get("CancellationReasons", [])]
            if len(reasons) > 1 and reasons[1] == "ConditionalCheckFailed":
                raise NameTaken(name) from None
            raise

    def get(self, org: str, fid: str) -> dict[str, Any] | None:
        item = self.table.get_item(Key=fn_key(org, fid), ConsistentRead=True).get("Item")
        return plain(item) if item else None

    def fid_for_name(self, org: str, name: str) -> str | None:
        item = self.table.get_item(Key=name_key(org, name), ConsistentRead=True).get("Item")
        return str(item["fid"]) if item else None

    def list_functions(
        self, org: str, limit: int, cursor: str | None, tag: str | None = None, only: str | None = None
    ) -> tuple[list[dict[str, Any]], str | None]:
        pk = f"ORG#{org}"
        kwargs: dict[str, Any] = {
            "KeyConditionExpression": Key("pk").eq(pk) & Key("sk").begins_with("FN#"),
            "Limit": min(max(limit, 1), MAX_LIST),
        }
        start = decode_cursor(cursor, pk)
        if start:
            kwargs["ExclusiveStartKey"] = start
        condition: Any = None
        if tag:
            condition = Attr("tags").contains(tag)
        if only:
            condition = Attr("id").eq(only) if condition is None else condition & Attr("id").eq(only)
        if condition is not None:
            kwargs["FilterExpression"] = condition
        page = self.table.query(**kwargs)
        return [plain(i) for i in page.get("Items", [])], encode_cursor(page.get("LastEvaluatedKey"))

    def update(
        self, org: str, fid: str, changes: dict[str, Any], *, revision: int | None = None, remove: tuple[str, ...] = ()
    ) -> dict[str, Any]:
        """SET `changes` (and REMOVE `remove`) on a function that is not being deleted; with
        `revision`, only if the draft is still at that revision. Returns the new item."""
        names = {f"#a{i}": k for i, k in enumerate(changes)}
        values = {f":v{i}": dynamo(v) for i, v in enumerate(changes.values())}
        expression = "SET " + ", ".join(f"#a{i} = :v{i}" for i in range(len(changes)))
        if remove:
            names.update({f"#r{i}": k for i, k in enumerate(remove)})
            expression += " REMOVE " + ", ".join(f"#r{i}" for i in range(len(remove)))
        condition = "attribute_exists(pk) AND #status <> :deleting"
        names["#status"] = "status"
        values[":deleting"] = "deleting"
        if revision is not None:
            condition += " AND #revision = :revision"
            names["#revision"] = "revision"
            values[":revision"] = revision
        try:
            result = self.table.update_item(
                Key=fn_key(org, fid),
                UpdateExpression=expression,
                ConditionExpression=condition,
                ExpressionAttributeNames=names,
                ExpressionAttributeValues=values,
                ReturnValues="ALL_NEW",
            )
        except self.table.meta.client.exceptions.ConditionalCheckFailedException:
            raise Conflict(f"function {fid} changed or is being deleted") from None
        return plain(result["Attributes"])

    def mark_deleting(self, org: str, fid: str, by: str, at: str) -> dict[str, Any]:
        return self.update(org, fid, {"status": "deleting", "updated_by": by, "updated_at": at})

    def delete_everything(self, org: str, fid: str, name: str) -> None:
        """The deployer's last step of a deletion: versions, the function and its name claim."""
        table = self.table
        with table.batch_writer() as batch:
            for version in self._all(versions_pk(org, fid)):
                batch.delete_item(Key={"pk": version["pk"], "sk": version["sk"]})
        client("dynamodb").transact_write_items(
            TransactItems=[
                {"Delete": {"TableName": self.table_name, "Key": _typed(fn_key(org, fid))}},
                {
                    "Delete": {
                        "TableName": self.table_name,
                        "Key": _typed(name_key(org, name)),
                        "ConditionExpression": "fid = :fid",
                        "ExpressionAttributeValues": {":fid": {"S": fid}},
                    }
                },
            ]
        )

    def _all(self, pk: str) -> list[dict[str, Any]]:
        items: list[dict[str, Any]] = []
        kwargs: dict[str, Any] = {"KeyConditionExpression": Key("pk").eq(pk), "ProjectionExpression": "pk, sk"}
        while True:
            page = self.table.query(**kwargs)
            items += page.get("Items", [])
            if "LastEvaluatedKey" not in page:
                return items
            kwargs["ExclusiveStartKey"] = page["LastEvaluatedKey"]

    # --- versions ---------------------------------------------------------------------------
    def add_version(self, fn: dict[str, Any], version: dict[str, Any]) -> None:
        """Allocate `version["version"]` = the function's counter + 1 by compare-and-set on the
        counter, in one transaction with the version item itself. Conflict when another publish or
        a draft change got there first (the caller re-reads and decides again)."""
        org, fid, number = fn["org"], fn["id"], version["version"]
        previous = int(fn.get("version_counter", 0))
        if number != previous + 1:
            raise ValueError("version numbers are allocated one at a time")
        try:
            client("dynamodb").transact_write_items(
                TransactItems=[
                    {
                        "Update": {
                            "TableName": self.table_name,
                            "Key": _typed(fn_key(org, fid)),
                            "UpdateExpression": "SET version_counter = :n, latest_version = :n, published_hash = :h",
                            "ConditionExpression": "#status = :deployed AND revision = :rev AND "
                            "(version_counter = :prev OR attribute_not_exists(version_counter))",
                            "ExpressionAttributeNames": {"#status": "status"},
                            "ExpressionAttributeValues": _typed(
                                {
                                    ":n": number,
                                    ":h": version["config_hash"],
                                    ":deployed": "deployed",
                                    ":rev": fn["revision"],
                                    ":prev": previous,
                                }
                            ),
                        }
                    },
                    {
                        "Put": {
                            "TableName": self.table_name,
                            "Item": _typed({**version_key(org, fid, number), **version}),
                            "ConditionExpression": "attribute_not_exists(pk)",
                        }
                    },
                ]
            )
        except client("dynamodb").exceptions.TransactionCanceledException:
            raise Conflict(f"function {fid} changed while publishing") from None

    def get_version(self, org: str, fid: str, number: int) -> dict[str, Any] | None:
        item = self.table.get_item(Key=version_key(org, fid, number), ConsistentRead=True).get("Item")
        return plain(item) if item else None

    def list_versions(
        self, org: str, fid: str, limit: int, cursor: str | None
    ) -> tuple[list[dict[str, Any]], str | None]:
        pk = versions_pk(org, fid)
        kwargs: dict[str, Any] = {
            "KeyConditionExpression": Key("pk").eq(pk) & Key("sk").begins_with("V#"),
            "ScanIndexForward": False,
            "Limit": min(max(limit, 1), MAX_LIST),
        }
        start = decode_cursor(cursor, pk)
        if start:
            kwargs["ExclusiveStartKey"] = start
        page = self.table.query(**kwargs)
        return [plain(i) for i in page.get("Items", [])], encode_cursor(page.get("LastEvaluatedKey"))

    def update_version(self, org: str, fid: str, number: int, changes: dict[str, Any], *, only_if_status: str) -> bool:
        """SET `changes` on a version still in `only_if_status`; False when it has moved on."""
        names = {f"#a{i}": k for i, k in enumerate(changes)} | {"#status": "status"}
        values = {f":v{i}": dynamo(v) for i, v in enumerate(changes.values())} | {":expected": only_if_status}
        try:
            self.table.update_item(
                Key=version_key(org, fid, number),
                UpdateExpression="SET " + ", ".join(f"#a{i} = :v{i}" for i in range(len(changes))),
                ConditionExpression="#status = :expected",
                ExpressionAttributeNames=names,
                ExpressionAttributeValues=values,
            )
        except self.table.meta.client.exceptions.ConditionalCheckFailedException:
            return False
        return True

    # --- the live alias ---------------------------------------------------------------------
    def move_alias(
        self, fn: dict[str, Any], live: dict[str, Any], history: list[dict[str, Any]], by: str, at: str
    ) -> dict[str, Any]:
        """Point `live` somewhere new (compare-and-set on `alias_seq`): the deployer applies it."""
        seq = int(fn.get("alias_seq", 0))
        names = {"#status": "status"}
        values = dynamo(
            {
                ":live": live,
                ":history": history,
                ":seq": seq + 1,
                ":old": seq,
                ":updating": "updating",
                ":by": by,
                ":at": at,
                ":deleting": "deleting",
            }
        )
        try:
            result = self.table.update_item(
                Key=fn_key(fn["org"], fn["id"]),
                UpdateExpression="SET live = :live, live_history = :history, alias_seq = :seq, "
                "alias_status = :updating, updated_by = :by, updated_at = :at REMOVE alias_error",
                ConditionExpression="attribute_exists(pk) AND #status <> :deleting AND "
                "(alias_seq = :old OR attribute_not_exists(alias_seq))",
                ExpressionAttributeNames=names,
                ExpressionAttributeValues=values,
                ReturnValues="ALL_NEW",
            )
        except self.table.meta.client.exceptions.ConditionalCheckFailedException:
            raise Conflict("the live alias changed at the same time; try again") from None
        return plain(result["Attributes"])

    def alias_done(self, org: str, fid: str, seq: int, error: str | None) -> bool:
        """Record the outcome of applying alias change `seq` (ignored if a newer one exists)."""
        changes = {"alias_status": "failed" if error else "ready"}
        expression = "SET alias_status = :s" + (", alias_error = :e" if error else " REMOVE alias_error")
        values: dict[str, Any] = {":s": changes["alias_status"], ":seq": seq}
        if error:
            values[":e"] = error
        try:
            self.table.update_item(
                Key=fn_key(org, fid),
                UpdateExpression=expression,
                ConditionExpression="alias_seq = :seq",
                ExpressionAttributeValues=values,
            )
        except self.table.meta.client.exceptions.ConditionalCheckFailedException:
            return False
        return True

    def record_lambda_version(self, org: str, fid: str, lambda_version: str, number: int) -> None:
        """Remember which platform version a Lambda version is (invocations report the latter)."""
        self.table.update_item(
            Key=fn_key(org, fid),
            UpdateExpression="SET lambda_versions.#lv = :n",
            ConditionExpression="attribute_exists(pk)",
            ExpressionAttributeNames={"#lv": lambda_version},
            ExpressionAttributeValues={":n": number},
        )
