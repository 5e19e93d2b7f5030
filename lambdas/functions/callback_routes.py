"""`/v1/callback/invocations/{iid}/...`: what a running function may do with its callback token.

No key and no authorizer: the token itself is the credential, minted for one invocation. It
reads that invocation's input, posts progress (the invocation is then `running`), or posts the
result (which finishes it). The first callback marks the start: from then on the token lives the
function's timeout plus a minute, whatever its absolute expiry says.
"""

from __future__ import annotations

import json
import time
from typing import Any

from aws_lambda_powertools.event_handler import Response
from aws_lambda_powertools.event_handler.api_gateway import Router
from aws_lambda_powertools.event_handler.exceptions import BadRequestError

from lambdas.common.aws import client
from lambdas.common.http import HttpError, json_body, json_response
from lambdas.functions import callbacks, names
from lambdas.functions import invoke_service as svc
from lambdas.functions.invocations import iso
from lambdas.functions.settings import settings

router = Router()
CALLBACK = "/v1/callback/invocations/<iid>"


def _authorized(iid: str, scope: str) -> tuple[callbacks.Claims, dict[str, Any]]:
    header = router.current_event.headers.get("authorization") or ""
    try:
        claims = callbacks.verify(header, iid, scope)
    except callbacks.TokenInvalid as exc:
        raise HttpError(401, str(exc)) from None
    record = svc.invocations().get(claims.org, iid)
    if record is None:
        if scope == "input:read":  # a run's input exists before its record does
            return claims, {}
        raise HttpError(404, "invocation not found")
    started = record.get("started_ms")
    if started and time.time() * 1000 > int(started) + claims.run_seconds * 1000:
        raise HttpError(401, "the callback token has expired")
    return claims, record


def _mark_started(claims: callbacks.Claims, record: dict[str, Any]) -> None:
    if record and not record.get("started_ms"):
        now = time.time()
        svc.invocations().update(
            claims.org, claims.iid, {"started_ms": int(now * 1000), "started_at": iso(now), "status": "running"}
        )


@router.get(CALLBACK + "/input", summary="The invocation's input (callback token)", tags=["callback"])
def read_input(iid: str) -> Response[dict]:
    claims, record = _authorized(iid, "input:read")
    s3 = client("s3")
    try:
        body = s3.get_object(Bucket=settings().code_bucket, Key=names.input_key(claims.org, iid))["Body"].read()
    except s3.exceptions.NoSuchKey:
        raise HttpError(404, "this invocation's input is not kept") from None
    _mark_started(claims, record)
    return json_response(200, {"invocation_id": iid, "input": json.loads(body)})


@router.post(CALLBACK + "/progress", summary="Report progress (callback token)", tags=["callback"])
def progress(iid: str) -> Response[dict]:
    claims, record = _authorized(iid, "progress:write")
    body = json_body(router, required=True)
    message, percent = body.get("message", ""), body.get("percent")
    if not isinstance(message, str) or len(message) > 1024:
        raise BadRequestError("message must be text of at most 1024 characters")
    if percent is not None and (
        isinstance(percent, bool) or not isinstance(percent, int | float) or not 0 <= percent <= 100
    ):
        raise BadRequestError("percent must be a number from 0 to 100")
    _mark_started(claims, record)
    svc.invocations().update(
        claims.org, iid, {"progress": {"message": message, "percent": percent, "at": iso(time.time())}}
    )
    return json_response(200, {"invocation_id": iid, "accepted": True})


@router.post(
    CALLBACK + "/result", summary="Post the result, finishing the invocation (callback token)", tags=["callback"]
)
def post_result(iid: str) -> Response[dict]:
    claims, record = _authorized(iid, "result:write")
    body = json_body(router, required=True)
    if "result" not in body:
        raise BadRequestError('give the result as {"result": ...}')
    _mark_started(claims, record)
    finished = svc.invocations().finish(claims.org, iid, {"status": "succeeded", "result": body["result"]})
    if not finished:
        raise HttpError(409, "the invocation has already finished")
    return json_response(200, {"invocation_id": iid, "status": "succeeded"})
