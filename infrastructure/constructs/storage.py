"""The platform's bucket, table and log group, built in the caller's scope under the caller's id.

Functions rather than constructs on purpose: a construct level would move the bucket or table one
level down the tree and change its logical id, which CloudFormation deploys as a replacement.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol

from aws_cdk import RemovalPolicy
from aws_cdk import aws_dynamodb as dynamodb
from aws_cdk import aws_logs as logs
from aws_cdk import aws_s3 as s3
from constructs import Construct

from infrastructure.constructs.nag import acknowledge


def private_bucket(
    scope: Construct,
    construct_id: str,
    *,
    removal_policy: RemovalPolicy,
    lifecycle_rules: Sequence[s3.LifecycleRule],
    bucket_name: str | None = None,
    versioned: bool | None = None,
    cors: Sequence[s3.CorsRule] | None = None,
    object_ownership: s3.ObjectOwnership | None = None,
) -> s3.Bucket:
    """No public access, SSE-S3 (access logs can only be delivered to SSE-S3 buckets, and presigned
    URLs then need no KMS grants), TLS only, and a lifecycle: the platform's objects are transient."""
    return s3.Bucket(
        scope,
        construct_id,
        bucket_name=bucket_name,
        block_public_access=s3.BlockPublicAccess.BLOCK_ALL,
        encryption=s3.BucketEncryption.S3_MANAGED,
        enforce_ssl=True,
        versioned=versioned,
        object_ownership=object_ownership,
        removal_policy=removal_policy,
        cors=list(cors) if cors is not None else None,
        lifecycle_rules=list(lifecycle_rules),
    )


def ttl_table(
    scope: Construct,
    construct_id: str,
    *,
    partition_key: str,
    ttl_attribute: str,
    removal_policy: RemovalPolicy,
    deletion_protection: bool = False,
    sort_key: str | None = None,
    indexes: Sequence[dynamodb.GlobalSecondaryIndexPropsV2] = (),
    unprotected_because: str | None = None,
) -> dynamodb.TableV2:
    """An on-demand table of string keys whose items expire by `ttl_attribute`.

    Protected (point-in-time recovery, and `deletion_protection` as the environment sets it) unless
    `unprotected_because` says why its rows need neither: that reason is the nag acknowledgement."""
    string = dynamodb.AttributeType.STRING
    protected = unprotected_because is None
    table = dynamodb.TableV2(
        scope,
        construct_id,
        partition_key=dynamodb.Attribute(name=partition_key, type=string),
        sort_key=dynamodb.Attribute(name=sort_key, type=string) if sort_key else None,
        time_to_live_attribute=ttl_attribute,
        global_secondary_indexes=list(indexes) or None,
        point_in_time_recovery_specification=(
            dynamodb.PointInTimeRecoverySpecification(point_in_time_recovery_enabled=True) if protected else None
        ),
        deletion_protection=deletion_protection if protected else None,
        removal_policy=removal_policy,
    )
    if unprotected_because is not None:
        acknowledge(table, "AwsSolutions-DDB3", unprotected_because)
    return table


class LogPolicy(Protocol):
    """How long an environment keeps logs and what becomes of them with their stack (`EnvConfig`
    and `FunctionDefaults` both say it)."""

    @property
    def log_retention(self) -> logs.RetentionDays: ...

    @property
    def removal_policy(self) -> RemovalPolicy: ...


def log_group(scope: Construct, construct_id: str, policy: LogPolicy, *, name: str | None = None) -> logs.LogGroup:
    """A log group with the environment's retention and removal policy (`name`: CloudFormation's otherwise)."""
    return logs.LogGroup(
        scope,
        construct_id,
        log_group_name=name,
        retention=policy.log_retention,
        removal_policy=policy.removal_policy,
    )
