"""Invoking a user function through Lambda's data plane, and reporting it in the platform's terms.

The Lambda client used here never retries: a retried `Invoke` runs the function twice. Its read
timeout covers the longest function that may be invoked synchronously.
"""

from __future__ import annotations

import base64
import json
import re
import time
from dataclasses import dataclass
from typing import Any

import boto3
from aws_lambda_powertools.event_handler.exceptions import BadRequestError
from botocore.config import Config

from lambdas.common.containers import per_container
from lambdas.common.http import HttpError
from lambdas.functions import names

# The HTTP API cuts an integration off at 30 s: a synchronous call must end well before that.
MAX_SYNC_TIMEOUT_SECONDS = 25
_REPORT = re.compile(r"Duration: ([\d.]+) ms\s+Billed Duration: (\d+) ms")


@per_container
def lambda_client() -> Any:
    config = Config(
        connect_timeout=3,
        read_timeout=MAX_SYNC_TIMEOUT_SECONDS + 3,
        retries={"total_max_attempts": 1},
    )
    return boto3.client("lambda", config=config)


@dataclass(frozen=True)
class InvokeRequest:
    qualifier: str  # what Lambda is asked for: "live", "$LATEST" or a Lambda version number
    label: str  # what the caller asked for: "live", "draft" or the platform version number
    payload: bytes

    @classmethod
    def parse(cls, body: dict[str, Any], fn: dict[str, Any], store: Any) -> InvokeRequest:
        raw = body.get("qualifier", names.LIVE_ALIAS)
        payload = json.dumps(body.get("payload", {}), separators=(",", ":")).encode()
        if raw == names.LIVE_ALIAS:
            if not fn.get("live"):
                raise HttpError(409, "no version is live yet: publish one and point live at it")
            return cls(names.LIVE_ALIAS, names.LIVE_ALIAS, payload)
        if raw == "draft":
            if fn["status"] != "deployed":
                raise HttpError(409, f"the draft is {fn['status']}; invoke it once it is deployed")
            return cls("$LATEST", "draft", payload)
        number = int(raw) if isinstance(raw, str) and raw.isdigit() else raw
        if isinstance(number, bool) or not isinstance(number, int) or number < 1:
            raise BadRequestError('qualifier must be "live", "draft" or a version number')
        version = store.get_version(fn["org"], fn["id"], number)
        if version is None:
            raise HttpError(404, f"version {number} not found")
        if version["status"] != "published" or not version.get("lambda_version"):
            raise HttpError(409, f"version {number} is {version['status']}, not published")
        return cls(str(version["lambda_version"]), str(number), payload)


def platform_version(fn: dict[str, Any], executed: str) -> str:
    """Lambda's executed version ("$LATEST", "7") as the platform names it ("draft", "3")."""
    if executed == "$LATEST":
        return "draft"
    return str((fn.get("lambda_versions") or {}).get(executed, executed))


def check_sync(fn: dict[str, Any]) -> None:
    if int(fn["timeout_seconds"]) > MAX_SYNC_TIMEOUT_SECONDS:
        raise HttpError(
            409,
            f"the function's timeout ({fn['timeout_seconds']} s) is longer than a synchronous call may last "
            f"({MAX_SYNC_TIMEOUT_SECONDS} s): invoke it with mode async",
        )


def outcome_of_error(error: Any, function_error: str) -> dict[str, Any]:
    """A function error (Lambda's `{"errorType", "errorMessage"}`) as the platform reports it."""
    error = error if isinstance(error, dict) else {"errorMessage": str(error)}
    error_type = str(error.get("errorType") or function_error)
    message = str(error.get("errorMessage", ""))
    timed_out = error_type == "Sandbox.Timedout" or "Task timed out" in message
    return {"status": "timed_out" if timed_out else "failed", "error": {"type": error_type, "message": message[:4096]}}


def invoke_event(fn: dict[str, Any], qualifier: str, payload: bytes) -> str:
    """Queue an asynchronous invocation (Lambda's `Event`); returns Lambda's request id, which its
    destination record will carry."""
    lam = lambda_client()
    try:
        response = lam.invoke(
            FunctionName=fn["lambda_function"], Qualifier=qualifier, InvocationType="Event", Payload=payload
        )
    except lam.exceptions.ResourceNotFoundException:
        raise HttpError(409, "the function or version is not deployed yet") from None
    return str(response["ResponseMetadata"]["RequestId"])


def invoke_dry_run(fn: dict[str, Any], qualifier: str) -> None:
    """Lambda's `DryRun`: checks the function, qualifier and permission; runs nothing (204)."""
    lam = lambda_client()
    try:
        lam.invoke(FunctionName=fn["lambda_function"], Qualifier=qualifier, InvocationType="DryRun", Payload=b"{}")
    except lam.exceptions.ResourceNotFoundException:
        raise HttpError(409, "the function or version is not deployed yet") from None


def invoke_sync(fn: dict[str, Any], request: InvokeRequest) -> dict[str, Any]:
    check_sync(fn)
    lam = lambda_client()
    started = time.monotonic()
    try:
        response = lam.invoke(
            FunctionName=fn["lambda_function"],
            Qualifier=request.qualifier,
            InvocationType="RequestResponse",
            LogType="Tail",
            Payload=request.payload,
        )
    except lam.exceptions.ResourceNotFoundException:
        raise HttpError(409, f"{request.label} is not deployed yet") from None
    except (lam.exceptions.TooManyRequestsException, lam.exceptions.ResourceConflictException) as exc:
        raise HttpError(429 if "TooMany" in type(exc).__name__ else 409, str(exc)) from None
    round_trip_ms = round((time.monotonic() - started) * 1000, 1)
    raw = response["Payload"].read()
    try:
        result = json.loads(raw) if raw else None
    except ValueError:
        result = raw.decode("utf-8", errors="replace")
    tail = base64.b64decode(response.get("LogResult", "")).decode("utf-8", errors="replace")
    report = _REPORT.findall(tail)  # the last REPORT line is Lambda's (a function could print a look-alike)
    outcome: dict[str, Any] = {
        "status": "succeeded",
        "result": result,
        "error": None,
        "qualifier": request.label,
        "executed_version": platform_version(fn, str(response.get("ExecutedVersion", ""))),
        "request_id": response["ResponseMetadata"]["RequestId"],
        "duration_ms": float(report[-1][0]) if report else round_trip_ms,
        "billed_duration_ms": int(report[-1][1]) if report else None,
        "round_trip_ms": round_trip_ms,
    }
    if response.get("FunctionError"):
        outcome.update(result=None, **outcome_of_error(result, response["FunctionError"]))
    return outcome
