"""Alarms-{env}: one encrypted topic per environment, and every alarm of every stack notifies it;
every dead-letter and failure queue is watched."""

from __future__ import annotations

import json
from typing import Any

import aws_cdk as cdk
import pytest
from aws_cdk.assertions import Annotations, Match, Template

from infrastructure.config import ALARM_EMAILS_CONTEXT, ALARM_EMAILS_EXAMPLE, get_config
from infrastructure.monitoring import failure_queues
from infrastructure.platform import build_platform
from infrastructure.stacks.alarms import InvalidAlarmEmail
from tests.infrastructure.synth import SKIP_BUNDLING, synthesize

ENVS = ["dev", "prod"]


def topic_arn(env_name: str) -> dict[str, str]:
    return {"Fn::Sub": f"arn:${{AWS::Partition}}:sns:${{AWS::Region}}:${{AWS::AccountId}}:platform-alarms-{env_name}"}


def all_alarms(env_name: str) -> list[tuple[str, str, dict[str, Any]]]:
    synthesized = synthesize(env_name)
    return [
        (stack_name, logical_id, resource["Properties"])
        for stack_name in synthesized.stacks
        for logical_id, resource in synthesized.template_json(stack_name)["Resources"].items()
        if resource["Type"] == "AWS::CloudWatch::Alarm"
    ]


@pytest.mark.parametrize("env_name", ENVS)
def test_the_topic_is_encrypted_with_a_key_cloudwatch_may_use(env_name: str) -> None:
    template = synthesize(env_name).template(f"Alarms-{env_name}")
    template.resource_count_is("AWS::SNS::Topic", 1)
    template.has_resource_properties(
        "AWS::SNS::Topic",
        {"TopicName": f"platform-alarms-{env_name}", "KmsMasterKeyId": {"Fn::GetAtt": [Match.any_value(), "Arn"]}},
    )
    template.has_resource_properties("AWS::KMS::Key", {"EnableKeyRotation": True})
    template.has_resource_properties(
        "AWS::KMS::Key",
        {
            "KeyPolicy": {
                "Statement": Match.array_with(
                    [
                        Match.object_like(
                            {
                                "Principal": {"Service": "cloudwatch.amazonaws.com"},
                                "Action": ["kms:Decrypt", "kms:GenerateDataKey*"],
                                "Condition": {"StringEquals": {"aws:SourceAccount": {"Ref": "AWS::AccountId"}}},
                            }
                        )
                    ]
                )
            }
        },
    )
    template.has_resource_properties(
        "AWS::SNS::TopicPolicy",
        {
            "PolicyDocument": {
                "Statement": Match.array_with(
                    [
                        Match.object_like({"Effect": "Deny", "Condition": {"Bool": {"aws:SecureTransport": "false"}}}),
                        Match.object_like(
                            {
                                "Effect": "Allow",
                                "Principal": {"Service": "cloudwatch.amazonaws.com"},
                                "Action": "sns:Publish",
                            }
                        ),
                    ]
                )
            }
        },
    )


def test_dev_has_no_subscription_and_prod_subscribes_the_context_addresses() -> None:
    synthesize("dev").template("Alarms-dev").resource_count_is("AWS::SNS::Subscription", 0)
    prod = synthesize("prod").template("Alarms-prod")
    # cdk.json is not read by the tests' App: the example comes from it only through `cdk synth`.
    prod.resource_count_is("AWS::SNS::Subscription", 0)
    without = {s.stack_name: s for s in build_platform(cdk.App(context=SKIP_BUNDLING), get_config("prod"))}
    Annotations.from_stack(without["Alarms-prod"]).has_warning("*", Match.string_like_regexp("has no subscription"))

    app = cdk.App(context={**SKIP_BUNDLING, ALARM_EMAILS_CONTEXT: {"prod": ["ops@corp.test", "oncall@corp.test"]}})
    stacks = {s.stack_name: s for s in build_platform(app, get_config("prod"))}
    template = Template.from_stack(stacks["Alarms-prod"])
    for email in ("ops@corp.test", "oncall@corp.test"):
        template.has_resource_properties("AWS::SNS::Subscription", {"Protocol": "email", "Endpoint": email})
    Annotations.from_stack(stacks["Alarms-prod"]).has_no_warning("*", Match.any_value())


def test_alarm_emails_from_the_command_line_and_the_example_warns() -> None:
    app = cdk.App(context={**SKIP_BUNDLING, ALARM_EMAILS_CONTEXT: f"a@corp.test, {ALARM_EMAILS_EXAMPLE}"})
    stacks = {s.stack_name: s for s in build_platform(app, get_config("dev"))}
    Template.from_stack(stacks["Alarms-dev"]).resource_count_is("AWS::SNS::Subscription", 2)
    Annotations.from_stack(stacks["Alarms-dev"]).has_warning("*", Match.string_like_regexp("names the example"))

    with pytest.raises(InvalidAlarmEmail, match="not an e-mail address"):
        build_platform(cdk.App(context={ALARM_EMAILS_CONTEXT: "ops-at-corp"}), get_config("dev"))


