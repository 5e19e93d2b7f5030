"""Every alarm reaches someone, and every failure queue has an alarm: one CDK Aspect for all stacks.

`AlarmRouting` is applied to each stack of an environment by `build_platform`:

- On each stack (visited before its children), it finds the queues that hold failures: dead-letter
  targets of other queues (RedrivePolicy), on-failure destinations of asynchronous invocations
  (EventInvokeConfig, event source mappings), dead-letter configs of functions, EventBridge rule
  targets and SNS subscriptions. Each gets an alarm on its first visible message, unless one
  already watches ApproximateNumberOfMessagesVisible on it, and one on the age of its oldest
  message (a fraction of its retention: the message is about to expire unseen).
- On every `AWS::CloudWatch::Alarm` (those of the stacks, and the ones added above) it sets
  AlarmActions and OKActions to the environment's topic `platform-alarms-{env}`, whose ARN is built
  from pseudo-parameters: no export from `Alarms-{env}`, which every stack depends on instead.

Nothing here needs the system stacks' code to change: a new failure queue is watched as it appears.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import jsii
from aws_cdk import Duration, Fn, IAspect, Stack, Token
from aws_cdk import aws_cloudwatch as cloudwatch
from aws_cdk import aws_events as events
from aws_cdk import aws_lambda as lambda_
from aws_cdk import aws_sns as sns
from aws_cdk import aws_sqs as sqs
from constructs import IConstruct

from infrastructure.config import EnvConfig

SQS_NAMESPACE = "AWS/SQS"
VISIBLE = "ApproximateNumberOfMessagesVisible"
OLDEST_AGE = "ApproximateAgeOfOldestMessage"
DEFAULT_RETENTION_SECONDS = 4 * 24 * 3600  # SQS's default when MessageRetentionPeriod is absent
# Keys (lower-cased) under which a template names where failed messages or events go.
_FAILURE_KEYS = frozenset({"deadlettertargetarn", "deadletterconfig", "onfailure"})


def alarm_topic_name(env_name: str) -> str:
    return f"platform-alarms-{env_name}"


def alarm_topic_arn(env_name: str) -> str:
    """The topic's ARN in whichever stack uses it, from pseudo-parameters (no cross-stack export)."""
    return Fn.sub(f"arn:${{AWS::Partition}}:sns:${{AWS::Region}}:${{AWS::AccountId}}:{alarm_topic_name(env_name)}")


def _queue_arns_under_failure_keys(value: Any, inside: bool = False) -> Iterator[str]:
    """Logical ids of `{"Fn::GetAtt": [id, "Arn"]}` found beneath a failure key of a resolved property."""
    if isinstance(value, dict):
        get_att = value.get("Fn::GetAtt")
        if inside and isinstance(get_att, list) and len(get_att) == 2 and get_att[1] == "Arn":
            yield str(get_att[0])
            return
        for key, item in value.items():
            yield from _queue_arns_under_failure_keys(item, inside or key.lower() in _FAILURE_KEYS)
    elif isinstance(value, list):
        for item in value:
            yield from _queue_arns_under_failure_keys(item, inside)


def _failure_properties(construct: IConstruct) -> Any:
    """The properties of a resource that may name a failure queue, or None for any other construct."""
    if isinstance(construct, sqs.CfnQueue):
        return construct.redrive_policy
    if isinstance(construct, lambda_.CfnEventInvokeConfig | lambda_.CfnEventSourceMapping):
        return construct.destination_config
    if isinstance(construct, lambda_.CfnFunction):
        return construct.dead_letter_config
    if isinstance(construct, events.CfnRule):
        return construct.targets
    if isinstance(construct, sns.CfnSubscription):
        return construct.redrive_policy
    return None


def failure_queues(stack: Stack) -> list[sqs.CfnQueue]:
    """The queues of `stack` that other resources of it send failed messages or events to."""
    queues = {stack.get_logical_id(q): q for q in stack.node.find_all() if isinstance(q, sqs.CfnQueue)}
    found: dict[str, sqs.CfnQueue] = {}
    for construct in stack.node.find_all():
        props = _failure_properties(construct)
        if props is None or Stack.of(construct) is not stack:
            continue
        for logical_id in _queue_arns_under_failure_keys(stack.resolve(props)):
            if logical_id in queues:
                found[logical_id] = queues[logical_id]
    return [found[k] for k in sorted(found)]


