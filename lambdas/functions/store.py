"""DynamoDB access for the function registry: functions, name claims, versions, the live alias.

One table (`pk`/`sk`), every key partitioned by organization:

- function       `ORG#{org}` / `FN#{fid}`: configuration, draft state (`revision`, `status`,
  `deployed_revision`), code, `version_counter`, the `live` alias and its history.
- name claim     `ORG#{org}` / `NAME#{name}`: `fid`; makes names unique per org (same transaction).
- version        `ORG#{org}#FN#{fid}` / `V#{n:010d}`: immutable snapshot once published.

State changes are conditional: the draft by `revision`, the alias by `alias_seq`, version numbers
by compare-and-set on `version_counter` (never max+1), so concurrent writers cannot overwrite
each other and a redelivered deploy message changes nothing. Every change a person makes carries
its audit row into the same transaction.
"""

from __future__ import annotations

from typing import Any

from boto3.dynamodb.conditions import Attr, Key

from lambdas.functions.audit import Entry
from lambdas.functions.dynamo import (
    MAX_PAGE,
    BadCursor,
    Conflict,
    Table,
    Update,
    decode_cursor,
    delete,
    encode_cursor,
    plain,
    put,
    transact,
)

__all__ = ["BadCursor", "Conflict", "FunctionStore", "NameTaken"]

NOT_DELETING = "attribute_exists(pk) AND #status <> :deleting"


class NameTaken(Exception):
    pass


def fn_key(org: str, fid: str) -> dict[str, str]:
    return {"pk": f"ORG#{org}", "sk": f"FN#{fid}"}


def name_key(org: str, name: str) -> dict[str, str]:
    return {"pk": f"ORG#{org}", "sk": f"NAME#{name}"}


def versions_pk(org: str, fid: str) -> str:
    return f"ORG#{org}#FN#{fid}"


def version_key(org: str, fid: str, number: int) -> dict[str, str]:
    return {"pk": versions_pk(org, fid), "sk": f"V#{number:010d}"}


