"""Recorder (`functions-recorder-{env}`): finishes asynchronous invocations and delivers webhooks.

Fed by the results queue, which receives two kinds of message:

- Lambda's destination records (on success and on failure of every user function's async
  invocations, after Lambda's own retries): the record is found by Lambda's request id, finished
  once (a repeated record changes nothing), its GB-seconds counted once, and its `callback_url`
  POSTed.
- `{"kind": "webhook", ...}`: a webhook delivery to try again, sent back to this queue with a
  growing delay (1, 2, 4, 8, 15 minutes by default; five tries).

A destination record whose invocation is not known yet (the API writes the request-id lookup just
after Lambda accepts the call, so a very fast function can finish first) is sent back to the queue
with a short delay, ten times at most, then left to the queue's retries and its dead-letter queue.
Nothing here logs tokens or bodies.
"""

from __future__ import annotations

import json
import re
import time
import urllib.error
import urllib.request
from datetime import datetime
from typing import Any

from aws_lambda_powertools import Logger, Metrics
from aws_lambda_powertools.metrics import MetricUnit
from aws_lambda_powertools.utilities.batch import BatchProcessor, EventType, process_partial_response
from aws_lambda_powertools.utilities.data_classes.sqs_event import SQSRecord
from aws_lambda_powertools.utilities.typing import LambdaContext

from lambdas.common.aws import client
from lambdas.common.entry import entry
from lambdas.common.settings import need
from lambdas.functions import callbacks, names
from lambdas.functions import invoke_service as svc
from lambdas.functions.invocations import iso, record_view
from lambdas.functions.invoking import outcome_of_error, platform_version
from lambdas.functions.settings import settings
from lambdas.functions.store import FunctionStore

logger = Logger()
metrics = Metrics()
processor = BatchProcessor(event_type=EventType.SQS)
processor.raise_on_entire_batch_failure = False

WEBHOOK_TRIES = 5
WEBHOOK_TIMEOUT_SECONDS = 10
_REPORT = re.compile(r"Duration: ([\d.]+) ms\s+Billed Duration: (\d+) ms")


class NotYetKnown(RuntimeError):
    """The invocation's request-id lookup is not written yet: retry the message later."""


def webhook_delays() -> list[int]:
    """Seconds before each retry (SQS allows at most 900)."""
    base = settings().webhook_retry_base_seconds
    return [min(900, base * 2**n) for n in range(WEBHOOK_TRIES - 1)]


def billed(function_name: str, request_id: str, since_ms: int) -> tuple[float, int] | None:
    """(duration, billed duration) in ms from the invocation's REPORT line, if Logs has it."""
    logs = client("logs")
    try:
        events = logs.filter_log_events(
            logGroupName=names.user_log_group(function_name),
            filterPattern=f'"REPORT RequestId: {request_id}"',
            startTime=since_ms - 1000,
            limit=50,
        ).get("events", [])
    except logs.exceptions.ResourceNotFoundException:
        return None
    # Lambda writes its REPORT line after everything the function printed: a function that prints
    # a look-alike line to shrink its bill prints it earlier, so the last match is Lambda's.
    found = _REPORT.search(events[-1]["message"]) if events else None
    return (float(found.group(1)), int(found.group(2))) if found else None


def _epoch_ms(timestamp: str) -> int:
    return int(datetime.fromisoformat(timestamp.replace("Z", "+00:00")).timestamp() * 1000)


LOOKUP_TRIES = 10


