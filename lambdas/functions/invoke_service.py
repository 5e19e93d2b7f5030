"""Invoking as the platform does it: quota first, a record for every call, the mode's own path
(sync, async, dry run, batch), and usage counted once per finished invocation.

Routes call these with the function already loaded and the caller checked.
"""

from __future__ import annotations

import json
import secrets
import time
from typing import Any

from aws_lambda_powertools.event_handler.exceptions import BadRequestError

from lambdas.common.aws import client
from lambdas.common.http import HttpError
from lambdas.common.settings import need
from lambdas.functions import callbacks, names
from lambdas.functions.invocations import InvocationStore, iso, record_view
from lambdas.functions.invoking import (
    InvokeRequest,
    check_sync,
    invoke_dry_run,
    invoke_event,
    invoke_sync,
)
from lambdas.functions.settings import settings
from lambdas.functions.store import FunctionStore
from lambdas.functions.usage import QuotaExceeded, Usage

MAX_SYNC_PAYLOAD = 6 * 1024 * 1024  # Lambda's synchronous request limit
MAX_EVENT_PAYLOAD = 256 * 1024  # Lambda's asynchronous (Event) request limit
MAX_BATCH = 25
MAX_BATCH_ITEM_INLINE = 100 * 1024
INPUT_URL_MIN_SECONDS = 3600


def invocations() -> InvocationStore:
    s = settings()
    return InvocationStore(s.table, s.code_bucket, s.invocation_retention_days)


def usage() -> Usage:
    return Usage(settings().table, settings().quotas)


def take_quota(org: str, count: int = 1, records: list[dict[str, Any]] | None = None) -> None:
    """Reserve quota and create `records`, in one transaction (one round trip, and no record
    without its reservation or the other way round)."""
    operations = [invocations().put_operation(r) for r in records or []]
    try:
        usage().take(org, count, with_operations=operations)
    except QuotaExceeded as exc:
        headers = {"Retry-After": str(exc.retry_after)} if exc.retry_after else None
        raise QuotaError(str(exc), headers) from None


class QuotaError(HttpError):
    """429 with `Retry-After` when waiting helps (the per-minute limit), without when it does not."""

    def __init__(self, message: str, headers: dict[str, str] | None) -> None:
        super().__init__(429, message)
        self.headers = headers or {}


def validate_payload(fn: dict[str, Any], payload: Any) -> None:
    schema = fn.get("input_schema")
    if not schema:
        return
    from jsonschema import Draft202012Validator
    from jsonschema.exceptions import best_match

    error = best_match(Draft202012Validator(schema).iter_errors(payload))
    if error is not None:
        where = "/".join(str(p) for p in error.absolute_path) or "(root)"
        raise BadRequestError(f"payload does not match the function's input_schema at {where}: {error.message}")


def encode(payload: Any) -> bytes:
    return json.dumps(payload, separators=(",", ":")).encode()


def _finish(record: dict[str, Any], outcome: dict[str, Any], keep_result: bool) -> None:
    changes = {
        "status": outcome["status"],
        "executed_version": outcome.get("executed_version"),
        "request_id": outcome.get("request_id"),
        "duration_ms": outcome.get("duration_ms"),
        "billed_duration_ms": outcome.get("billed_duration_ms"),
        "error": outcome.get("error"),
    }
    if keep_result and outcome["status"] == "succeeded":
        changes["result"] = outcome.get("result")
    billed = outcome.get("billed_duration_ms") or outcome.get("duration_ms")
    charge = usage().charge(record["org"], billed, record["memory_mb"])
    finished = {k: v for k, v in changes.items() if v is not None}
    invocations().finish(record["org"], record["invocation_id"], finished, charge)


