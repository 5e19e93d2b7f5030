"""Server access logs for buckets whose objects are reached through presigned URLs.

A presigned URL is used by whoever holds it, so the bucket's server access log is the only record
of who (IP, user agent, signing principal) fetched or posted which object when. One log bucket per
stack keeps the logs beside the system they describe (no cross-stack references); each source
bucket writes under its own prefix, and logs expire after `access_log_retention_days`.
"""

from __future__ import annotations

from aws_cdk import Duration, Stack
from aws_cdk import aws_iam as iam
from aws_cdk import aws_s3 as s3
from constructs import Construct

from infrastructure.config import EnvConfig
from infrastructure.constructs.nag import acknowledge
from infrastructure.constructs.storage import private_bucket


class AccessLogBucket(Construct):
    """The stack's access-log bucket. `log(source, name)` turns on a source bucket's access logs."""

    def __init__(self, scope: Construct, construct_id: str, *, config: EnvConfig) -> None:
        super().__init__(scope, construct_id)
        # S3 delivers server access logs only to an SSE-S3 bucket in the same account and region.
        self.bucket = private_bucket(
            self,
            "Bucket",
            object_ownership=s3.ObjectOwnership.BUCKET_OWNER_ENFORCED,
            removal_policy=config.removal_policy,
            lifecycle_rules=[
                s3.LifecycleRule(id="ExpireAccessLogs", expiration=Duration.days(config.access_log_retention_days))
            ],
        )
        acknowledge(
            self.bucket,
            "AwsSolutions-S1",
            "This is the access-log bucket itself: logging its own access would log the log delivery.",
        )

    def log(self, source: s3.Bucket, name: str) -> None:
        """Deliver `source`'s access logs under `{name}/`.

        Written out rather than through `Bucket(server_access_logs_bucket=...)`: without the
        `@aws-cdk/aws-s3:serverAccessLogsUseBucketPolicy` flag in the app's context CDK would grant
        delivery by ACL, which a bucket-owner-enforced bucket refuses. This grant is the bucket
        policy AWS documents, whatever context builds the app: the logging service may put objects
        under the source's prefix only, for that source bucket, from this account."""
        prefix = f"{name}/"
        source_bucket = source.node.default_child
        assert isinstance(source_bucket, s3.CfnBucket)
        source_bucket.logging_configuration = s3.CfnBucket.LoggingConfigurationProperty(
            destination_bucket_name=self.bucket.bucket_name, log_file_prefix=prefix
        )
        self.bucket.add_to_resource_policy(
            iam.PolicyStatement(
                principals=[iam.ServicePrincipal("logging.s3.amazonaws.com")],
                actions=["s3:PutObject"],
                resources=[self.bucket.arn_for_objects(f"{prefix}*")],
                conditions={
                    "ArnLike": {"aws:SourceArn": source.bucket_arn},
                    "StringEquals": {"aws:SourceAccount": Stack.of(self).account},
                },
            )
        )
