"""Event sources: S3 notifications, EventBridge rules and SQS event source mappings, as declared.

- S3: CDK writes notifications through `Custom::S3BucketNotifications` (`NotificationConfiguration`);
  an L1 bucket's own `NotificationConfiguration` is read too. Lambda, queue and topic
  configurations with their prefix/suffix filters, and EventBridge delivery ("Object Created").
- EventBridge: every enabled rule with an `EventPattern` on its bus; targets get `Input`,
  `InputPath` or `InputTransformer`; Lambda targets are invoked asynchronously (the function's
  retries and destinations apply); a target that cannot be reached goes to its `DeadLetterConfig`
  after `RetryPolicy.MaximumRetryAttempts`.
- SQS event source mappings: long-polling pollers, one per mapping; a failed batch stays on the
  queue (its visibility timeout and redrive policy apply); `ReportBatchItemFailures` is honoured
  (an answer naming a message that is not in the batch fails the whole batch, as on AWS).
  FIFO queues: batches keep the order of each message group; a message that failed stays in
  flight until its visibility timeout and holds back the rest of its group until it is retried
  (the function should report every message after a failure in the same group, as Powertools'
  `SqsFifoPartialProcessor` does); after `maxReceiveCount` receives it goes to the dead-letter queue.
"""

from __future__ import annotations

import json
import re
import threading
import time
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any
from urllib.parse import quote_plus

from scripts.local.intrinsics import ACCOUNT, Resolver
from scripts.local.invoke import Invoker
from scripts.local.patterns import matches


