"""Invocation routes (filled in below)."""

from __future__ import annotations

from aws_lambda_powertools.event_handler import Response
from aws_lambda_powertools.event_handler.api_gateway import Router

from lambdas.common.http import HttpError, json_body, json_response
from lambdas.functions import access
from lambdas.functions.invoking import InvokeRequest, invoke_sync
from lambdas.functions.route_support import FN, caller, load, store

router = Router()
MAX_SYNC_PAYLOAD = 6 * 1024 * 1024


# --- invoking ---------------------------------------------------------------------------------------
@router.post(FN + "/invoke", summary="Invoke a function synchronously", tags=["invoke"])
def invoke(org: str, fid: str) -> Response[dict]:
    fn = load(org, fid, caller(router), access.INVOKE, "invoke functions")
    raw = router.current_event.decoded_body or ""
    if len(raw.encode()) > MAX_SYNC_PAYLOAD:
        raise HttpError(413, f"request body exceeds Lambda's synchronous payload limit of {MAX_SYNC_PAYLOAD} bytes")
    body = json_body(router)
    request = InvokeRequest.parse(body, fn, store())
    return json_response(200, invoke_sync(fn, request))