class FunctionStore:
    def __init__(self, table: str) -> None:
        self.table_name = table

    @property
    def table(self) -> Table:
        return Table(self.table_name)

    def _apply(self, update: Update, audit: Entry | None, what: str) -> dict[str, Any] | None:
        """Run one update (with its audit row, atomically); the new item, or None if there is none."""
        if audit is None:
            try:
                result = self.table.update_item(**update.params(), ReturnValues="ALL_NEW")
            except self.table.condition_failed:
                raise Conflict(what) from None
            return plain(result["Attributes"])
        try:
            transact([update.transact(self.table_name), audit.put(self.table_name)])
        except Conflict:
            raise Conflict(what) from None
        item = self.table.get_item(Key=update.key, ConsistentRead=True).get("Item")
        return plain(item) if item else None

    # --- functions --------------------------------------------------------------------------
    def create(self, record: dict[str, Any], audit: Entry) -> None:
        """Put a new function and claim its name, together; NameTaken if the name is in use."""
        org, fid, name = record["org"], record["id"], record["name"]
        try:
            transact(
                [
                    put(self.table_name, {**fn_key(org, fid), **record}, "attribute_not_exists(pk)"),
                    put(self.table_name, {**name_key(org, name), "fid": fid}, "attribute_not_exists(pk)"),
                    audit.put(self.table_name),
                ]
            )
        except Conflict as exc:
            if len(exc.args) > 1 and exc.args[1][1:2] == ["ConditionalCheckFailed"]:
                raise NameTaken(name) from None
            raise

    def get(self, org: str, fid: str) -> dict[str, Any] | None:
        item = self.table.get_item(Key=fn_key(org, fid), ConsistentRead=True).get("Item")
        return plain(item) if item else None

    def fid_for_name(self, org: str, name: str) -> str | None:
        item = self.table.get_item(Key=name_key(org, name), ConsistentRead=True).get("Item")
        return str(item["fid"]) if item else None

    def count(self, org: str) -> int:
        """How many functions the org has (for its quota): a keys-only count, no items read out."""
        total, kwargs = (
            0,
            {
                "KeyConditionExpression": Key("pk").eq(f"ORG#{org}") & Key("sk").begins_with("FN#"),
                "Select": "COUNT",
            },
        )
        while True:
            page = self.table.query(**kwargs)
            total += int(page.get("Count", 0))
            if "LastEvaluatedKey" not in page:
                return total
            kwargs["ExclusiveStartKey"] = page["LastEvaluatedKey"]

    def list_functions(
        self, org: str, limit: int, cursor: str | None, tag: str | None = None, only: str | None = None
    ) -> tuple[list[dict[str, Any]], str | None]:
        pk = f"ORG#{org}"
        kwargs: dict[str, Any] = {
            "KeyConditionExpression": Key("pk").eq(pk) & Key("sk").begins_with("FN#"),
            "Limit": min(max(limit, 1), MAX_PAGE),
        }
        start = decode_cursor(cursor, ("pk", pk))
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
        self,
        org: str,
        fid: str,
        changes: dict[str, Any],
        *,
        revision: int | None = None,
        remove: tuple[str, ...] = (),
        audit: Entry | None = None,
    ) -> dict[str, Any]:
        """SET `changes` (and REMOVE `remove`) on a function that is not being deleted; with
        `revision`, only if the draft is still at that revision. Returns the new item."""
        update = Update(
            key=fn_key(org, fid),
            set=changes,
            remove=remove,
            condition=NOT_DELETING,
            names={"#status": "status"},
            values={":deleting": "deleting"},
        )
        if revision is not None:
            update.condition = f"{NOT_DELETING} AND #revision = :revision"
            update.names["#revision"] = "revision"
            update.values[":revision"] = revision
        item = self._apply(update, audit, f"function {fid} changed or is being deleted")
        assert item is not None
        return item

    def delete_everything(self, org: str, fid: str, name: str) -> None:
        """The deployer's last step of a deletion: versions, results, the function, its name claim."""
        for pk in (versions_pk(org, fid), f"ORG#{org}#RES#{fid}"):
            self.table.delete_keys([{"pk": item["pk"], "sk": item["sk"]} for item in self._keys(pk)])
        transact(
            [
                delete(self.table_name, fn_key(org, fid)),
                delete(self.table_name, name_key(org, name), "fid = :fid", {":fid": fid}),
            ]
        )

    def _keys(self, pk: str) -> list[dict[str, Any]]:
        items: list[dict[str, Any]] = []
        kwargs: dict[str, Any] = {"KeyConditionExpression": Key("pk").eq(pk), "ProjectionExpression": "pk, sk"}
        while True:
            page = self.table.query(**kwargs)
            items += page.get("Items", [])
            if "LastEvaluatedKey" not in page:
                return items
            kwargs["ExclusiveStartKey"] = page["LastEvaluatedKey"]

    # --- versions ---------------------------------------------------------------------------
    def add_version(self, fn: dict[str, Any], version: dict[str, Any], audit: Entry) -> None:
        """Allocate `version["version"]` = the function's counter + 1 by compare-and-set on the
        counter, in one transaction with the version item and the audit row. Conflict when another
        publish or a draft change got there first (the caller re-reads and decides again)."""
        org, fid, number = fn["org"], fn["id"], version["version"]
        previous = int(fn.get("version_counter", 0))
        if number != previous + 1:
            raise ValueError("version numbers are allocated one at a time")
        counter = Update(
            key=fn_key(org, fid),
            set={"version_counter": number, "latest_version": number, "published_hash": version["config_hash"]},
            condition="#status = :deployed AND revision = :rev AND "
            "(version_counter = :prev OR attribute_not_exists(version_counter))",
            names={"#status": "status"},
            values={":deployed": "deployed", ":rev": fn["revision"], ":prev": previous},
        )
        transact(
            [
                counter.transact(self.table_name),
                put(self.table_name, {**version_key(org, fid, number), **version}, "attribute_not_exists(pk)"),
                audit.put(self.table_name),
            ]
        )

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
            "Limit": min(max(limit, 1), MAX_PAGE),
        }
        start = decode_cursor(cursor, ("pk", pk))
        if start:
            kwargs["ExclusiveStartKey"] = start
        page = self.table.query(**kwargs)
        return [plain(i) for i in page.get("Items", [])], encode_cursor(page.get("LastEvaluatedKey"))

    def published_versions(self, org: str, fid: str) -> list[dict[str, Any]]:
        """Every version still published, oldest first (for garbage collection)."""
        items: list[dict[str, Any]] = []
        kwargs: dict[str, Any] = {
            "KeyConditionExpression": Key("pk").eq(versions_pk(org, fid)) & Key("sk").begins_with("V#"),
            "FilterExpression": Attr("status").eq("published"),
        }
        while True:
            page = self.table.query(**kwargs)
            items += [plain(i) for i in page.get("Items", [])]
            if "LastEvaluatedKey" not in page:
                return items
            kwargs["ExclusiveStartKey"] = page["LastEvaluatedKey"]

    def update_version(self, org: str, fid: str, number: int, changes: dict[str, Any], *, only_if_status: str) -> bool:
        """SET `changes` on a version still in `only_if_status`; False when it has moved on."""
        update = Update(
            key=version_key(org, fid, number),
            set=changes,
            condition="#status = :expected",
            names={"#status": "status"},
            values={":expected": only_if_status},
        )
        try:
            self.table.update_item(**update.params())
        except self.table.condition_failed:
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

    # --- the live alias ---------------------------------------------------------------------
    def move_alias(
        self, fn: dict[str, Any], live: dict[str, Any], history: list[dict[str, Any]], by: str, at: str, audit: Entry
    ) -> dict[str, Any]:
        """Point `live` somewhere new (compare-and-set on `alias_seq`): the deployer applies it."""
        seq = int(fn.get("alias_seq", 0))
        update = Update(
            key=fn_key(fn["org"], fn["id"]),
            set={
                "live": live,
                "live_history": history,
                "alias_seq": seq + 1,
                "alias_status": "updating",
                "updated_by": by,
                "updated_at": at,
            },
            remove=("alias_error",),
            condition=f"{NOT_DELETING} AND (alias_seq = :old OR attribute_not_exists(alias_seq))",
            names={"#status": "status"},
            values={":deleting": "deleting", ":old": seq},
        )
        item = self._apply(update, audit, "the live alias changed at the same time; try again")
        assert item is not None
        return item

    def alias_done(self, org: str, fid: str, seq: int, error: str | None) -> bool:
        """Record the outcome of applying alias change `seq` (ignored if a newer one exists)."""
        update = Update(
            key=fn_key(org, fid),
            set={"alias_status": "failed" if error else "ready", **({"alias_error": error} if error else {})},
            remove=() if error else ("alias_error",),
            condition="alias_seq = :seq",
            values={":seq": seq},
        )
        try:
            self._apply(update, None, "superseded")
        except Conflict:
            return False
        return True
