"""Invocation routes: invoke (sync, async, dry run), batch, the invocation records and their logs.

`Idempotency-Key` makes an invoke or a batch safe to retry: within 24 hours the same key (for the
same org and function) returns the first call's answer and never runs the function again
(Powertools' idempotency utility on its own DynamoDB table). Reusing a key for a different request
is refused (422); a retry while the first call is still being accepted gets 409.
"""

from __future__ import annotations

import hashlib
from typing import Any

from aws_lambda_powertools.event_handler import Response
from aws_lambda_powertools.event_handler.api_gateway import Router
from aws_lambda_powertools.event_handler.exceptions import BadRequestError
from aws_lambda_powertools.utilities.idempotency import (
    DynamoDBPersistenceLayer,
    IdempotencyConfig,
    idempotent_function,
)
from aws_lambda_powertools.utilities.idempotency.exceptions import (
    IdempotencyAlreadyInProgressError,
    IdempotencyValidationError,
)

from lambdas.common.aws import client
from lambdas.common.containers import per_container
from lambdas.common.http import HttpError, json_body, json_response
from lambdas.common.settings import need
from lambdas.functions import access, names
from lambdas.functions import invoke_service as svc
from lambdas.functions.access import Caller
from lambdas.functions.invoke_service import QuotaError
from lambdas.functions.invoking import InvokeRequest
from lambdas.functions.route_support import FN, ORG, caller, load, page_limit, store
from lambdas.functions.settings import settings

router = Router()


@router.exception_handler(QuotaError)
def _quota(exc: QuotaError) -> Response[dict]:
    """429 with `Retry-After` when waiting helps (the per-minute limit)."""
    return json_response(429, {"error": exc.msg}, headers=exc.headers)


MODES = ("sync", "async", "dryrun")
MAX_IDEMPOTENCY_KEY = 128
MAX_LOG_LINES = 500


def base_url() -> str:
    """This API's own origin, as the caller reached it (for callback URLs handed to functions)."""
    event = router.current_event.raw_event
    proto = (event.get("headers") or {}).get("x-forwarded-proto", "https")
    return f"{proto}://{event['requestContext']['domainName']}"


def _callback_url(body: dict[str, Any]) -> str | None:
    url = body.get("callback_url")
    if url is None:
        return None
    if not isinstance(url, str) or not url.startswith(("https://", "http://")) or len(url) > 2048:
        raise BadRequestError("callback_url must be an http(s) URL")
    if url.startswith("http://") and not url.startswith(("http://localhost", "http://127.0.0.1")):
        raise BadRequestError("callback_url must use https (http only for localhost)")
    return url


def invoke_request(fn: dict[str, Any], who: Caller, body: dict[str, Any]) -> tuple[int, dict[str, Any]]:
    """What one invoke call answers (status code, body): the unit Idempotency-Key protects."""
    mode = body.get("mode", "sync")
    if mode not in MODES:
        raise BadRequestError(f"mode must be one of {', '.join(MODES)}")
    request = InvokeRequest.parse(body, fn, store())
    if mode == "dryrun":
        return 200, svc.dry_run(fn, request, svc.MAX_SYNC_PAYLOAD)
    if mode == "sync" and body.get("callback_url"):
        raise BadRequestError("callback_url is for mode async")
    svc.validate_payload(fn, body.get("payload", {}))
    if mode == "sync":
        if len(request.payload) > svc.MAX_SYNC_PAYLOAD:
            raise HttpError(413, f"payload exceeds Lambda's synchronous limit of {svc.MAX_SYNC_PAYLOAD} bytes (6 MB)")
        return 200, svc.run_sync(fn, request, who.key_id)
    with_token = bool(body.get("callback", False))
    queued = svc.run_async(
        fn, request, who.key_id, callback_url=_callback_url(body), with_token=with_token, base_url=base_url()
    )
    return 202, {"invocation_id": queued["invocation_id"], "status": "queued"}


@per_container
def _idempotent() -> Any:
    persistence = DynamoDBPersistenceLayer(table_name=need(settings().idempotency_table, names.ENV_IDEMPOTENCY_TABLE))
    config = IdempotencyConfig(
        event_key_jmespath="[org, fid, key]",
        payload_validation_jmespath="request",
        expires_after_seconds=24 * 3600,
        raise_on_no_idempotency_key=True,
    )

    @idempotent_function(
        data_keyword_argument="call", persistence_store=persistence, config=config, key_prefix="functions-invoke"
    )
    def answer(call: dict[str, Any], fn: dict[str, Any], who: Caller) -> dict[str, Any]:
        handler = invoke_request if call["kind"] == "invoke" else batch_request
        status, payload = handler(fn, who, call["body"])
        return {"status": status, "body": payload}

    return answer, config


def idempotently(kind: str, fn: dict[str, Any], who: Caller, body: dict[str, Any]) -> Response[dict]:
    key = router.current_event.headers.get("idempotency-key")
    handler = invoke_request if kind == "invoke" else batch_request
    if key is None or body.get("mode") == "dryrun":
        status, payload = handler(fn, who, body)
        return json_response(status, payload)
    if not key.strip() or len(key) > MAX_IDEMPOTENCY_KEY:
        raise BadRequestError(f"Idempotency-Key must be 1-{MAX_IDEMPOTENCY_KEY} characters")
    answer, config = _idempotent()
    config.register_lambda_context(router.lambda_context)
    fingerprint = hashlib.sha256(repr(sorted(body.items())).encode()).hexdigest()
    call = {"org": fn["org"], "fid": fn["id"], "key": key, "kind": kind, "request": fingerprint, "body": body}
    try:
        result = answer(call=call, fn=fn, who=who)
    except IdempotencyValidationError:
        raise HttpError(422, "this Idempotency-Key was used for a different request") from None
    except IdempotencyAlreadyInProgressError:
        raise HttpError(409, "a request with this Idempotency-Key is still in progress; retry shortly") from None
    return json_response(int(result["status"]), result["body"], headers={"Idempotency-Key": key})


