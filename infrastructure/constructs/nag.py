"""cdk-nag v3 acknowledgements, always next to the resource and with a reason specific to it.

Rules that report several findings (IAM4, IAM5) are acknowledged one finding at a time, e.g.
`AwsSolutions-IAM5[Resource::<UploadBucketD2C1DA78.Arn>/session-uploads/*]`, so a new wildcard
added later is reported instead of silently covered.
"""

from __future__ import annotations

from aws_cdk import Acknowledgment, CfnElement, Stack, Validations
from constructs import IConstruct


def acknowledge(construct: IConstruct, rule: str, reason: str) -> None:
    Validations.of(construct).acknowledge(Acknowledgment(id=rule, reason=reason))


def ref(construct: IConstruct, attribute: str | None = "Arn") -> str:
    """How cdk-nag writes a reference in a finding: `<LogicalId.Attr>` (GetAtt) or `<LogicalId>` (Ref)."""
    element = construct if isinstance(construct, CfnElement) else construct.node.default_child
    assert isinstance(element, CfnElement), f"{construct.node.path} has no CloudFormation resource"
    logical_id = Stack.of(element).get_logical_id(element)
    return f"<{logical_id}.{attribute}>" if attribute else f"<{logical_id}>"


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
