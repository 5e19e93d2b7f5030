"""Synchronous and asynchronous invocation, with Lambda's async semantics: the declared number of
retries (EventInvokeConfig MaximumRetryAttempts, default 2), then the on-failure destination or
the function's dead-letter queue; on success, the on-success destination.

Retry delays are short locally (AWS waits about 1 and 2 minutes); the count and the delivered
record shapes are AWS's.
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime
from typing import Any

from scripts.local.functions import FunctionPool, FunctionSpec, Invocation, InvokeError
from scripts.local.intrinsics import Resolver
from scripts.local.resources import ResourceFactory

Trace = Callable[[str, dict[str, Any]], None]


class Invoker:
    def __init__(
        self,
        specs: dict[str, FunctionSpec],
        pools: dict[str, FunctionPool],
        resolver: Resolver,
        factory: ResourceFactory,
        trace: Trace,
        retry_delay: float = 1.0,
    ) -> None:
        self.specs = specs
        self.pools = pools
        self.resolver = resolver
        self.factory = factory
        self.trace = trace
        self.retry_delay = retry_delay
        self._executor = ThreadPoolExecutor(max_workers=16, thread_name_prefix="async-invoke")
        self._stopping = threading.Event()
        # Functions created at run time (the Lambda API): destinations may name them.
        self.other_functions: Callable[[str, Any], bool] | None = None

    def function_for(self, arn_or_name: str) -> FunctionSpec | None:
        if arn_or_name in self.specs:
            return self.specs[arn_or_name]
        resource = self.resolver.find(arn_or_name)
        if resource is None:
            return None
        return next((s for s in self.specs.values() if s.resource.key == resource.key), None)

    def invoke(self, arn_or_name: str, event: Any) -> Invocation:
        spec = self.function_for(arn_or_name)
        if spec is None:
            raise InvokeError(f"no function {arn_or_name!r} in the templates")
        self.trace("invoke.start", {"function": spec.name})
        invocation = self.pools[spec.name].invoke(event)
        self.trace(
            "invoke.end",
            {"function": spec.name, "duration_ms": invocation.duration_ms, "failed": invocation.failed},
        )
        return invocation

    def invoke_async(self, arn_or_name: str, event: Any) -> bool:
        """Queue an event (Lambda's `Event` invocation type); False if no such function."""
        spec = self.function_for(arn_or_name)
        if spec is None or self._stopping.is_set():
            return False
        self._executor.submit(self._run_async, spec, event)
        return True

    @property
    def stopping(self) -> bool:
        return self._stopping.is_set()

    def wait_stopping(self, seconds: float) -> bool:
        """Sleep between retries; True if the runtime is stopping."""
        return self._stopping.wait(seconds)

    def submit(self, fn: Callable[..., Any], *args: Any) -> None:
        """Run work off the caller's thread (moto's request threads must answer at once)."""
        if not self._stopping.is_set():
            self._executor.submit(fn, *args)

    def _run_async(self, spec: FunctionSpec, event: Any) -> None:
        attempts = 1 + spec.retry_attempts
        invocation: Invocation | None = None
        for attempt in range(1, attempts + 1):
            if self._stopping.is_set():
                return
            try:
                invocation = self.invoke(spec.name, event)
            except InvokeError:
                return
            if not invocation.failed:
                if spec.on_success:
                    self.deliver(spec.on_success, record(spec.arn, event, invocation, "Success", attempt))
                return
            if attempt < attempts:
                self._stopping.wait(self.retry_delay * attempt)
        assert invocation is not None
        self.trace("invoke.exhausted", {"function": spec.name, "attempts": attempts})
        if spec.on_failure:
            self.deliver(spec.on_failure, record(spec.arn, event, invocation, "RetriesExhausted", attempts))
        elif spec.dead_letter:
            error = invocation.error or {}
            self.deliver(
                spec.dead_letter,
                event,
                attributes={
                    "RequestID": invocation.request_id,
                    "ErrorCode": "200",
                    "ErrorMessage": str(error.get("errorMessage", ""))[:256],
                },
            )

    def deliver(self, arn: str, payload: Any, attributes: dict[str, str] | None = None) -> bool:
        """Send to a destination by ARN: SQS queue, SNS topic, Lambda function or event bus."""
        body = payload if isinstance(payload, str) else json.dumps(payload, default=str)
        resource = self.resolver.find(arn)
        if resource is None:
            return self._deliver_by_arn(arn, body, attributes)
        if resource.type == "AWS::SQS::Queue":
            message: dict[str, Any] = {"QueueUrl": self.resolver.ref(resource), "MessageBody": body}
            if attributes:
                message["MessageAttributes"] = {
                    k: {"DataType": "String", "StringValue": v} for k, v in attributes.items()
                }
            if self.resolver.name(resource).endswith(".fifo"):
                message["MessageGroupId"] = "local"
                message["MessageDeduplicationId"] = str(time.time_ns())
            self.factory.client("sqs").send_message(**message)
        elif resource.type == "AWS::SNS::Topic":
            self.factory.client("sns").publish(TopicArn=self.resolver.arn(resource), Message=body)
        elif resource.type == "AWS::Lambda::Function":
            self.invoke_async(self.resolver.name(resource), json.loads(body))
        elif resource.type == "AWS::Events::EventBus":
            detail = json.loads(body)
            self.factory.client("events").put_events(
                Entries=[
                    {
                        "EventBusName": self.resolver.name(resource),
                        "Source": "lambda",
                        "DetailType": "Lambda Function Invocation Result - "
                        + ("Success" if detail.get("requestContext", {}).get("condition") == "Success" else "Failure"),
                        "Detail": body,
                    }
                ]
            )
        else:
            self.trace("deliver.unsupported", {"arn": arn, "type": resource.type})
            return False
        self.trace("deliver", {"arn": arn})
        return True

    def _deliver_by_arn(self, arn: str, body: str, attributes: dict[str, str] | None) -> bool:
        """A destination that is not in the templates (created at run time): found in moto by ARN."""
        parts = arn.split(":")
        service = parts[2] if len(parts) > 5 else ""
        try:
            if service == "sqs":
                sqs = self.factory.client("sqs")
                url = sqs.get_queue_url(QueueName=parts[5], QueueOwnerAWSAccountId=parts[4])["QueueUrl"]
                message: dict[str, Any] = {"QueueUrl": url, "MessageBody": body}
                if attributes:
                    message["MessageAttributes"] = {
                        k: {"DataType": "String", "StringValue": v} for k, v in attributes.items()
                    }
                if parts[5].endswith(".fifo"):
                    message["MessageGroupId"] = "local"
                    message["MessageDeduplicationId"] = str(time.time_ns())
                sqs.send_message(**message)
            elif service == "sns":
                self.factory.client("sns").publish(TopicArn=arn, Message=body)
            elif service == "lambda" and self.other_functions is not None:
                if not self.other_functions(arn, json.loads(body)):
                    raise LookupError(arn)
            elif service == "events":
                detail = json.loads(body)
                condition = detail.get("requestContext", {}).get("condition") if isinstance(detail, dict) else None
                self.factory.client("events").put_events(
                    Entries=[
                        {
                            "EventBusName": arn,
                            "Source": "lambda",
                            "DetailType": "Lambda Function Invocation Result - "
                            + ("Success" if condition == "Success" else "Failure"),
                            "Detail": body,
                        }
                    ]
                )
            else:
                self.trace("deliver.unknown", {"arn": arn})
                return False
        except Exception as exc:  # a destination that does not exist (any more): AWS drops the record too
            self.trace("deliver.unknown", {"arn": arn, "error": type(exc).__name__})
            return False
        self.trace("deliver", {"arn": arn})
        return True

    def stop(self) -> None:
        self._stopping.set()
        self._executor.shutdown(wait=False, cancel_futures=True)


def record(
    arn: str,
    event: Any,
    invocation: Invocation,
    condition: str,
    count: int,
    qualifier: str = "$LATEST",
    executed_version: str = "$LATEST",
) -> dict[str, Any]:
    """What Lambda sends a destination after an asynchronous invocation."""
    response: dict[str, Any] = {"statusCode": 200, "executedVersion": executed_version}
    if invocation.failed:
        response["functionError"] = "Unhandled"
    return {
        "version": "1.0",
        "timestamp": datetime.now(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z"),
        "requestContext": {
            "requestId": invocation.request_id,
            "functionArn": f"{arn}:{qualifier}",
            "condition": condition,
            "approximateInvokeCount": count,
        },
        "requestPayload": event,
        "responseContext": response,
        "responsePayload": invocation.error if invocation.failed else invocation.result,
    }