@router.post(FN + "/invoke", summary="Invoke a function: mode sync, async or dryrun", tags=["invoke"])
def invoke(org: str, fid: str) -> Response[dict]:
    who = caller(router)
    fn = load(org, fid, who, access.INVOKE, "invoke functions")
    try:
        raw = router.current_event.decoded_body or ""
    except (ValueError, UnicodeDecodeError):  # not UTF-8, or flagged base64 and is not
        raise BadRequestError("request body is not valid JSON") from None
    if len(raw.encode()) > svc.MAX_SYNC_PAYLOAD + 64 * 1024:
        raise HttpError(413, f"request body exceeds Lambda's payload limit of {svc.MAX_SYNC_PAYLOAD} bytes (6 MB)")
    return idempotently("invoke", fn, who, json_body(router))


def batch_request(fn: dict[str, Any], who: Caller, body: dict[str, Any]) -> tuple[int, dict[str, Any]]:
    return 202, svc.run_batch(fn, body.get("qualifier", names.LIVE_ALIAS), body.get("payloads"), who.key_id, store())


@router.post(FN + "/batch", summary="Invoke asynchronously with up to 25 payloads", tags=["invoke"])
def batch(org: str, fid: str) -> Response[dict]:
    who = caller(router)
    fn = load(org, fid, who, access.INVOKE, "invoke functions")
    return idempotently("batch", fn, who, json_body(router, required=True))


# --- records ----------------------------------------------------------------------------------------------
@router.get(FN + "/invocations", summary="A function's invocations, newest first", tags=["invocations"])
def list_invocations(org: str, fid: str) -> Response[dict]:
    fn = load(org, fid, caller(router), access.READ, "read invocations")
    cursor = router.current_event.get_query_string_value("cursor")
    try:
        items, next_cursor = svc.invocations().list_for_function(org, fn["id"], page_limit(router), cursor)
    except ValueError as exc:
        raise BadRequestError(str(exc)) from None
    return json_response(200, {"invocations": [svc.view(i, False) for i in items], "next_cursor": next_cursor})


def _record(org: str, iid: str, who: Caller, fid: str | None = None) -> dict[str, Any]:
    access.check(who, org, access.READ, action="read invocations")
    record = svc.invocations().get(org, iid) if iid.startswith("iv") and len(iid) == 28 else None
    if record is None or (fid and fid not in (record["function_id"], record["function_name"])):
        raise HttpError(404, f"invocation {iid!r} not found")
    if who.function and record["function_id"] != who.function:
        raise HttpError(404, f"invocation {iid!r} not found")
    return record


@router.get(ORG + "/invocations/<iid>", summary="One invocation: status, timings, error, result", tags=["invocations"])
def get_invocation(org: str, iid: str) -> Response[dict]:
    return json_response(200, svc.view(_record(org, iid, caller(router)), True))


@router.get(FN + "/invocations/<iid>", summary="One invocation of this function", tags=["invocations"])
def get_function_invocation(org: str, fid: str, iid: str) -> Response[dict]:
    return json_response(200, svc.view(_record(org, iid, caller(router), fid), True))


@router.get(
    ORG + "/invocations/<iid>/logs", summary="That invocation's log lines (by request id)", tags=["invocations"]
)
def invocation_logs(org: str, iid: str) -> Response[dict]:
    record = _record(org, iid, caller(router))
    limit = page_limit(router, default=100)
    request_id = record.get("request_id")
    lines = (
        invocation_lines(record["lambda_function"], request_id, int(record["created_ms"]), limit) if request_id else []
    )
    return json_response(200, {"invocation_id": iid, "request_id": request_id, "lines": lines})


def invocation_lines(function_name: str, request_id: str, since_ms: int, limit: int) -> list[dict[str, Any]]:
    """The lines one invocation wrote: its log stream from `START RequestId: {id}` through its
    `REPORT` line. A stream serves one invocation at a time, so plain print() lines (which carry no
    request id) are found too."""
    logs = client("logs")
    group = names.user_log_group(function_name)
    try:
        found = logs.filter_log_events(
            logGroupName=group, filterPattern=f'"START RequestId: {request_id}"', startTime=since_ms - 1000, limit=1
        ).get("events", [])
    except logs.exceptions.ResourceNotFoundException:
        return []
    if not found:
        return []
    start = found[0]
    lines: list[dict[str, Any]] = []
    kwargs: dict[str, Any] = {
        "logGroupName": group,
        "logStreamName": start["logStreamName"],
        "startTime": start["timestamp"],
        "startFromHead": True,
        "limit": min(limit + 1, MAX_LOG_LINES),
    }
    started = False
    while len(lines) < limit:
        page = logs.get_log_events(**kwargs)
        for event in page.get("events", []):
            message = event["message"].rstrip("\n")
            started = started or message.startswith(f"START RequestId: {request_id}")
            if not started:
                continue
            lines.append({"timestamp": event["timestamp"], "message": message})
            if message.startswith(f"REPORT RequestId: {request_id}") or len(lines) >= limit:
                return lines
        token = page.get("nextForwardToken")
        if not page.get("events") or token == kwargs.get("nextToken"):
            return lines
        kwargs["nextToken"] = token
    return lines
