"""cdk-nag v3 acknowledgements, always next to the resource and with a reason specific to it.

Rules that report several findings (IAM4, IAM5) are acknowledged one finding at a time, e.g.
`AwsSolutions-IAM5[Resource::<UploadBucketD2C1DA78.Arn>/session-uploads/*]`, so a new wildcard
added later is reported instead of silently covered.
"""

from __future__ import annotations

import json
from typing import Any

from aws_cdk import Acknowledgment, Stack, Validations
from constructs import IConstruct


def acknowledge(construct: IConstruct, rule: str, reason: str) -> None:
    Validations.of(construct).acknowledge(Acknowledgment(id=rule, reason=reason))


def finding(scope: IConstruct, resource: str) -> str:
    """How cdk-nag prints `resource` in a finding (its `flattenCfnReference`): a GetAtt as
    `<LogicalId.Attr>`, a Ref as `<LogicalId>` or `<AWS::Region>`, literal text as it is."""
    return _flatten(Stack.of(scope).resolve(resource))


def _flatten(node: Any) -> str:
    if isinstance(node, str):
        return node.replace("${", "<").replace("}", ">")
    if isinstance(node, dict):
        if "Fn::Join" in node:
            delimiter, items = node["Fn::Join"]
            return str(delimiter).join(_flatten(item) for item in items)
        if "Fn::Sub" in node:
            return _flatten(node["Fn::Sub"])
        if "Fn::GetAtt" in node:
            resource, attribute = node["Fn::GetAtt"]
            return f"<{_flatten(resource)}.{_flatten(attribute)}>"
        if "Fn::ImportValue" in node:
            return _flatten(node["Fn::ImportValue"])
        if "Ref" in node:
            return f"<{_flatten(node['Ref'])}>"
    return json.dumps(node, separators=(",", ":"))


def acknowledge_wildcards(construct: IConstruct, reason: str, *resources: str) -> None:
    for resource in resources:
        acknowledge(construct, f"AwsSolutions-IAM5[Resource::{resource}]", reason)


def acknowledge_managed_policy(construct: IConstruct, policy: str, reason: str) -> None:
    acknowledge(construct, f"AwsSolutions-IAM4[Policy::arn:<AWS::Partition>:iam::aws:policy/{policy}]", reason)


def acknowledge_bucket_notifications_handler(stack: Stack) -> None:
    """CDK's singleton function behind `Bucket.add_event_notification` (deploy time only): CDK gives
    it AWSLambdaBasicExecutionRole. Its s3:PutBucketNotification grant is scoped to the stack's
    buckets by CDK, so no wildcard is acknowledged here: should CDK ever widen it, nag reports it."""
    for child in stack.node.children:
        if child.node.id.startswith("BucketNotificationsHandler"):
            acknowledge_managed_policy(
                child,
                "service-role/AWSLambdaBasicExecutionRole",
                "CDK's bucket-notification custom resource handler; it runs only at deploy time.",
            )
