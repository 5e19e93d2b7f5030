"""CollectionsDataStack-{env} and CollectionsComputeStack-{env}: network, database, pipeline wiring, IAM."""

from __future__ import annotations

from typing import Any

import pytest
from aws_cdk.assertions import Match, Template

from tests.infrastructure.synth import synthesize
from tests.infrastructure.template_queries import find_function, policy_statements


@pytest.fixture(scope="module", params=["dev", "prod"])
def env_name(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture(scope="module")
def data(env_name: str) -> Template:
    return synthesize(env_name).template(f"CollectionsDataStack-{env_name}")


@pytest.fixture(scope="module")
def compute(env_name: str) -> Template:
    return synthesize(env_name).template(f"CollectionsComputeStack-{env_name}")


def _resources_for(statements: list[dict[str, Any]], action: str) -> list[Any]:
    found: list[Any] = []
    for s in statements:
        actions = s["Action"] if isinstance(s["Action"], list) else [s["Action"]]
        if action in actions:
            found.extend(s["Resource"] if isinstance(s["Resource"], list) else [s["Resource"]])
    return found


def _bucket_id(template: Template, prefix: str) -> str:
    [logical_id] = [k for k in template.find_resources("AWS::S3::Bucket") if k.startswith(prefix)]
    return logical_id


# --- data stack -------------------------------------------------------------------------------


def test_database_settings_per_environment(data: Template, env_name: str) -> None:
    prod = env_name == "prod"
    data.has_resource(
        "AWS::RDS::DBInstance",
        {
            "Properties": Match.object_like(
                {
                    "Engine": "postgres",
                    "EngineVersion": Match.string_like_regexp(r"^1[6-9]"),
                    "StorageEncrypted": True,
                    "PubliclyAccessible": False,
                    "DeletionProtection": prod,
                    "MultiAZ": prod,
                    "DBInstanceClass": "db.t4g.small" if prod else "db.t4g.micro",
                    "MasterUsername": Match.any_value(),
                }
            ),
            "DeletionPolicy": "Snapshot" if prod else "Delete",
        },
    )
    # Credentials are the secret RDS/CDK generates, rotated.
    data.resource_count_is("AWS::SecretsManager::Secret", 1)
    data.resource_count_is("AWS::SecretsManager::RotationSchedule", 1)


def test_database_reachable_only_from_the_functions_security_group(data: Template) -> None:
    functions_sg = next(
        k
        for k, v in data.find_resources("AWS::EC2::SecurityGroup").items()
        if "Collections functions" in v["Properties"]["GroupDescription"]
    )
    ingress = [r["Properties"] for r in data.find_resources("AWS::EC2::SecurityGroupIngress").values()]
    # Ours, plus the identical one the rotation (placed in the functions' group) adds.
    assert ingress and all(
        p["SourceSecurityGroupId"] == {"Fn::GetAtt": [functions_sg, "GroupId"]} and p["IpProtocol"] == "tcp"
        for p in ingress
    )
    assert any((p["FromPort"], p["ToPort"]) == (5432, 5432) for p in ingress)
    db_sg = next(
        v
        for v in data.find_resources("AWS::EC2::SecurityGroup").values()
        if "PostgreSQL" in v["Properties"]["GroupDescription"]
    )
    assert "SecurityGroupIngress" not in db_sg["Properties"]


def test_subnets_and_nat_per_environment(data: Template, env_name: str) -> None:
    data.resource_count_is("AWS::EC2::NatGateway", 2 if env_name == "prod" else 1)
    subnets = data.find_resources("AWS::EC2::Subnet")
    kinds = {
        tag["Value"] for s in subnets.values() for tag in s["Properties"]["Tags"] if tag["Key"] == "aws-cdk:subnet-type"
    }
    assert kinds == {"Public", "Private", "Isolated"}
    [db_subnets] = data.find_resources("AWS::RDS::DBSubnetGroup").values()
    isolated = {
        k for k, s in subnets.items() if {"Key": "aws-cdk:subnet-type", "Value": "Isolated"} in s["Properties"]["Tags"]
    }
    assert {r["Ref"] for r in db_subnets["Properties"]["SubnetIds"]} == isolated
    data.resource_count_is("AWS::EC2::FlowLog", 1)


# --- compute stack ----------------------------------------------------------------------------


def test_function_names_handlers_and_vpc(compute: Template, env_name: str) -> None:
    for name, handler in (
        ("ImageProcessorLambda", "lambdas.image_processor.handler.handler"),
        ("AnalyzerLambda", "lambdas.analyzer.handler.handler"),
        ("EmbedderLambda", "lambdas.embedder.handler.handler"),
        ("SearchLambda", "lambdas.search.handler.handler"),
        ("MigrateLambda", "lambdas.migrations.handler.handler"),
    ):
        _, fn = find_function(compute, f"collections-{env_name}-{name}")
        props = fn["Properties"]
        assert props["Handler"] == handler
        assert props["VpcConfig"]["SubnetIds"] and props["VpcConfig"]["SecurityGroupIds"]
        env = props["Environment"]["Variables"]
        assert "DB_SECRET_ARN" in env and not any("KEY" in k and "PARAM" not in k for k in env)


def test_reserved_concurrency_and_local_providers_from_config(compute: Template, env_name: str) -> None:
    expected = 5 if env_name == "prod" else 2
    for name in ("AnalyzerLambda", "EmbedderLambda"):
        props = find_function(compute, f"collections-{env_name}-{name}")[1]["Properties"]
        assert props["ReservedConcurrentExecutions"] == expected
        assert props["Environment"]["Variables"]["ALLOW_LOCAL_PROVIDERS"] == ("false" if env_name == "prod" else "true")


def test_notification_reaches_the_processor_for_every_upload(compute: Template, env_name: str) -> None:
    processor_id, _ = find_function(compute, f"collections-{env_name}-ImageProcessorLambda")
    images = _bucket_id(compute, "ImagesBucket")
    [notifications] = compute.find_resources("Custom::S3BucketNotifications").values()
    props = notifications["Properties"]
    assert props["BucketName"] == {"Ref": images}
    [config] = props["NotificationConfiguration"]["LambdaFunctionConfigurations"]
    assert config["Events"] == ["s3:ObjectCreated:*"]
    # No suffix filter: `.JPG`, `.jpeg`, `.HEIC` or no extension at all are all uploads, and the
    # format is detected from the bytes.
    assert "Filter" not in config
    assert config["LambdaFunctionArn"] == {"Fn::GetAtt": [processor_id, "Arn"]}


def test_outputs_can_never_retrigger_the_processor(compute: Template, env_name: str) -> None:
    statements = policy_statements(compute, f"collections-{env_name}-ImageProcessorLambda")
    images, derived = _bucket_id(compute, "ImagesBucket"), _bucket_id(compute, "DerivedBucket")
    writes = _resources_for(statements, "s3:PutObject")
    assert writes == [
        {"Fn::Join": ["", [{"Fn::GetAtt": [derived, "Arn"]}, "/thumbnails/*"]]},
        {"Fn::Join": ["", [{"Fn::GetAtt": [derived, "Arn"]}, "/analysis/*"]]},
    ]
    assert not any(images in str(r) for r in writes)
    # Only the images bucket has a notification.
    [notifications] = compute.find_resources("Custom::S3BucketNotifications").values()
    assert notifications["Properties"]["BucketName"] == {"Ref": images}


def test_buckets_are_private_encrypted_and_tls_only(compute: Template) -> None:
    for bucket in compute.find_resources("AWS::S3::Bucket").values():
        props = bucket["Properties"]
        assert props["PublicAccessBlockConfiguration"] == {
            "BlockPublicAcls": True,
            "BlockPublicPolicy": True,
            "IgnorePublicAcls": True,
            "RestrictPublicBuckets": True,
        }
        assert props["BucketEncryption"]["ServerSideEncryptionConfiguration"]
    for policy in compute.find_resources("AWS::S3::BucketPolicy").values():
        assert any(
            s.get("Condition") == {"Bool": {"aws:SecureTransport": "false"}} and s["Effect"] == "Deny"
            for s in policy["Properties"]["PolicyDocument"]["Statement"]
        )


@pytest.mark.parametrize(
    ("rule", "source", "detail_type", "target"),
    [
        ("ImageProcessedRule", "collections.imageprocessor", "ImageProcessed", "AnalyzerLambda"),
        ("AnalysisCompleteRule", "collections.analyzer", "AnalysisComplete", "EmbedderLambda"),
    ],
)
def test_rules_target_with_retries_and_dead_letter_queues(
    compute: Template, env_name: str, rule: str, source: str, detail_type: str, target: str
) -> None:
    target_id, _ = find_function(compute, f"collections-{env_name}-{target}")
    [bus_id] = compute.find_resources("AWS::Events::EventBus", {"Properties": {"Name": f"collections-{env_name}"}})
    [(_, found)] = compute.find_resources(
        "AWS::Events::Rule", {"Properties": {"Name": f"collections-{env_name}-{rule}"}}
    ).items()
    props = found["Properties"]
    assert props["EventBusName"] == {"Ref": bus_id}
    assert props["EventPattern"] == {"source": [source], "detail-type": [detail_type]}
    [t] = props["Targets"]
    assert t["Arn"] == {"Fn::GetAtt": [target_id, "Arn"]}
    assert t["RetryPolicy"] == {"MaximumRetryAttempts": 4, "MaximumEventAgeInSeconds": 7200}
    dlq_id = t["DeadLetterConfig"]["Arn"]["Fn::GetAtt"][0]
    dlq = compute.find_resources("AWS::SQS::Queue")[dlq_id]["Properties"]
    assert dlq["QueueName"] == f"collections-{env_name}-{rule}-dlq" and dlq["SqsManagedSseEnabled"] is True
    # The function itself also has an on-failure destination for failed invocations.
    compute.has_resource_properties(
        "AWS::Lambda::EventInvokeConfig",
        {
            "FunctionName": {"Ref": target_id},
            "DestinationConfig": {"OnFailure": {"Destination": Match.any_value()}},
        },
    )


def test_api_keys_readable_by_exactly_the_named_parameters(compute: Template, env_name: str) -> None:
    def parameters(function: str) -> list[str]:
        return sorted(
            r["Fn::Join"][1][-1]
            for r in _resources_for(
                policy_statements(compute, f"collections-{env_name}-{function}"), "ssm:GetParameter"
            )
        )

    prefix = f":parameter/platform/{env_name}/collections/"
    assert parameters("AnalyzerLambda") == sorted(
        prefix + n for n in ("ANTHROPIC_API_KEY", "OPENAI_API_KEY", "LANGSMITH_API_KEY")
    )
    assert parameters("EmbedderLambda") == [prefix + "VOYAGE_API_KEY"]
    assert parameters("SearchLambda") == [prefix + "VOYAGE_API_KEY"]
    assert parameters("ImageProcessorLambda") == [] and parameters("MigrateLambda") == []


def test_every_function_reads_the_database_secret_and_nothing_broader(compute: Template, env_name: str) -> None:
    for name in ("ImageProcessorLambda", "AnalyzerLambda", "EmbedderLambda", "SearchLambda", "MigrateLambda"):
        statements = policy_statements(compute, f"collections-{env_name}-{name}")
        secrets = _resources_for(statements, "secretsmanager:GetSecretValue")
        assert len(secrets) == 1 and "Fn::ImportValue" in str(secrets[0])
        assert all(
            r != "*"
            for s in statements
            for r in (s["Resource"] if isinstance(s["Resource"], list) else [s["Resource"]])
            if not str(s["Action"]).startswith("['xray") and "xray" not in str(s["Action"])
        )


def test_search_api_uses_iam_authorization(compute: Template, env_name: str) -> None:
    routes = compute.find_resources("AWS::ApiGatewayV2::Route")
    assert {r["Properties"]["RouteKey"] for r in routes.values()} == {"GET /search", "GET /items/{item_id}"}
    assert {r["Properties"]["AuthorizationType"] for r in routes.values()} == {"AWS_IAM"}


def test_migrations_run_by_a_trigger_before_the_functions(compute: Template, env_name: str) -> None:
    migrate_id, _ = find_function(compute, f"collections-{env_name}-MigrateLambda")
    [(trigger_id, trigger)] = compute.find_resources("Custom::Trigger").items()
    # The trigger invokes the current version, so a code change re-runs the migrations.
    assert trigger["Properties"]["HandlerArn"]["Ref"].startswith(
        migrate_id.replace("Function", "FunctionCurrentVersion")[:-8]
    )
    processor = compute.find_resources("AWS::Lambda::Function")[
        find_function(compute, f"collections-{env_name}-ImageProcessorLambda")[0]
    ]
    assert trigger_id in processor.get("DependsOn", [])


def test_daily_budget_and_the_schedule_that_requeues_deferred_analyses(compute: Template, env_name: str) -> None:
    analyzer = find_function(compute, f"collections-{env_name}-AnalyzerLambda")[1]["Properties"]
    budget = "500" if env_name == "prod" else "50"
    assert analyzer["Environment"]["Variables"]["ANALYSIS_DAILY_BUDGET"] == budget
    deferred_id, deferred = find_function(compute, f"collections-{env_name}-DeferredAnalysesLambda")
    assert deferred["Properties"]["Handler"] == "lambdas.analyzer.deferred.handler"
    [trigger_id] = compute.find_resources("Custom::Trigger")
    assert trigger_id in deferred.get("DependsOn", [])  # never runs before the migrations
    compute.has_resource_properties(
        "AWS::Events::Rule",
        {
            "Name": f"collections-{env_name}-DeferredAnalysesSchedule",
            "ScheduleExpression": "cron(5 0 * * ? *)",
            "State": "ENABLED",
            "Targets": [Match.object_like({"Arn": {"Fn::GetAtt": [deferred_id, "Arn"]}})],
        },
    )
    statements = policy_statements(compute, f"collections-{env_name}-DeferredAnalysesLambda")
    assert _resources_for(statements, "events:PutEvents")
