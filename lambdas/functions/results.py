"""Results of running a function for a subject (seed 000's documents): `original_result` never
changes; `updated_result` is what people edit; `is_edited`, `is_verified`, who and when.

Item `ORG#{org}#RES#{fid}` / `{subject}#{version label}` (a label is `v{n:010d}` or `draft`), so
the results of one subject list by version and the latest version sorts last. Edits and verifies
carry their audit row in the same transaction.
"""

from __future__ import annotations

import re
from typing import Any

from boto3.dynamodb.conditions import Key

from lambdas.functions.audit import Entry
from lambdas.functions.dynamo import Conflict, Table, Update, delete, plain, put, transact

SUBJECT = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._:@-]{0,127}$")


def results_pk(org: str, fid: str) -> str:
    return f"ORG#{org}#RES#{fid}"


def label(version: str) -> str:
    return "draft" if version == "draft" else f"v{int(version):010d}"


def version_of(label_: str) -> str:
    return "draft" if label_ == "draft" else str(int(label_[1:]))


class ResultStore:
    def __init__(self, table: str) -> None:
        self.table_name = table

    @property
    def table(self) -> Table:
        return Table(self.table_name)

    def key(self, org: str, fid: str, subject: str, version: str) -> dict[str, str]:
        return {"pk": results_pk(org, fid), "sk": f"{subject}#{label(version)}"}

    def get(self, org: str, fid: str, subject: str, version: str | None) -> dict[str, Any] | None:
        if version is not None:
            item = self.table.get_item(Key=self.key(org, fid, subject, version), ConsistentRead=True).get("Item")
            return plain(item) if item else None
        page = self.table.query(
            KeyConditionExpression=Key("pk").eq(results_pk(org, fid)) & Key("sk").begins_with(f"{subject}#"),
            ScanIndexForward=False,
            ConsistentRead=True,
        )
        versions = [plain(i) for i in page.get("Items", [])]
        numbered = [r for r in versions if r["version"] != "draft"]
        return (numbered or versions or [None])[0]

    def put_new(self, record: dict[str, Any], audit: Entry, *, replace: bool) -> None:
        key = self.key(record["org"], record["function_id"], record["subject"], record["version"])
        condition = None if replace else "attribute_not_exists(pk)"
        transact([put(self.table_name, {**key, **record}, condition), audit.put(self.table_name)])

    def edit(self, current: dict[str, Any], changes: dict[str, Any], audit: Entry) -> dict[str, Any]:
        key = self.key(current["org"], current["function_id"], current["subject"], current["version"])
        update = Update(
            key=key,
            set=changes,
            condition="attribute_exists(pk) AND updated_at = :seen",
            values={":seen": current["updated_at"]},
        )
        try:
            transact([update.transact(self.table_name), audit.put(self.table_name)])
        except Conflict:
            raise Conflict("the result changed at the same time; read it again") from None
        item = self.table.get_item(Key=key, ConsistentRead=True)["Item"]
        return plain(item)

    def remove(self, current: dict[str, Any], audit: Entry) -> None:
        key = self.key(current["org"], current["function_id"], current["subject"], current["version"])
        transact([delete(self.table_name, key), audit.put(self.table_name)])


def result_view(record: dict[str, Any]) -> dict[str, Any]:
    return {
        "function_id": record["function_id"],
        "subject": record["subject"],
        "version": record["version"],
        "invocation_id": record["invocation_id"],
        "original_result": record["original_result"],
        "updated_result": record["updated_result"],
        "is_edited": record["is_edited"],
        "is_verified": record["is_verified"],
        "verified_by": record.get("verified_by"),
        "verified_at": record.get("verified_at"),
        "created_at": record["created_at"],
        "updated_by": record["updated_by"],
        "updated_at": record["updated_at"],
    }