def _watched(stack: Stack, metric_name: str) -> set[str]:
    """Logical ids of the stack's queues that already have an alarm on `metric_name`."""
    watched: set[str] = set()
    for alarm in stack.node.find_all():
        if not isinstance(alarm, cloudwatch.CfnAlarm) or alarm.metric_name != metric_name:
            continue
        if alarm.namespace != SQS_NAMESPACE:
            continue
        for dimension in stack.resolve(alarm.dimensions) or []:
            value = dimension.get("value") if isinstance(dimension, dict) else None
            if dimension.get("name") == "QueueName" and isinstance(value, dict) and "Fn::GetAtt" in value:
                watched.add(str(value["Fn::GetAtt"][0]))
    return watched


@jsii.implements(IAspect)
class AlarmRouting:
    """Applied to every stack of one environment (see the module docstring)."""

    def __init__(self, config: EnvConfig) -> None:
        self.config = config

    def visit(self, node: IConstruct) -> None:
        if isinstance(node, Stack):
            self._watch_failure_queues(node)
        elif isinstance(node, cloudwatch.CfnAlarm):
            self._route(node)

    def _route(self, alarm: cloudwatch.CfnAlarm) -> None:
        stack = Stack.of(alarm)
        topic = alarm_topic_arn(self.config.name)
        for attribute in ("alarm_actions", "ok_actions"):
            # Resolved first: an L2 alarm's actions are one lazy list token that cannot be appended to.
            existing = stack.resolve(getattr(alarm, attribute)) or []
            if stack.resolve(topic) not in existing:
                setattr(alarm, attribute, [a if isinstance(a, str) else Token.as_string(a) for a in existing] + [topic])

    def _watch_failure_queues(self, stack: Stack) -> None:
        visible = _watched(stack, VISIBLE)
        aged = _watched(stack, OLDEST_AGE)
        fraction = self.config.monitoring.dead_letter_age_fraction_of_retention
        for queue in failure_queues(stack):
            logical_id = stack.get_logical_id(queue)
            name = stack.resolve(queue.queue_name) if queue.queue_name else logical_id
            label = name.removesuffix(".fifo") if isinstance(name, str) else logical_id
            if logical_id not in visible:
                alarm = _queue_metric(queue, VISIBLE).create_alarm(
                    stack,
                    f"{logical_id}VisibleAlarm",
                    alarm_name=f"{label}-visible",
                    alarm_description=f"{label} holds a failed message or event: look at it, then redrive or delete it.",
                    threshold=1,
                    evaluation_periods=1,
                    comparison_operator=cloudwatch.ComparisonOperator.GREATER_THAN_OR_EQUAL_TO_THRESHOLD,
                    treat_missing_data=cloudwatch.TreatMissingData.NOT_BREACHING,
                )
                self._route(_cfn(alarm))
            if logical_id not in aged:
                retention = queue.message_retention_period or DEFAULT_RETENTION_SECONDS
                threshold = int(retention * fraction)
                alarm = _queue_metric(queue, OLDEST_AGE).create_alarm(
                    stack,
                    f"{logical_id}OldestAgeAlarm",
                    alarm_name=f"{label}-oldest-age",
                    alarm_description=(
                        f"{label}'s oldest message has waited {threshold // 3600} hours; SQS deletes it "
                        f"after {retention // 3600} hours (its retention) unless someone handles it."
                    ),
                    threshold=threshold,
                    evaluation_periods=1,
                    comparison_operator=cloudwatch.ComparisonOperator.GREATER_THAN_OR_EQUAL_TO_THRESHOLD,
                    treat_missing_data=cloudwatch.TreatMissingData.NOT_BREACHING,
                )
                self._route(_cfn(alarm))


def _queue_metric(queue: sqs.CfnQueue, metric_name: str) -> cloudwatch.Metric:
    return cloudwatch.Metric(
        namespace=SQS_NAMESPACE,
        metric_name=metric_name,
        dimensions_map={"QueueName": queue.attr_queue_name},
        period=Duration.minutes(5),
        statistic="Maximum",
    )


def _cfn(alarm: cloudwatch.Alarm) -> cloudwatch.CfnAlarm:
    cfn = alarm.node.default_child
    assert isinstance(cfn, cloudwatch.CfnAlarm)
    return cfn