# --- sync ------------------------------------------------------------------------------------------------
def run_sync(
    fn: dict[str, Any],
    request: InvokeRequest,
    actor: str,
    *,
    mode: str = "sync",
    event: bytes | None = None,
    **extra: Any,
) -> dict[str, Any]:
    check_sync(fn)
    store = invocations()
    record = store.new(fn, mode=mode, qualifier=request.label, payload=request.payload, actor=actor, **extra)
    record.update(status="running", started_at=iso(time.time()))
    take_quota(fn["org"], records=[record])
    try:
        outcome = invoke_sync(fn, InvokeRequest(request.qualifier, request.label, event or request.payload))
    except Exception as exc:
        # A platform fault (Lambda unreachable, throttled, not deployed): the record says so
        # rather than staying `running`, and the caller gets the error (4xx/429, or a 5xx).
        message = exc.msg if isinstance(exc, HttpError) else f"{type(exc).__name__}: the call to Lambda failed"
        failure = {"status": "failed", "error": {"type": "Platform", "message": message}}
        store.finish(fn["org"], record["invocation_id"], failure)
        raise
    _finish(record, outcome, keep_result=bool(fn.get("store_payloads")) or mode == "run")
    return {"invocation_id": record["invocation_id"], **outcome}


# --- async ----------------------------------------------------------------------------------------------
def keep_input(org: str, iid: str, payload: bytes) -> str:
    """Store an invocation's input where its callback token (or a presigned URL) can read it."""
    key = names.input_key(org, iid)
    client("s3").put_object(Bucket=settings().code_bucket, Key=key, Body=payload, ContentType="application/json")
    return key


def _by_reference(org: str, iid: str, payload: bytes, valid_for: int) -> bytes:
    """Inputs over Lambda's 256 KB Event limit travel through the code bucket: the function gets a
    presigned URL to read them (its execution role can read nothing itself)."""
    from lambdas.common.s3 import presign_client

    key = keep_input(org, iid, payload)
    url = presign_client().generate_presigned_url(
        "get_object", Params={"Bucket": settings().code_bucket, "Key": key}, ExpiresIn=valid_for
    )
    from lambdas.functions.invocations import payload_digest

    sha, size = payload_digest(payload)
    return encode({"platform_input": {"url": url, "size": size, "sha256": sha}})


def queue_seconds() -> int:
    return settings().async_max_event_age_seconds


def run_async(
    fn: dict[str, Any],
    request: InvokeRequest,
    actor: str,
    *,
    callback_url: str | None,
    with_token: bool,
    base_url: str,
    batch: dict[str, Any] | None = None,
) -> dict[str, Any]:
    if len(request.payload) > MAX_SYNC_PAYLOAD:
        raise HttpError(413, f"payload exceeds the {MAX_SYNC_PAYLOAD} byte limit (6 MB)")
    store = invocations()
    record = store.new(
        fn, mode="batch" if batch else "async", qualifier=request.label, payload=request.payload, actor=actor,
        callback_url=callback_url, **(batch or {}),
    )  # fmt: skip
    event = request.payload
    if with_token:
        token, claims = callbacks.mint(
            fn["org"], fn["id"], record["invocation_id"], timeout_seconds=int(fn["timeout_seconds"]),
            queue_seconds=queue_seconds(),
        )  # fmt: skip
        record["token_jti"] = claims.jti
        keep_input(fn["org"], record["invocation_id"], request.payload)
        event = envelope(fn, record, json.loads(request.payload), base_url, token)
    # A batch item travels inside an SQS message (256 KB, JSON-escaped): keep room for escaping.
    if len(event) > (MAX_EVENT_PAYLOAD if batch is None else MAX_BATCH_ITEM_INLINE):
        valid_for = max(INPUT_URL_MIN_SECONDS, queue_seconds() + int(fn["timeout_seconds"]) + 60)
        event = _by_reference(fn["org"], record["invocation_id"], event, valid_for)
        record["input_by_reference"] = True
    if batch is not None:  # the batch reserves quota for all its records at once
        return {"record": record, "event": event}
    take_quota(fn["org"], records=[record])
    request_id = invoke_event(fn, request.qualifier, event)
    store.remember_request(fn["org"], record["invocation_id"], request_id)
    store.update(fn["org"], record["invocation_id"], {"request_id": request_id})
    return {"invocation_id": record["invocation_id"], "status": "queued", "request_id": request_id}