def finish(destination: dict[str, Any], attempt: int = 1) -> None:
    context = destination.get("requestContext") or {}
    request_id = str(context.get("requestId", ""))
    found = svc.invocations().by_request(request_id)
    if found is None:
        # The API writes the lookup just after Lambda accepts the call: a fast function can finish
        # first. Look again in a few seconds rather than after the queue's visibility timeout.
        if attempt >= LOOKUP_TRIES:
            raise NotYetKnown(f"no invocation for request {request_id}")
        client("sqs").send_message(
            QueueUrl=need(settings().results_queue_url, names.ENV_RESULTS_QUEUE_URL),
            MessageBody=json.dumps({"kind": "destination", "attempt": attempt + 1, "record": destination}),
            DelaySeconds=min(900, 2 * attempt),
        )
        return
    org, iid = found
    record = svc.invocations().get(org, iid)
    if record is None:
        return  # expired or deleted: nothing to finish
    response = destination.get("responseContext") or {}
    payload = destination.get("responsePayload")
    fn = FunctionStore(settings().table).get(org, record["function_id"]) or {}
    outcome: dict[str, Any] = {
        "executed_version": platform_version(fn, str(response.get("executedVersion", ""))),
        "attempts": int(context.get("approximateInvokeCount", 1)),
    }
    if context.get("condition") == "Success" and not response.get("functionError"):
        outcome.update(status="succeeded", result=payload)
    elif context.get("condition") == "EventAgeExceeded":
        outcome.update(
            status="failed", error={"type": "EventAgeExceeded", "message": "not run before its maximum event age"}
        )
    else:
        outcome.update(outcome_of_error(payload, str(response.get("functionError") or "Unhandled")))
    timings = billed(record["lambda_function"], request_id, int(record["created_ms"]))
    finished_ms = _epoch_ms(str(destination["timestamp"])) if destination.get("timestamp") else int(time.time() * 1000)
    outcome["finished_at"] = iso(finished_ms / 1000)
    if timings:
        outcome.update(duration_ms=timings[0], billed_duration_ms=timings[1])
    billed_ms = timings[1] if timings else max(1, finished_ms - int(record["created_ms"]))
    charge = svc.usage().charge(org, billed_ms, int(record["memory_mb"]))
    if not svc.invocations().finish(org, iid, outcome, charge):
        logger.info("invocation already finished", extra={"invocation_id": iid})
        return
    metrics.add_metric(name=f"Invocation_{outcome['status']}", unit=MetricUnit.Count, value=1)
    if record.get("callback_url"):
        deliver(org, iid, 1)


def deliver(org: str, iid: str, attempt: int) -> None:
    """POST the finished record to its callback_url, signed; schedule a retry if it fails."""
    record = svc.invocations().get(org, iid)
    if record is None or not record.get("callback_url"):
        return
    body = json.dumps(record_view(record, svc.invocations().result(record), include_result=True)).encode()
    request = urllib.request.Request(  # noqa: S310 - an http(s) URL checked when it was accepted
        record["callback_url"],
        data=body,
        method="POST",
        headers={
            "Content-Type": "application/json",
            "User-Agent": "platform-functions-webhook/1",
            callbacks.SIGNATURE_HEADER: callbacks.webhook_signature(org, body),
            "X-Platform-Invocation": iid,
            "X-Platform-Attempt": str(attempt),
        },
    )
    try:
        with urllib.request.urlopen(request, timeout=WEBHOOK_TIMEOUT_SECONDS) as answer:  # noqa: S310
            status = answer.status
    except urllib.error.HTTPError as exc:
        status = exc.code
    except (urllib.error.URLError, TimeoutError, OSError) as exc:
        status = 0
        logger.warning(
            "webhook not delivered", extra={"invocation_id": iid, "attempt": attempt, "reason": str(exc)[:200]}
        )
    if 200 <= status < 300:
        svc.invocations().update(org, iid, {"webhook": {"status": status, "attempts": attempt}}, unless_final=False)
        return
    retryable = status == 0 or status == 429 or status >= 500
    delays = webhook_delays()
    if retryable and attempt <= len(delays):
        client("sqs").send_message(
            QueueUrl=need(settings().results_queue_url, names.ENV_RESULTS_QUEUE_URL),
            MessageBody=json.dumps({"kind": "webhook", "org": org, "iid": iid, "attempt": attempt + 1}),
            DelaySeconds=delays[attempt - 1],
        )
        return
    svc.invocations().update(
        org, iid, {"webhook": {"status": status, "attempts": attempt, "gave_up": True}}, unless_final=False
    )
    logger.warning("webhook given up", extra={"invocation_id": iid, "attempts": attempt, "status": status})


def record_handler(record: SQSRecord) -> None:
    try:
        message = json.loads(record.body)
    except ValueError:
        logger.error("dropping a message that is not JSON", extra={"message_id": record.message_id})
        return
    if not isinstance(message, dict):
        return
    if message.get("kind") == "webhook":
        deliver(str(message["org"]), str(message["iid"]), int(message["attempt"]))
    elif message.get("kind") == "destination":
        finish(message["record"], int(message["attempt"]))
    elif "requestContext" in message:
        finish(message)
    else:
        logger.error("dropping an unknown message", extra={"message_id": record.message_id})


@entry(logger, metrics)
def handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    return dict(
        process_partial_response(event=event, record_handler=record_handler, processor=processor, context=context)
    )
