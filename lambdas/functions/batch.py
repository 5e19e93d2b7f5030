"""Batch worker (`functions-batch-{env}`): one SQS message per batch item, each invoked with
Lambda's `Event` type, so every item gets the function's own retries and ends in the recorder like
any asynchronous invocation. Items fail independently; the event source's maximum concurrency
bounds how many run at once. A redelivered message whose item was already handed to Lambda is
skipped (its record has a request id).
"""

from __future__ import annotations

import json
from typing import Any

from aws_lambda_powertools import Logger, Metrics
from aws_lambda_powertools.utilities.batch import BatchProcessor, EventType, process_partial_response
from aws_lambda_powertools.utilities.data_classes.sqs_event import SQSRecord
from aws_lambda_powertools.utilities.typing import LambdaContext

from lambdas.common.entry import entry
from lambdas.common.http import HttpError
from lambdas.functions import invoke_service as svc
from lambdas.functions.invoking import invoke_event

logger = Logger()
metrics = Metrics()
processor = BatchProcessor(event_type=EventType.SQS)
processor.raise_on_entire_batch_failure = False


def record_handler(record: SQSRecord) -> None:
    try:
        item = json.loads(record.body)
        org, iid, qualifier, event = item["org"], item["iid"], item["qualifier"], item["event"]
    except (ValueError, KeyError, TypeError):
        logger.error("dropping a message that is not a batch item", extra={"message_id": record.message_id})
        return
    store = svc.invocations()
    invocation = store.get(org, iid)
    if invocation is None or invocation.get("request_id") or invocation["status"] != "queued":
        return  # expired, or already handed to Lambda by an earlier delivery
    fn = {"lambda_function": invocation["lambda_function"]}
    try:
        request_id = invoke_event(fn, qualifier, event.encode())
    except HttpError as exc:  # not deployed (any other error propagates: the message comes back)
        store.finish(org, iid, {"status": "failed", "error": {"type": "NotDeployed", "message": exc.msg}})
        return
    store.remember_request(org, iid, request_id)
    store.update(org, iid, {"request_id": request_id})


@entry(logger, metrics)
def handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    return dict(
        process_partial_response(event=event, record_handler=record_handler, processor=processor, context=context)
    )
