"""QrUpload-{env}: routes, table keys, bucket rules, notification, and each function's IAM."""

from __future__ import annotations

import json

import pytest
from aws_cdk.assertions import Match, Template

from tests.infrastructure.synth import synthesize
from tests.infrastructure.template_queries import find_function, policy_statements, statement_actions


@pytest.fixture(scope="module")
def template(env_name: str) -> Template:
    return synthesize(env_name).template(f"QrUpload-{env_name}")


def test_http_routes(template: Template) -> None:
    for route in (
        "POST /sessions",
        "GET /sessions/{sessionId}",
        "GET /upload-url",
        "GET /upload-status",
        "GET /",
        "GET /upload",
    ):
        template.has_resource_properties("AWS::ApiGatewayV2::Route", {"RouteKey": route})
    template.has_resource_properties("AWS::ApiGatewayV2::Api", {"ProtocolType": "HTTP"})


def test_websocket_routes_and_stage(template: Template, env_name: str) -> None:
    template.has_resource_properties(
        "AWS::ApiGatewayV2::Api", {"ProtocolType": "WEBSOCKET", "RouteSelectionExpression": Match.any_value()}
    )
    for route in ("$connect", "$disconnect"):
        template.has_resource_properties("AWS::ApiGatewayV2::Route", {"RouteKey": route})
    template.has_resource_properties("AWS::ApiGatewayV2::Stage", {"StageName": env_name, "AutoDeploy": True})


def test_sessions_table_keys_ttl_and_connection_index(template: Template, env_name: str) -> None:
    template.has_resource_properties(
        "AWS::DynamoDB::GlobalTable",
        {
            "KeySchema": [{"AttributeName": "sessionId", "KeyType": "HASH"}],
            "TimeToLiveSpecification": {"AttributeName": "expiresAt", "Enabled": True},
            "GlobalSecondaryIndexes": [
                Match.object_like(
                    {
                        "IndexName": "wsConnectionId-index",
                        "KeySchema": [{"AttributeName": "wsConnectionId", "KeyType": "HASH"}],
                    }
                )
            ],
        },
    )
    protected = env_name == "prod"
    tables = template.find_resources("AWS::DynamoDB::GlobalTable")
    (table,) = tables.values()
    (replica,) = table["Properties"]["Replicas"]
    assert replica.get("DeletionProtectionEnabled", False) is protected
    assert replica["PointInTimeRecoverySpecification"]["PointInTimeRecoveryEnabled"] is True
    assert table["DeletionPolicy"] == ("Retain" if protected else "Delete")


def test_upload_bucket_is_private_encrypted_tls_only_and_expires_uploads(template: Template) -> None:
    template.has_resource_properties(
        "AWS::S3::Bucket",
        {
            "PublicAccessBlockConfiguration": {
                "BlockPublicAcls": True,
                "BlockPublicPolicy": True,
                "IgnorePublicAcls": True,
                "RestrictPublicBuckets": True,
            },
            "BucketEncryption": Match.object_like({"ServerSideEncryptionConfiguration": Match.any_value()}),
            # Versioned: the session pins the version it completed with; every version lives a day.
            "VersioningConfiguration": {"Status": "Enabled"},
            "LifecycleConfiguration": {
                "Rules": Match.array_with(
                    [
                        Match.object_like(
                            {
                                "Prefix": prefix,
                                "ExpirationInDays": 1,
                                "NoncurrentVersionExpiration": {"NoncurrentDays": 1},
                                "Status": "Enabled",
                            }
                        )
                        for prefix in ("session-uploads/", "session-renditions/")
                    ]
                    + [Match.object_like({"ExpiredObjectDeleteMarker": True, "Status": "Enabled"})]
                )
            },
        },
    )
    template.has_resource_properties(
        "AWS::S3::BucketPolicy",
        {
            "PolicyDocument": {
                "Statement": Match.array_with(
                    [Match.object_like({"Effect": "Deny", "Condition": {"Bool": {"aws:SecureTransport": "false"}}})]
                )
            }
        },
    )


def test_bucket_cors_is_limited_to_environment_origins(template: Template, env_name: str) -> None:
    from infrastructure.config import get_config

    origins = list(get_config(env_name).cors_origins)
    template.has_resource_properties(
        "AWS::S3::Bucket",
        {"CorsConfiguration": {"CorsRules": [Match.object_like({"AllowedOrigins": Match.array_with(origins)})]}},
    )
    bucket = template.find_resources("AWS::S3::Bucket")[_logical_id(template, "AWS::S3::Bucket", "UploadBucket")]
    for rule in bucket["Properties"]["CorsConfiguration"]["CorsRules"]:
        assert "*" not in rule["AllowedOrigins"]