def envelope(
    fn: dict[str, Any], record: dict[str, Any], payload: Any, base_url: str, token: str, **extra: Any
) -> bytes:
    """The event of an invocation that may call back (seed 000's shape): ids, the input, and the
    callback URL and token that open only this invocation's `/v1/callback` routes."""
    return encode(
        {
            "organization_id": fn["org"],
            "function_id": fn["id"],
            "invocation_id": record["invocation_id"],
            **extra,
            "input": payload,
            "callback_url": f"{base_url}/v1/callback/invocations/{record['invocation_id']}",
            "callback_token": token,
        }
    )


# --- dry run --------------------------------------------------------------------------------------------
def dry_run(fn: dict[str, Any], request: InvokeRequest, mode_limit: int) -> dict[str, Any]:
    """Everything an invocation would check, without running anything or counting against quotas."""
    checks = ["permission: the key may invoke this function"]
    if len(request.payload) > mode_limit:
        raise HttpError(413, f"payload exceeds the {mode_limit} byte limit")
    checks.append(f"payload: {len(request.payload)} bytes, within the {mode_limit} byte limit")
    validate_payload(fn, json.loads(request.payload))
    checks.append(
        "payload: matches the input_schema" if fn.get("input_schema") else "payload: no input_schema to check"
    )
    try:
        usage().check_budget(fn["org"])
    except QuotaExceeded as exc:
        raise HttpError(429, str(exc)) from None
    checks.append("quota: within this month's GB-second budget")
    invoke_dry_run(fn, request.qualifier)
    checks.append(f"lambda: {request.label} is deployed and invokable (DryRun)")
    return {"status": "valid", "qualifier": request.label, "checks": checks}


# --- batch ----------------------------------------------------------------------------------------------
def run_batch(fn: dict[str, Any], qualifier: Any, payloads: Any, actor: str, store: FunctionStore) -> dict[str, Any]:
    if not isinstance(payloads, list) or not payloads:
        raise BadRequestError("payloads must be a non-empty list")
    if len(payloads) > MAX_BATCH:
        raise HttpError(413, f"a batch holds at most {MAX_BATCH} payloads, got {len(payloads)}")
    requests = [InvokeRequest.parse({"qualifier": qualifier, "payload": p}, fn, store) for p in payloads]
    for index, request in enumerate(requests):
        if len(request.payload) > MAX_SYNC_PAYLOAD:
            raise HttpError(413, f"payload {index} exceeds the {MAX_SYNC_PAYLOAD} byte limit (6 MB)")
        try:
            validate_payload(fn, payloads[index])
        except BadRequestError as exc:
            raise BadRequestError(f"payload {index}: {exc.msg}") from None
    batch_id = "bt" + secrets.token_hex(10)
    items, messages, records = [], [], []
    for index, request in enumerate(requests):
        queued = run_async(
            fn, request, actor, callback_url=None, with_token=False, base_url="",
            batch={"batch_id": batch_id, "batch_index": index},
        )  # fmt: skip
        iid = queued["record"]["invocation_id"]
        records.append(queued["record"])
        items.append({"index": index, "invocation_id": iid})
        messages.append(
            {
                "Id": str(index),
                "MessageBody": json.dumps(
                    {"org": fn["org"], "iid": iid, "qualifier": request.qualifier, "event": queued["event"].decode()}
                ),
            }
        )
    # DynamoDB transactions hold at most 100 operations: 2 for the quota + 25 records fit.
    take_quota(fn["org"], len(records), records=records)
    url = need(settings().batch_queue_url, names.ENV_BATCH_QUEUE_URL)
    for start in range(0, len(messages), 10):
        answer = client("sqs").send_message_batch(QueueUrl=url, Entries=messages[start : start + 10])
        if answer.get("Failed"):
            raise HttpError(503, "could not queue every batch item; retry with the same Idempotency-Key")
    return {"batch_id": batch_id, "status": "queued", "invocations": items}


def view(record: dict[str, Any], with_result: bool) -> dict[str, Any]:
    store = invocations()
    return record_view(record, store.result(record) if with_result else None, include_result=with_result)
