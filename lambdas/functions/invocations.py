"""Invocation records: one per call (sync, async, batch item, run, dry runs excluded), kept for
the configured retention (TTL).

- record   `ORG#{org}#INV` / `{iid}`; GSI1 `ORG#{org}#FN#{fid}#INV` / `{iid}` lists a function's
  invocations newest first. `iid` sorts by creation time.
- lookup   `REQ#{lambda request id}` / `REQ` -> org, iid: how the recorder finds an async
  invocation's record from Lambda's destination record (which carries only Lambda's request id).

Bodies are not stored unless the function opts in (`store_payloads`); results up to 256 KB are
kept inline, larger ones in the code bucket under `results/`. Status moves queued -> running ->
succeeded | failed | timed_out under conditions, so a late or repeated destination record cannot
move a finished invocation back.
"""

from __future__ import annotations

import hashlib
import json
import secrets
import time
from datetime import UTC, datetime
from typing import Any

from boto3.dynamodb.conditions import Key

from lambdas.common.aws import client
from lambdas.functions import names
from lambdas.functions.dynamo import (
    MAX_PAGE,
    Conflict,
    Table,
    Update,
    decode_cursor,
    encode_cursor,
    plain,
    put,
    transact,
)

FINAL = ("succeeded", "failed", "timed_out")
INLINE_RESULT_BYTES = 256 * 1024
_CROCKFORD = "0123456789abcdefghjkmnpqrstvwxyz"


def new_invocation_id(now_ms: int | None = None) -> str:
    """`iv` + 10 base32 characters of the time in ms + 16 random ones: sortable by creation."""
    value = now_ms if now_ms is not None else int(time.time() * 1000)
    stamp = ""
    for _ in range(10):
        stamp = _CROCKFORD[value & 31] + stamp
        value >>= 5
    return "iv" + stamp + "".join(secrets.choice(_CROCKFORD) for _ in range(16))


