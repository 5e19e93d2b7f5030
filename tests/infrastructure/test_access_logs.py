"""Buckets reached through presigned URLs log every access to their stack's access-log bucket."""

from __future__ import annotations

from typing import Any

import pytest
from aws_cdk.assertions import Template

from infrastructure.config import get_config
from tests.infrastructure.synth import synthesize

# Stack base name -> the lifecycle rule id that identifies the logged bucket in its template.
LOGGED_BUCKETS = {"QrUpload": "ExpireSessionUploads", "Tunnel": "ExpireBodies"}


def _buckets(template: Template) -> dict[str, dict[str, Any]]:
    return {
        logical_id: resource["Properties"]
        for logical_id, resource in template.find_resources("AWS::S3::Bucket").items()
    }


def _rule_ids(props: dict[str, Any]) -> set[str]:
    return {rule.get("Id") for rule in props.get("LifecycleConfiguration", {}).get("Rules", [])}


@pytest.mark.parametrize("stack", sorted(LOGGED_BUCKETS))
def test_presigned_url_bucket_logs_to_an_expiring_private_log_bucket(env_name: str, stack: str) -> None:
    template = synthesize(env_name).template(f"{stack}-{env_name}")
    buckets = _buckets(template)
    source = next(props for props in buckets.values() if LOGGED_BUCKETS[stack] in _rule_ids(props))
    logging = source["LoggingConfiguration"]
    log_bucket_id = logging["DestinationBucketName"]["Ref"]
    assert logging["LogFilePrefix"].endswith("/")

    log_bucket = buckets[log_bucket_id]
    retention = get_config(env_name).access_log_retention_days
    rules = log_bucket["LifecycleConfiguration"]["Rules"]
    assert [(rule["ExpirationInDays"], rule["Status"]) for rule in rules] == [(retention, "Enabled")]
    encryption = log_bucket["BucketEncryption"]["ServerSideEncryptionConfiguration"]
    assert encryption[0]["ServerSideEncryptionByDefault"]["SSEAlgorithm"] == "AES256"  # S3 logs need SSE-S3
    assert log_bucket["OwnershipControls"]["Rules"] == [{"ObjectOwnership": "BucketOwnerEnforced"}]
    assert log_bucket["PublicAccessBlockConfiguration"]["RestrictPublicBuckets"] is True

    # The log delivery service may write only under the source's prefix, and only for this account.
    policies = [
        resource["Properties"]["PolicyDocument"]["Statement"]
        for resource in template.find_resources("AWS::S3::BucketPolicy").values()
        if resource["Properties"]["Bucket"] == {"Ref": log_bucket_id}
    ]
    delivery = [
        statement
        for statements in policies
        for statement in statements
        if statement.get("Principal") == {"Service": "logging.s3.amazonaws.com"}
    ]
    assert len(delivery) == 1
    assert delivery[0]["Action"] == "s3:PutObject"
    assert "aws:SourceArn" in delivery[0]["Condition"]["ArnLike"]
    assert "aws:SourceAccount" in delivery[0]["Condition"]["StringEquals"]
