"""The function construct wires itself: grants go to its own role, env vars to its function."""

from __future__ import annotations

import aws_cdk as cdk
import pytest
from aws_cdk import aws_iam as iam
from aws_cdk import aws_s3 as s3
from aws_cdk.assertions import Match, Template
from constructs import IConstruct

from infrastructure.config import get_config
from infrastructure.constructs.python_function import PythonFunction
from tests.infrastructure.synth import SKIP_BUNDLING


def _function(stack: cdk.Stack, construct_id: str, *, asynchronous: bool = False) -> PythonFunction:
    return PythonFunction(
        stack,
        construct_id,
        defaults=get_config("dev").function_defaults,
        function_name=f"fixture-{construct_id.lower()}",
        group="qr_upload",
        handler="lambdas.qr_upload.http_api.handler",
        description="fixture",
        service="fixture",
        asynchronous=asynchronous,
    )


def test_grants_and_environment_go_through_the_construct() -> None:
    stack = cdk.Stack(cdk.App(context=SKIP_BUNDLING), "Fixture")
    fn = _function(stack, "Reader")
    bucket = s3.Bucket(stack, "Bucket")

    grantable: iam.IGrantable = fn  # checked by mypy: the construct is an IGrantable
    assert grantable.grant_principal is fn.role
    bucket.grant_read(fn)
    fn.allow(["s3:ListBucket"], bucket.bucket_arn, conditions={"StringLike": {"s3:prefix": ["code/*"]}})
    fn.add_environment("BUCKET", bucket.bucket_name)

    template = Template.from_stack(stack)
    role_id = stack.get_logical_id(fn.role.node.default_child)  # type: ignore[arg-type]
    template.has_resource_properties(
        "AWS::IAM::Policy",
        {
            "Roles": [{"Ref": role_id}],
            "PolicyDocument": {
                "Statement": Match.array_with(
                    [
                        Match.object_like({"Action": Match.array_with(["s3:GetObject*"]), "Effect": "Allow"}),
                        Match.object_like(
                            {
                                "Action": "s3:ListBucket",
                                "Condition": {"StringLike": {"s3:prefix": ["code/*"]}},
                                "Effect": "Allow",
                            }
                        ),
                    ]
                )
            },
        },
    )
    template.has_resource_properties(
        "AWS::Lambda::Function",
        {"Environment": {"Variables": Match.object_like({"BUCKET": {"Ref": Match.string_like_regexp("Bucket")}})}},
    )


def test_only_an_asynchronous_function_has_a_failure_queue() -> None:
    stack = cdk.Stack(cdk.App(context=SKIP_BUNDLING), "Fixture")
    assert _function(stack, "Async", asynchronous=True).failure_queue.queue_name
    with pytest.raises(ValueError, match="not asynchronous"):
        assert _function(stack, "Sync").failure_queue


def _acknowledged(construct: IConstruct) -> list[tuple[str, str]]:
    return [
        (rule.removeprefix("Annotation::"), reason)
        for entry in construct.node.metadata
        if entry.type == "aws:cdk:acknowledged-rules"
        for rule, reason in entry.data.items()
    ]


def test_a_wildcard_grant_carries_its_reason_per_finding() -> None:
    stack = cdk.Stack(cdk.App(context=SKIP_BUNDLING), "Fixture")
    fn = _function(stack, "Writer")
    bucket = s3.Bucket(stack, "Bucket")
    with pytest.raises(ValueError, match="needs a reason"):
        fn.allow(["s3:PutObject"], bucket.arn_for_objects("out/*"))

    fn.allow(["s3:GetObject"], bucket.bucket_arn)  # no wildcard: nothing to acknowledge
    fn.allow(["s3:PutObject"], bucket.arn_for_objects("out/*"), because="writes its outputs")
    fn.allow(["s3:GetObject"], bucket.arn_for_objects("out/*"), because="writes its outputs")  # once only
    bucket_id = stack.get_logical_id(bucket.node.default_child)  # type: ignore[arg-type]
    assert [a for a in _acknowledged(fn.role) if "Bucket" in a[0]] == [
        (f"AwsSolutions-IAM5[Resource::<{bucket_id}.Arn>/out/*]", "writes its outputs")
    ]
    with pytest.raises(ValueError, match="another reason"):
        fn.allow(["s3:DeleteObject"], bucket.arn_for_objects("out/*"), because="something else")