@pytest.mark.parametrize("env_name", ENVS)
def test_no_alarm_lacks_an_alarm_or_ok_action(env_name: str) -> None:
    alarms = all_alarms(env_name)
    assert len(alarms) > 40, "expected the platform's alarms (functions, queues)"
    for stack_name, logical_id, props in alarms:
        assert topic_arn(env_name) in props.get("AlarmActions", []), f"{stack_name}/{logical_id}: no ALARM action"
        assert topic_arn(env_name) in props.get("OKActions", []), f"{stack_name}/{logical_id}: no OK action"


@pytest.mark.parametrize("env_name", ENVS)
def test_every_stack_with_alarms_is_deployed_after_the_topic(env_name: str) -> None:
    synthesized = synthesize(env_name)
    alarms_stack = synthesized.stacks[f"Alarms-{env_name}"]
    with_alarms = {stack_name for stack_name, _, _ in all_alarms(env_name)}
    assert with_alarms >= {f"QrUpload-{env_name}", f"Tunnel-{env_name}", f"Functions-{env_name}"}
    for stack_name in with_alarms:
        assert alarms_stack in synthesized.stacks[stack_name].dependencies, stack_name


def _queue_alarms(resources: dict[str, Any], queue_id: str) -> dict[str, dict[str, Any]]:
    """metric name -> alarm properties of the alarms on this queue (by QueueName dimension)."""
    found = {}
    for resource in resources.values():
        props = resource.get("Properties", {})
        dimension = {"Name": "QueueName", "Value": {"Fn::GetAtt": [queue_id, "QueueName"]}}
        if props.get("Namespace") == "AWS/SQS" and dimension in props.get("Dimensions", []):
            found[props["MetricName"]] = props
    return found


@pytest.mark.parametrize("env_name", ENVS)
def test_every_dead_letter_and_failure_queue_alarms_on_a_message_and_on_its_age(env_name: str) -> None:
    synthesized = synthesize(env_name)
    checked: set[str] = set()
    for stack_name, stack in synthesized.stacks.items():
        resources = synthesized.template_json(stack_name)["Resources"]
        # From the template itself, independently of the aspect's own search.
        queue_ids = {lid for lid, r in resources.items() if r["Type"] == "AWS::SQS::Queue"}
        referenced = {
            lid
            for lid in queue_ids
            for r in resources.values()
            if r["Type"] in ("AWS::SQS::Queue", "AWS::Lambda::EventInvokeConfig", "AWS::Events::Rule")
            and f'"Fn::GetAtt": ["{lid}", "Arn"]' in _failure_json(r)
        }
        assert referenced == {stack.get_logical_id(q) for q in failure_queues(stack)}, stack_name
        for queue_id in referenced:
            name = resources[queue_id]["Properties"]["QueueName"]
            alarms = _queue_alarms(resources, queue_id)
            visible = alarms.get("ApproximateNumberOfMessagesVisible")
            assert visible and visible["Threshold"] == 1, f"{name}: no alarm on a visible message"
            assert visible["ComparisonOperator"] == "GreaterThanOrEqualToThreshold"
            age = alarms.get("ApproximateAgeOfOldestMessage")
            retention = resources[queue_id]["Properties"]["MessageRetentionPeriod"]
            assert age and 0 < age["Threshold"] < retention, f"{name}: no alarm before its messages expire"
            for props in (visible, age):
                assert topic_arn(env_name) in props["AlarmActions"] and topic_arn(env_name) in props["OKActions"]
            checked.add(name)
    suffix = env_name
    assert {
        f"qr-upload-websocket-event-{suffix}-failures",
        f"collections-{suffix}-ImageProcessorLambda-failures",
        f"collections-{suffix}-ImageProcessedRule-dlq",
        f"functions-deploy-{suffix}-dlq.fifo",
        f"functions-results-{suffix}-dlq",
    } <= checked


def _failure_json(resource: dict[str, Any]) -> str:
    props = resource["Properties"]
    if resource["Type"] == "AWS::SQS::Queue":
        part: Any = props.get("RedrivePolicy", {}).get("deadLetterTargetArn")
    elif resource["Type"] == "AWS::Lambda::EventInvokeConfig":
        part = props.get("DestinationConfig", {}).get("OnFailure")
    else:
        part = [t.get("DeadLetterConfig") for t in props.get("Targets", [])]
    return json.dumps(part)


@pytest.mark.parametrize("env_name", ENVS)
def test_an_existing_dead_letter_alarm_is_not_duplicated(env_name: str) -> None:
    resources = synthesize(env_name).template_json(f"Functions-{env_name}")["Resources"]
    visible = [
        r["Properties"]["AlarmName"]
        for r in resources.values()
        if r["Type"] == "AWS::CloudWatch::Alarm"
        and r["Properties"].get("MetricName") == "ApproximateNumberOfMessagesVisible"
    ]
    assert sorted(visible) == sorted(
        f"functions-{q}-{env_name}-dead-letters" for q in ("deploy", "results", "batch")
    ), visible