def test_object_created_notification_is_filtered_to_session_uploads(template: Template, env_name: str) -> None:
    event_fn = find_function(template, f"qr-upload-websocket-event-{env_name}")[0]
    template.has_resource_properties(
        "Custom::S3BucketNotifications",
        {
            "NotificationConfiguration": {
                "LambdaFunctionConfigurations": [
                    {
                        "Events": ["s3:ObjectCreated:*"],
                        "Filter": {"Key": {"FilterRules": [{"Name": "prefix", "Value": "session-uploads/"}]}},
                        "LambdaFunctionArn": {"Fn::GetAtt": [event_fn, "Arn"]},
                    }
                ]
            }
        },
    )


def test_functions_runtime_architecture_tracing_and_environment(template: Template, env_name: str) -> None:
    for name, handler in (
        (f"qr-upload-http-api-{env_name}", "lambdas.qr_upload.http_api.handler"),
        (f"qr-upload-websocket-event-{env_name}", "lambdas.qr_upload.websocket_events.handler"),
    ):
        template.has_resource_properties(
            "AWS::Lambda::Function",
            {
                "FunctionName": name,
                "Handler": handler,
                "Runtime": "python3.12",
                "Architectures": ["arm64"],
                "TracingConfig": {"Mode": "Active"},
                "Environment": {
                    "Variables": Match.object_like(
                        {
                            "SESSIONS_TABLE_NAME": Match.any_value(),
                            "UPLOAD_BUCKET_NAME": Match.any_value(),
                            "WS_API_ENDPOINT": Match.any_value(),
                            "POWERTOOLS_SERVICE_NAME": Match.any_value(),
                        }
                    )
                },
            },
        )
        template.has_resource_properties("AWS::Logs::LogGroup", {"LogGroupName": f"/aws/lambda/{name}"})
        for alarm in ("errors", "throttles", "duration"):
            template.has_resource_properties("AWS::CloudWatch::Alarm", {"AlarmName": f"{name}-{alarm}"})


def test_event_function_retries_then_lands_in_its_failure_queue(template: Template, env_name: str) -> None:
    event_fn = find_function(template, f"qr-upload-websocket-event-{env_name}")[0]
    template.has_resource_properties(
        "AWS::Lambda::EventInvokeConfig",
        {
            "FunctionName": {"Ref": event_fn},
            "MaximumRetryAttempts": 2,
            "DestinationConfig": {"OnFailure": {"Destination": Match.any_value()}},
        },
    )
    template.has_resource_properties("AWS::SQS::Queue", {"QueueName": f"qr-upload-websocket-event-{env_name}-failures"})


def test_http_function_iam_is_exactly_what_it_uses(template: Template, env_name: str) -> None:
    statements = policy_statements(template, f"qr-upload-http-api-{env_name}")
    assert statement_actions(statements) == {
        "dynamodb:GetItem",
        "dynamodb:PutItem",
        "dynamodb:UpdateItem",
        "s3:PutObject",
        "secretsmanager:GetSecretValue",
        "secretsmanager:DescribeSecret",
        "logs:CreateLogStream",
        "logs:PutLogEvents",
        "xray:PutTraceSegments",
        "xray:PutTelemetryRecords",
    }
    s3_statement = next(s for s in statements if "s3:PutObject" in s["Action"])
    resource = s3_statement["Resource"]
    assert resource["Fn::Join"][1][-1] == "/session-uploads/*"
    # No S3 read at all: the desktop's link is signed with the photo links' key, read from its secret.
    secret = next(s for s in statements if "secretsmanager:GetSecretValue" in s["Action"])
    assert secret["Resource"] == {"Ref": _logical_id(template, "AWS::SecretsManager::Secret", "PhotoLinksSigningKey")}


def _logical_id(template: Template, resource_type: str, prefix: str) -> str:
    (logical_id,) = [k for k in template.find_resources(resource_type) if k.startswith(prefix)]
    return str(logical_id)