def iso(epoch: float) -> str:
    return datetime.fromtimestamp(epoch, UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def inv_pk(org: str) -> str:
    return f"ORG#{org}#INV"


def fn_inv_pk(org: str, fid: str) -> str:
    return f"ORG#{org}#FN#{fid}#INV"


def payload_digest(payload: bytes) -> tuple[str, int]:
    return hashlib.sha256(payload).hexdigest(), len(payload)


class InvocationStore:
    def __init__(self, table: str, bucket: str, retention_days: int) -> None:
        self.table_name = table
        self.bucket = bucket
        self.retention_days = retention_days

    @property
    def table(self) -> Table:
        return Table(self.table_name)

    def _ttl(self) -> int:
        return int(time.time()) + self.retention_days * 86400

    def new(
        self, fn: dict[str, Any], *, mode: str, qualifier: str, payload: bytes, actor: str, **extra: Any
    ) -> dict[str, Any]:
        """A fresh record (not yet stored)."""
        now = time.time()
        iid = extra.pop("iid", None) or new_invocation_id(int(now * 1000))
        sha, size = payload_digest(payload)
        record: dict[str, Any] = {
            "pk": inv_pk(fn["org"]),
            "sk": iid,
            names.GSI1_PK: fn_inv_pk(fn["org"], fn["id"]),
            names.GSI1_SK: iid,
            "invocation_id": iid,
            "org": fn["org"],
            "function_id": fn["id"],
            "function_name": fn["name"],
            "lambda_function": fn["lambda_function"],
            "memory_mb": fn["memory_mb"],
            "mode": mode,
            "qualifier": qualifier,
            "status": "queued",
            "created_at": iso(now),
            "created_ms": int(now * 1000),
            "payload_sha256": sha,
            "payload_size": size,
            "invoked_by": actor,
            names.TTL_ATTRIBUTE: self._ttl(),
        }
        if fn.get("store_payloads"):
            record["payload"] = payload.decode("utf-8", errors="replace")
        record.update({k: v for k, v in extra.items() if v is not None})
        return record

    def put(self, record: dict[str, Any]) -> None:
        self.table.put_item(Item=record, ConditionExpression="attribute_not_exists(pk)")

    def put_operation(self, record: dict[str, Any]) -> dict[str, Any]:
        """The transaction operation that creates `record` (written with its quota reservation)."""
        return put(self.table_name, record, "attribute_not_exists(pk)")

    def get(self, org: str, iid: str) -> dict[str, Any] | None:
        item = self.table.get_item(Key={"pk": inv_pk(org), "sk": iid}, ConsistentRead=True).get("Item")
        return plain(item) if item else None

    def list_for_function(
        self, org: str, fid: str, limit: int, cursor: str | None
    ) -> tuple[list[dict[str, Any]], str | None]:
        partition = fn_inv_pk(org, fid)
        kwargs: dict[str, Any] = {
            "IndexName": names.GSI1,
            "KeyConditionExpression": Key(names.GSI1_PK).eq(partition),
            "ScanIndexForward": False,
            "Limit": min(max(limit, 1), MAX_PAGE),
        }
        start = decode_cursor(cursor, (names.GSI1_PK, partition))
        if start:
            kwargs["ExclusiveStartKey"] = start
        page = self.table.query(**kwargs)
        return [plain(i) for i in page.get("Items", [])], encode_cursor(page.get("LastEvaluatedKey"))

    def remember_request(self, org: str, iid: str, request_id: str) -> None:
        self.table.put_item(
            Item={"pk": f"REQ#{request_id}", "sk": "REQ", "org": org, "iid": iid, names.TTL_ATTRIBUTE: self._ttl()}
        )

    def by_request(self, request_id: str) -> tuple[str, str] | None:
        item = self.table.get_item(Key={"pk": f"REQ#{request_id}", "sk": "REQ"}, ConsistentRead=True).get("Item")
        return (str(item["org"]), str(item["iid"])) if item else None

    def update(self, org: str, iid: str, changes: dict[str, Any], *, unless_final: bool = True) -> bool:
        """SET `changes`; with `unless_final`, only while the invocation has not finished."""
        if unless_final:
            update = self._unfinished_update(org, iid, changes)
        else:
            update = Update(key={"pk": inv_pk(org), "sk": iid}, set=changes, condition="attribute_exists(pk)")
        try:
            self.table.update_item(**update.params())
        except self.table.condition_failed:
            return False
        return True

    def finish(self, org: str, iid: str, outcome: dict[str, Any], charge: dict[str, Any] | None = None) -> bool:
        """Record a final status, result and timings, together with `charge` (the usage it adds) in
        one transaction, so usage is counted exactly once; False if it had already finished."""
        changes = {k: v for k, v in outcome.items() if k != "result"}
        changes["finished_at"] = changes.get("finished_at") or iso(time.time())
        if "result" in outcome:
            changes.update(self._stored_result(org, iid, outcome["result"]))
        if charge is None:
            return self.update(org, iid, changes)
        update = self._unfinished_update(org, iid, changes)
        try:
            transact([update.transact(self.table_name), charge])
        except Conflict:
            return False
        return True

    def _unfinished_update(self, org: str, iid: str, changes: dict[str, Any]) -> Update:
        update = Update(key={"pk": inv_pk(org), "sk": iid}, set=changes)
        update.condition = "attribute_exists(pk) AND NOT #status IN (:a, :b, :c)"
        update.names["#status"] = "status"
        update.values.update({":a": FINAL[0], ":b": FINAL[1], ":c": FINAL[2]})
        return update

    def _stored_result(self, org: str, iid: str, result: Any) -> dict[str, Any]:
        encoded = json.dumps(result, separators=(",", ":"), default=str).encode()
        if len(encoded) <= INLINE_RESULT_BYTES:
            return {"result_json": encoded.decode()}
        key = names.result_key(org, iid)
        client("s3").put_object(Bucket=self.bucket, Key=key, Body=encoded, ContentType="application/json")
        return {"result_key": key, "result_size": len(encoded)}

    def result(self, record: dict[str, Any]) -> Any:
        if "result_json" in record:
            return json.loads(record["result_json"])
        if "result_key" in record:
            body = client("s3").get_object(Bucket=self.bucket, Key=record["result_key"])["Body"].read()
            return json.loads(body)
        return None


def record_view(record: dict[str, Any], result: Any = None, include_result: bool = False) -> dict[str, Any]:
    view = {
        "invocation_id": record["invocation_id"],
        "function_id": record["function_id"],
        "function_name": record["function_name"],
        "mode": record["mode"],
        "qualifier": record["qualifier"],
        "executed_version": record.get("executed_version"),
        "request_id": record.get("request_id"),
        "status": record["status"],
        "created_at": record["created_at"],
        "started_at": record.get("started_at"),
        "finished_at": record.get("finished_at"),
        "duration_ms": record.get("duration_ms"),
        "billed_duration_ms": record.get("billed_duration_ms"),
        "error": record.get("error"),
        "payload_sha256": record["payload_sha256"],
        "payload_size": record["payload_size"],
        "batch_id": record.get("batch_id"),
        "subject": record.get("subject"),
        "attempts": record.get("attempts"),
        "progress": record.get("progress"),
    }
    if include_result:
        view["result"] = result
    return view
