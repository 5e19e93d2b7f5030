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
                    self.deliver(spec.on_success, _record(spec, event, invocation, "Success", attempt))
                return
            if attempt < attempts:
                self._stopping.wait(self.retry_delay * attempt)
        assert invocation is not None
        self.trace("invoke.exhausted", {"function": spec.name, "attempts": attempts})
        if spec.on_failure:
            self.deliver(spec.on_failure, _record(spec, event, invocation, "RetriesExhausted", attempts))
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
            self.trace("deliver.unknown", {"arn": arn})
            return False
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

    def stop(self) -> None:
        self._stopping.set()
        self._executor.shutdown(wait=False, cancel_futures=True)


def _record(spec: FunctionSpec, event: Any, invocation: Invocation, condition: str, count: int) -> dict[str, Any]:
    response: dict[str, Any] = {"statusCode": 200, "executedVersion": "$LATEST"}
    if invocation.failed:
        response["functionError"] = "Unhandled"
    return {
        "version": "1.0",
        "timestamp": datetime.now(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z"),
        "requestContext": {
            "requestId": invocation.request_id,
            "functionArn": f"{spec.arn}:$LATEST",
            "condition": condition,
            "approximateInvokeCount": count,
        },
        "requestPayload": event,
        "responseContext": response,
        "responsePayload": invocation.error if invocation.failed else invocation.result,
    }