def test_photo_links_are_signed_cloudfront_urls_with_nosniff_and_a_download(template: Template, env_name: str) -> None:
    key_group = _logical_id(template, "AWS::CloudFront::KeyGroup", "PhotoLinksKeyGroup")
    headers = _logical_id(template, "AWS::CloudFront::ResponseHeadersPolicy", "PhotoLinksHeaders")
    cache = _logical_id(template, "AWS::CloudFront::CachePolicy", "PhotoLinksCache")
    template.has_resource_properties(
        "AWS::CloudFront::Distribution",
        {
            "DistributionConfig": Match.object_like(
                {
                    "DefaultCacheBehavior": Match.object_like(
                        {
                            "AllowedMethods": ["GET", "HEAD"],
                            "TrustedKeyGroups": [{"Ref": key_group}],
                            "ResponseHeadersPolicyId": {"Ref": headers},
                            "CachePolicyId": {"Ref": cache},
                            "ViewerProtocolPolicy": "https-only",
                        }
                    ),
                    "Origins": [Match.object_like({"OriginAccessControlId": Match.any_value()})],
                }
            )
        },
    )
    assert "CacheBehaviors" not in json.dumps(template.find_resources("AWS::CloudFront::Distribution"))
    template.has_resource_properties(
        "AWS::CloudFront::ResponseHeadersPolicy",
        {
            "ResponseHeadersPolicyConfig": Match.object_like(
                {
                    "SecurityHeadersConfig": Match.object_like(
                        {
                            "ContentTypeOptions": {"Override": True},
                            "ContentSecurityPolicy": {
                                "ContentSecurityPolicy": Match.string_like_regexp("^default-src 'none'.*; sandbox$"),
                                "Override": True,
                            },
                            "ReferrerPolicy": {"ReferrerPolicy": "no-referrer", "Override": True},
                        }
                    ),
                    "CustomHeadersConfig": {
                        "Items": [{"Header": "Content-Disposition", "Value": "attachment", "Override": False}]
                    },
                }
            )
        },
    )
    # Exactly the parameters the signer puts in a URL reach S3 (and the cache key).
    template.has_resource_properties(
        "AWS::CloudFront::CachePolicy",
        {
            "CachePolicyConfig": Match.object_like(
                {
                    "ParametersInCacheKeyAndForwardedToOrigin": Match.object_like(
                        {
                            "QueryStringsConfig": {
                                "QueryStringBehavior": "whitelist",
                                "QueryStrings": ["versionId", "response-content-type", "response-content-disposition"],
                            }
                        }
                    )
                }
            )
        },
    )
    # The public key comes from the key-pair custom resource; the template holds no private key.
    template.has_resource_properties(
        "AWS::CloudFront::PublicKey",
        {"PublicKeyConfig": Match.object_like({"EncodedKey": {"Fn::GetAtt": [Match.any_value(), "PublicKeyPem"]}})},
    )
    assert "PRIVATE KEY" not in json.dumps(template.to_json())
    template.has_resource_properties(
        "Custom::PhotoLinkSigningKey", {"SecretArn": {"Ref": Match.string_like_regexp("^PhotoLinksSigningKey")}}
    )
    http_env = template.find_resources(
        "AWS::Lambda::Function", {"Properties": {"FunctionName": f"qr-upload-http-api-{env_name}"}}
    )
    variables = next(iter(http_env.values()))["Properties"]["Environment"]["Variables"]
    assert variables["PHOTO_KEY_PAIR_ID"] == {"Ref": _logical_id(template, "AWS::CloudFront::PublicKey", "PhotoLinks")}
    assert variables["PHOTO_LINKS_URL"]["Fn::Join"][1][0] == "https://"


def test_cloudfront_reads_only_photos_and_renditions_of_the_bucket(template: Template) -> None:
    policies = template.find_resources("AWS::S3::BucketPolicy")
    statements = [s for p in policies.values() for s in p["Properties"]["PolicyDocument"]["Statement"]]
    cloudfront = [s for s in statements if s.get("Principal") == {"Service": "cloudfront.amazonaws.com"}]
    assert len(cloudfront) == 1
    (statement,) = cloudfront
    assert statement["Action"] == ["s3:GetObject", "s3:GetObjectVersion"]
    assert [r["Fn::Join"][1][-1] for r in statement["Resource"]] == ["/session-uploads/*", "/session-renditions/*"]
    assert "AWS:SourceArn" in statement["Condition"]["StringEquals"]


def test_key_pair_function_reaches_only_its_secret(template: Template, env_name: str) -> None:
    statements = policy_statements(template, f"qr-upload-{env_name}-signing-key")
    secret = next(s for s in statements if "secretsmanager:PutSecretValue" in s["Action"])
    assert secret["Action"] == ["secretsmanager:GetSecretValue", "secretsmanager:PutSecretValue"]
    assert secret["Resource"] == {"Ref": _logical_id(template, "AWS::SecretsManager::Secret", "PhotoLinksSigningKey")}


def test_event_function_iam_is_exactly_what_it_uses(template: Template, env_name: str) -> None:
    statements = policy_statements(template, f"qr-upload-websocket-event-{env_name}")
    actions = statement_actions(statements)
    assert actions == {
        "dynamodb:GetItem",
        "dynamodb:UpdateItem",
        "dynamodb:Query",
        "s3:GetObject",
        "s3:GetObjectVersion",
        "s3:PutObject",
        "execute-api:ManageConnections",
        "sqs:SendMessage",
        "sqs:GetQueueAttributes",
        "sqs:GetQueueUrl",
        "logs:CreateLogStream",
        "logs:PutLogEvents",
        "xray:PutTraceSegments",
        "xray:PutTelemetryRecords",
    }
    assert "dynamodb:Scan" not in actions
    # It writes only renditions, outside the notified prefix (it can never trigger itself).
    put = next(s for s in statements if s["Action"] == "s3:PutObject")
    assert put["Resource"]["Fn::Join"][1][-1] == "/session-renditions/*"
    query = next(s for s in statements if s["Action"] == "dynamodb:Query")
    assert query["Resource"]["Fn::Join"][1][-1] == "/index/wsConnectionId-index"
    manage = next(s for s in statements if s["Action"] == "execute-api:ManageConnections")
    assert manage["Resource"]["Fn::Join"][1][-1] == f"/{env_name}/POST/@connections/*"