def _iso_now() -> str:
    return datetime.now(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


@dataclass
class S3Config:
    bucket: str
    kind: str  # lambda, queue, topic
    target: str  # ARN
    events: list[str]
    prefix: str
    suffix: str
    config_id: str

    def accepts(self, event_name: str, key: str) -> bool:
        if not key.startswith(self.prefix) or not key.endswith(self.suffix):
            return False
        return any(
            pattern.removeprefix("s3:") == event_name
            or (pattern.endswith(":*") and event_name.startswith(pattern.removeprefix("s3:")[:-1]))
            for pattern in self.events
        )


class S3Notifications:
    def __init__(self, resolver: Resolver, invoker: Invoker, region: str, router: EventRouter) -> None:
        self.invoker = invoker
        self.region = region
        self.router = router
        self.configs: list[S3Config] = []
        self.eventbridge_buckets: set[str] = set()
        for resource in resolver.assembly.resources("Custom::S3BucketNotifications", "AWS::S3::Bucket"):
            if not resolver.exists(resource):
                continue
            props = resolver.resolve(resource.properties, resource.stack)
            bucket = props.get("BucketName") or resolver.name(resource)
            self._read(bucket, props.get("NotificationConfiguration") or {})

    def _read(self, bucket: str, config: dict[str, Any]) -> None:
        kinds = (
            ("LambdaFunctionConfigurations", "lambda", ("LambdaFunctionArn", "Function")),
            ("QueueConfigurations", "queue", ("QueueArn", "Queue")),
            ("TopicConfigurations", "topic", ("TopicArn", "Topic")),
        )
        for key, kind, target_keys in kinds:
            for item in config.get(key) or []:
                rules = {
                    r["Name"].lower(): r["Value"]
                    for r in ((item.get("Filter") or {}).get("Key") or {}).get("FilterRules") or []
                }
                target = next(str(item[k]) for k in target_keys if k in item)
                events = item.get("Events") or [item.get("Event")]
                self.configs.append(
                    S3Config(
                        bucket,
                        kind,
                        target,
                        events,
                        rules.get("prefix", ""),
                        rules.get("suffix", ""),
                        item.get("Id") or str(uuid.uuid4()),
                    )
                )
        if "EventBridgeConfiguration" in config:
            self.eventbridge_buckets.add(bucket)

    def on_object(self, bucket: str, key: str, size: int, etag: str, event_name: str) -> None:
        now = _iso_now()
        for config in self.configs:
            if config.bucket != bucket or not config.accepts(event_name, key):
                continue
            event = self._record(bucket, key, size, etag, event_name, config.config_id, now)
            self.invoker.trace("s3.notify", {"bucket": bucket, "key": key, "target": config.target})
            if config.kind == "lambda":
                self.invoker.invoke_async(config.target, event)
            else:
                self.invoker.submit(self.invoker.deliver, config.target, event)
        if bucket in self.eventbridge_buckets and event_name.startswith(("ObjectCreated", "ObjectRemoved")):
            detail_type = "Object Created" if event_name.startswith("ObjectCreated") else "Object Deleted"
            detail = {
                "version": "0",
                "bucket": {"name": bucket},
                "object": {"key": key, "size": size, "etag": etag, "sequencer": f"{time.time_ns():016X}"},
                "request-id": uuid.uuid4().hex[:16].upper(),
                "requester": ACCOUNT,
                "reason": event_name.split(":")[-1].replace("Post", "POST Object").replace("Put", "PutObject"),
            }
            self.router.dispatch("default", "aws.s3", detail_type, detail, [f"arn:aws:s3:::{bucket}"])

    def _record(
        self, bucket: str, key: str, size: int, etag: str, event_name: str, config_id: str, now: str
    ) -> dict[str, Any]:
        return {
            "Records": [
                {
                    "eventVersion": "2.1",
                    "eventSource": "aws:s3",
                    "awsRegion": self.region,
                    "eventTime": now,
                    "eventName": event_name,
                    "userIdentity": {"principalId": "AWS:LOCALPRINCIPAL"},
                    "requestParameters": {"sourceIPAddress": "127.0.0.1"},
                    "responseElements": {
                        "x-amz-request-id": uuid.uuid4().hex[:16].upper(),
                        "x-amz-id-2": uuid.uuid4().hex,
                    },
                    "s3": {
                        "s3SchemaVersion": "1.0",
                        "configurationId": config_id,
                        "bucket": {
                            "name": bucket,
                            "ownerIdentity": {"principalId": "LOCALOWNER"},
                            "arn": f"arn:aws:s3:::{bucket}",
                        },
                        # S3 URL-encodes keys in notifications (spaces become '+').
                        "object": {
                            "key": quote_plus(key, safe="/"),
                            "size": size,
                            "eTag": etag,
                            "sequencer": f"{time.time_ns():016X}",
                        },
                    },
                }
            ]
        }


@dataclass
class Rule:
    name: str
    bus: str
    pattern: dict[str, Any]
    targets: list[dict[str, Any]]


class EventRouter:
    def __init__(self, resolver: Resolver, invoker: Invoker, region: str) -> None:
        self.invoker = invoker
        self.region = region
        self.rules: list[Rule] = []
        self.scheduled: list[str] = []
        for resource in resolver.assembly.resources("AWS::Events::Rule"):
            if not resolver.exists(resource):
                continue
            props = resolver.resolve(resource.properties, resource.stack)
            if props.get("State", "ENABLED") != "ENABLED":
                continue
            if "EventPattern" not in props:
                self.scheduled.append(resolver.name(resource))
                continue
            pattern = props["EventPattern"]
            bus = str(props.get("EventBusName") or "default").split("/")[-1]
            self.rules.append(
                Rule(
                    resolver.name(resource),
                    bus,
                    json.loads(pattern) if isinstance(pattern, str) else pattern,
                    props.get("Targets") or [],
                )
            )

    def on_put_events(self, bus: str, entry: dict[str, Any], event_id: str) -> None:
        try:
            detail = json.loads(entry.get("Detail") or "{}")
        except ValueError:
            return
        self.invoker.submit(
            self.dispatch, bus, entry["Source"], entry["DetailType"], detail, entry.get("Resources") or [], event_id
        )

    def dispatch(
        self, bus: str, source: str, detail_type: str, detail: Any, resources: list[str], event_id: str | None = None
    ) -> None:
        event = {
            "version": "0",
            "id": event_id or str(uuid.uuid4()),
            "detail-type": detail_type,
            "source": source,
            "account": ACCOUNT,
            "time": datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
            "region": self.region,
            "resources": resources,
            "detail": detail,
        }
        for rule in self.rules:
            if rule.bus == bus and matches(rule.pattern, event):
                self.invoker.trace("events.match", {"rule": rule.name, "detail-type": detail_type})
                for target in rule.targets:
                    self._deliver(rule, target, event)

    def _deliver(self, rule: Rule, target: dict[str, Any], event: dict[str, Any]) -> None:
        payload = _target_input(target, event)
        arn = str(target["Arn"])
        attempts = 1 + int((target.get("RetryPolicy") or {}).get("MaximumRetryAttempts", 2))
        for _ in range(attempts):
            if arn.startswith("arn:aws:lambda:"):
                delivered = self.invoker.invoke_async(arn, payload)
            else:
                delivered = self.invoker.deliver(arn, payload)
            if delivered:
                return
        dead_letter = (target.get("DeadLetterConfig") or {}).get("Arn")
        if dead_letter:
            self.invoker.deliver(
                dead_letter,
                payload,
                attributes={
                    "RULE_ARN": f"arn:aws:events:{self.region}:{ACCOUNT}:rule/{rule.name}",
                    "TARGET_ARN": arn,
                    "ERROR_CODE": "ResourceNotFoundException",
                },
            )


def _target_input(target: dict[str, Any], event: dict[str, Any]) -> Any:
    if "Input" in target:
        return json.loads(target["Input"])
    if "InputPath" in target:
        return _json_path(event, target["InputPath"])
    transformer = target.get("InputTransformer")
    if transformer:
        values = {name: _json_path(event, path) for name, path in (transformer.get("InputPathsMap") or {}).items()}
        template = str(transformer["InputTemplate"])

        def replace(match: re.Match[str]) -> str:
            value = values.get(match.group(1))
            return value if isinstance(value, str) else json.dumps(value)

        text = re.sub(r"<([A-Za-z0-9_.-]+)>", replace, template)
        try:
            return json.loads(text)
        except ValueError:
            return text
    return event


def _json_path(event: Any, path: str) -> Any:
    value = event
    for part in [p for p in path.removeprefix("$").split(".") if p]:
        value = value.get(part) if isinstance(value, dict) else None
    return value


class SqsPollers:
    def __init__(self, resolver: Resolver, invoker: Invoker, region: str) -> None:
        self.invoker = invoker
        self.region = region
        self._stop = threading.Event()
        self._threads: list[threading.Thread] = []
        self.mappings: list[tuple[str, str, str, int, bool]] = []  # (queue url, queue arn, function, batch, partial)
        self.unsupported: list[str] = []
        for resource in resolver.assembly.resources("AWS::Lambda::EventSourceMapping"):
            if not resolver.exists(resource):
                continue
            props = resolver.resolve(resource.properties, resource.stack)
            if not props.get("Enabled", True):
                continue
            source = resolver.find(str(props.get("EventSourceArn", "")))
            if source is None or source.type != "AWS::SQS::Queue":
                self.unsupported.append(f"{resource} ({props.get('EventSourceArn')})")
                continue
            partial = "ReportBatchItemFailures" in (props.get("FunctionResponseTypes") or [])
            self.mappings.append(
                (
                    resolver.ref(source),
                    resolver.arn(source),
                    str(props["FunctionName"]),
                    min(10, int(props.get("BatchSize", 10))),
                    partial,
                )
            )

    def start(self) -> None:
        for mapping in self.mappings:
            thread = threading.Thread(target=self._poll, args=mapping, daemon=True, name=f"sqs-{mapping[2]}")
            thread.start()
            self._threads.append(thread)

    def _poll(self, url: str, arn: str, function: str, batch: int, partial: bool) -> None:
        sqs = self.invoker.factory.client("sqs")
        while not self._stop.is_set():
            try:
                messages = sqs.receive_message(
                    QueueUrl=url,
                    MaxNumberOfMessages=batch,
                    WaitTimeSeconds=1,
                    AttributeNames=["All"],
                    MessageAttributeNames=["All"],
                ).get("Messages", [])
            except Exception:
                if self._stop.wait(0.5):
                    return
                continue
            if not messages:
                continue
            records = [
                {
                    "messageId": m["MessageId"],
                    "receiptHandle": m["ReceiptHandle"],
                    "body": m["Body"],
                    "attributes": m.get("Attributes", {}),
                    "messageAttributes": {
                        k: {"stringValue": v.get("StringValue"), "dataType": v.get("DataType")}
                        for k, v in (m.get("MessageAttributes") or {}).items()
                    },
                    "md5OfBody": m.get("MD5OfBody"),
                    "eventSource": "aws:sqs",
                    "eventSourceARN": arn,
                    "awsRegion": self.region,
                }
                for m in messages
            ]
            try:
                invocation = self.invoker.invoke(function, {"Records": records})
            except Exception:
                return
            if invocation.failed:
                continue
            failed = batch_item_failures(invocation.result, {m["MessageId"] for m in messages}) if partial else set()
            if failed is None:  # an invalid answer fails the whole batch
                continue
            for m in messages:
                if m["MessageId"] not in failed:
                    sqs.delete_message(QueueUrl=url, ReceiptHandle=m["ReceiptHandle"])

    def stop(self) -> None:
        self._stop.set()
        for thread in self._threads:
            thread.join(timeout=3)


def batch_item_failures(result: Any, ids: set[str]) -> set[str] | None:
    """The messages a `ReportBatchItemFailures` answer names as failed; None when Lambda would treat
    the answer as invalid (an entry without an identifier, or one that is not in the batch)."""
    if not isinstance(result, dict) or not result.get("batchItemFailures"):
        return set()  # null, {} or an empty list: the whole batch succeeded
    entries = result["batchItemFailures"]
    if not isinstance(entries, list):
        return None
    failed = set()
    for entry in entries:
        identifier = entry.get("itemIdentifier") if isinstance(entry, dict) else None
        if not isinstance(identifier, str) or identifier not in ids:
            return None
        failed.add(identifier)
    return failed
