"""Functions-{env}: the five platform functions, the API and its authorizer, the tables, code bucket,
queues (deploy, results, batch) and callback secret, the user functions' execution role, and every
IAM grant (the deployer's guardrails included), read from the template."""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any

import aws_cdk as cdk
import pytest
from aws_cdk import Validations
from aws_cdk.assertions import Match, Template
from cdk_nag import AwsSolutionsChecks

from infrastructure.config import get_config
from infrastructure.stacks.functions import FunctionsStack
from lambdas.functions import names
from tests.infrastructure.synth import SKIP_BUNDLING, synthesize
from tests.infrastructure.template_queries import find_function, policy_statements, statement_actions

PSEUDO = {"AWS::Partition": "aws", "AWS::Region": "eu-west-1", "AWS::AccountId": "123456789012"}
BASELINE = {"logs:CreateLogStream", "logs:PutLogEvents", "xray:PutTraceSegments", "xray:PutTelemetryRecords"}
CONFIG_ACTIONS = {"lambda:CreateFunction", "lambda:UpdateFunctionConfiguration"}
# What an SQS event source grants the function it feeds (on that queue only).
CONSUME = {
    "sqs:ReceiveMessage",
    "sqs:ChangeMessageVisibility",
    "sqs:GetQueueUrl",
    "sqs:DeleteMessage",
    "sqs:GetQueueAttributes",
}
PLATFORM_FUNCTIONS = (names.API, names.DEPLOYER, names.AUTHORIZER, names.RECORDER, names.BATCH)


@pytest.fixture(scope="module")
def template(env_name: str) -> Template:
    return synthesize(env_name).template(f"{names.STACK_BASE}-{env_name}")


def _flat(value: Any) -> Any:
    """A resource reference as readable text: pseudo parameters by value, `<Id>` for a Ref,
    `<Id.Attr>` for a GetAtt, Fn::Join concatenated. Lists are flattened item by item."""
    if isinstance(value, list):
        return [_flat(v) for v in value]
    if isinstance(value, dict):
        if "Ref" in value:
            return PSEUDO.get(value["Ref"], f"<{value['Ref']}>")
        if "Fn::GetAtt" in value:
            return "<{}.{}>".format(*value["Fn::GetAtt"])
        if "Fn::Join" in value:
            separator, parts = value["Fn::Join"]
            return separator.join(_flat(p) for p in parts)
    return value


def _resources(statement: dict[str, Any]) -> list[str]:
    resource = _flat(statement["Resource"])
    return resource if isinstance(resource, list) else [resource]


def _actions(statement: dict[str, Any]) -> set[str]:
    return statement_actions([statement])


def _logical_id(template: Template, type_: str, props: dict[str, Any] | None = None) -> str:
    found = template.find_resources(type_, {"Properties": props} if props else None)
    assert len(found) == 1, f"expected one {type_} with {props}, found {len(found)}"
    return next(iter(found))


def _function_arns(env: str) -> list[str]:
    base = f"arn:aws:lambda:eu-west-1:123456789012:function:{names.user_function_prefix(env)}*"
    return [base, f"{base}:*"]


def _user_log_group_arn(env: str) -> str:
    return f"arn:aws:logs:eu-west-1:123456789012:log-group:/aws/lambda/{names.user_function_prefix(env)}*"


def _secrets_arn(env: str) -> str:
    return f"arn:aws:ssm:eu-west-1:123456789012:parameter{get_config(env).parameter_prefix}/functions/secrets/*"


def _allows(statements: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [s for s in statements if s["Effect"] == "Allow"]


def _denies(statements: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [s for s in statements if s["Effect"] == "Deny"]


def _granting(statements: list[dict[str, Any]], action: str) -> list[dict[str, Any]]:
    return [s for s in _allows(statements) if action in _actions(s)]


def _table(template: Template) -> str:
    return _logical_id(
        template,
        "AWS::DynamoDB::GlobalTable",
        {"KeySchema": Match.array_with([{"AttributeName": "pk", "KeyType": "HASH"}])},
    )


def _idempotency_table(template: Template) -> str:
    return _logical_id(
        template, "AWS::DynamoDB::GlobalTable", {"KeySchema": [{"AttributeName": "id", "KeyType": "HASH"}]}
    )


def _queue(template: Template, name: str) -> str:
    return _logical_id(template, "AWS::SQS::Queue", {"QueueName": name})


def _secret(template: Template) -> str:
    return _logical_id(template, "AWS::SecretsManager::Secret")


def _results_queue_arn(template: Template, env: str) -> str:
    return f"<{_queue(template, f'functions-results-{env}')}.Arn>"


def _statements(template: Template, short: str, env: str) -> list[dict[str, Any]]:
    return policy_statements(template, names.platform_function_name(short, env))


def _role_of(template: Template, short: str, env: str) -> str:
    return str(
        find_function(template, names.platform_function_name(short, env))[1]["Properties"]["Role"]["Fn::GetAtt"][0]
    )


def _every_statement(template: Template) -> list[tuple[str, dict[str, Any]]]:
    """(holder, statement) for every statement of the stack's roles and managed policies: a
    role's logical id for its inline and attached policies, the managed policy's id for one."""
    found: list[tuple[str, dict[str, Any]]] = []
    for policy in template.find_resources("AWS::IAM::Policy").values():
        for role in policy["Properties"]["Roles"]:
            found += [(role["Ref"], s) for s in policy["Properties"]["PolicyDocument"]["Statement"]]
    for role_id, role in template.find_resources("AWS::IAM::Role").items():
        for inline in role["Properties"].get("Policies", []):
            found += [(role_id, s) for s in inline["PolicyDocument"]["Statement"]]
    for policy_id, policy in template.find_resources("AWS::IAM::ManagedPolicy").items():
        found += [(policy_id, s) for s in policy["Properties"]["PolicyDocument"]["Statement"]]
    return found


def _bucket(template: Template) -> str:
    return _logical_id(template, "AWS::S3::Bucket")


def _user_role(template: Template) -> tuple[str, Any]:
    found = template.find_resources("AWS::IAM::Role", {"Properties": {"PermissionsBoundary": Match.any_value()}})
    assert len(found) == 1
    return next(iter(found.items()))


# --- functions and their environment ---------------------------------------------------------------
def test_platform_functions_with_their_handlers(template: Template, env_name: str) -> None:
    settings = get_config(env_name).functions
    template.resource_count_is("AWS::Lambda::Function", len(PLATFORM_FUNCTIONS))
    for short in PLATFORM_FUNCTIONS:
        fn = find_function(template, names.platform_function_name(short, env_name))[1]["Properties"]
        assert fn["Handler"] == f"lambdas.functions.{short}.handler"
        assert fn["Runtime"] == "python3.12" and fn["Architectures"] == ["arm64"]
        assert fn["TracingConfig"] == {"Mode": "Active"}
    deployer = find_function(template, names.platform_function_name(names.DEPLOYER, env_name))[1]["Properties"]
    assert deployer["Timeout"] == settings.deployer_timeout_seconds
    assert deployer.get("ReservedConcurrentExecutions") == settings.deployer_reserved_concurrency
    assert (deployer.get("ReservedConcurrentExecutions") is None) == (env_name == "dev")
    api = find_function(template, names.platform_function_name(names.API, env_name))[1]["Properties"]
    assert api["Timeout"] < 30 and api["MemorySize"] == settings.api_memory_mb  # under the HTTP API's 30 s
    authorizer = find_function(template, names.platform_function_name(names.AUTHORIZER, env_name))[1]["Properties"]
    assert authorizer["Timeout"] <= 10
    recorder = find_function(template, names.platform_function_name(names.RECORDER, env_name))[1]["Properties"]
    assert recorder["Timeout"] == settings.recorder_timeout_seconds
    batch = find_function(template, names.platform_function_name(names.BATCH, env_name))[1]["Properties"]
    assert batch["Timeout"] == settings.batch_timeout_seconds
    # Parallelism is bounded by the event source (see the mapping test), not by a reservation.
    assert "ReservedConcurrentExecutions" not in batch


def _variables(template: Template, short: str, env: str) -> dict[str, Any]:
    fn = find_function(template, names.platform_function_name(short, env))[1]["Properties"]
    return {k: _flat(v) for k, v in fn["Environment"]["Variables"].items() if not k.startswith("POWERTOOLS_")}


def test_environment_variables_are_exactly_the_contracts(template: Template, env_name: str) -> None:
    config = get_config(env_name)
    settings = config.functions
    table, bucket = f"<{_table(template)}>", f"<{_bucket(template)}>"
    queue = f"<{_queue(template, f'functions-deploy-{env_name}.fifo')}>"
    results = _queue(template, f"functions-results-{env_name}")
    batch = f"<{_queue(template, f'functions-batch-{env_name}')}>"
    secret = f"<{_secret(template)}>"
    api = _logical_id(template, "AWS::ApiGatewayV2::Api")
    role = f"<{_user_role(template)[0]}.Arn>"
    prefix = f"{config.parameter_prefix}/functions/secrets"
    limits = {
        names.ENV_MAX_MEMORY_MB: str(settings.max_memory_mb),
        names.ENV_MAX_TIMEOUT_SECONDS: str(settings.max_timeout_seconds),
    }
    retention = {names.ENV_INVOCATION_RETENTION_DAYS: {"dev": "7", "prod": "30"}[env_name]}
    versions_kept = {names.ENV_QUOTA_VERSIONS_KEPT: {"dev": "10", "prod": "20"}[env_name]}
    invoking = {names.ENV_TABLE: table, names.ENV_CODE_BUCKET: bucket, names.ENV_PLATFORM_ENV: env_name, **retention}
    assert _variables(template, names.API, env_name) == {
        **invoking,
        names.ENV_DEPLOY_QUEUE_URL: queue,
        names.ENV_SECRET_PREFIX: prefix,
        **limits,
        names.ENV_BATCH_QUEUE_URL: batch,
        names.ENV_IDEMPOTENCY_TABLE: f"<{_idempotency_table(template)}>",
        names.ENV_CALLBACK_KEY_SECRET_ARN: secret,
        names.ENV_PUBLIC_API_URL: f"<{api}.ApiEndpoint>",
        names.ENV_QUOTA_MAX_FUNCTIONS: {"dev": "50", "prod": "500"}[env_name],
        **versions_kept,
        names.ENV_QUOTA_INVOCATIONS_PER_MINUTE: {"dev": "300", "prod": "6000"}[env_name],
        names.ENV_QUOTA_MONTHLY_GB_SECONDS: {"dev": "50000", "prod": "1000000"}[env_name],
    }
    assert _variables(template, names.DEPLOYER, env_name) == {
        **invoking,
        names.ENV_EXECUTION_ROLE_ARN: role,
        names.ENV_SECRET_PREFIX: prefix,
        **limits,
        names.ENV_RESERVED_CONCURRENCY: {"dev": "", "prod": "10"}[env_name],
        names.ENV_ALLOWED_LAYERS: "",
        names.ENV_LOG_RETENTION_DAYS: {"dev": "7", "prod": "90"}[env_name],
        **versions_kept,
        names.ENV_RESULTS_QUEUE_ARN: f"<{results}.Arn>",
        names.ENV_ASYNC_RETRY_ATTEMPTS: {"dev": "0", "prod": "2"}[env_name],
        names.ENV_ASYNC_MAX_EVENT_AGE_SECONDS: {"dev": "3600", "prod": "21600"}[env_name],
    }
    assert _variables(template, names.AUTHORIZER, env_name) == {names.ENV_TABLE: table}
    assert _variables(template, names.RECORDER, env_name) == {
        **invoking,
        names.ENV_RESULTS_QUEUE_URL: f"<{results}>",
        names.ENV_CALLBACK_KEY_SECRET_ARN: secret,
    }
    assert _variables(template, names.BATCH, env_name) == invoking
    # The retention the deployer gives user log groups is the one the platform's own groups have.
    own = template.find_resources(
        "AWS::Logs::LogGroup", {"Properties": {"LogGroupName": f"/aws/lambda/functions-deployer-{env_name}"}}
    )
    retention = next(iter(own.values()))["Properties"]["RetentionInDays"]
    assert str(retention) == _variables(template, names.DEPLOYER, env_name)[names.ENV_LOG_RETENTION_DAYS]


# --- HTTP API --------------------------------------------------------------------------------------
def test_http_api_name_payload_and_stage(template: Template, env_name: str) -> None:
    template.has_resource_properties(
        "AWS::ApiGatewayV2::Api", {"Name": f"functions-{env_name}", "ProtocolType": "HTTP"}
    )
    template.resource_count_is("AWS::ApiGatewayV2::Api", 1)
    api_fn = find_function(template, names.platform_function_name(names.API, env_name))[0]
    integrations = template.find_resources("AWS::ApiGatewayV2::Integration")
    assert integrations and all(
        i["Properties"]["PayloadFormatVersion"] == "2.0"
        and i["Properties"]["IntegrationType"] == "AWS_PROXY"
        and _flat(i["Properties"]["IntegrationUri"]) == f"<{api_fn}.Arn>"
        for i in integrations.values()
    )
    template.has_resource_properties(
        "AWS::ApiGatewayV2::Stage",
        {"StageName": "$default", "AutoDeploy": True, "AccessLogSettings": Match.object_like({})},
    )


def test_authorizer_is_a_cached_simple_request_authorizer(template: Template, env_name: str) -> None:
    authorizer_fn = find_function(template, names.platform_function_name(names.AUTHORIZER, env_name))[0]
    found = template.find_resources("AWS::ApiGatewayV2::Authorizer")
    assert len(found) == 1
    props = next(iter(found.values()))["Properties"]
    assert props["AuthorizerType"] == "REQUEST"
    assert props["AuthorizerPayloadFormatVersion"] == "2.0"
    assert props["EnableSimpleResponses"] is True
    assert props["IdentitySource"] == ["$request.header.Authorization"]
    assert props["AuthorizerResultTtlInSeconds"] == 300
    assert f"<{authorizer_fn}.Arn>" in _flat(props["AuthorizerUri"])


def test_routes_and_their_authorization(template: Template) -> None:
    authorizer = _logical_id(template, "AWS::ApiGatewayV2::Authorizer")
    routes = {
        r["Properties"]["RouteKey"]: r["Properties"]
        for r in template.find_resources("AWS::ApiGatewayV2::Route").values()
    }
    assert set(routes) == {"ANY /v1/orgs/{org}/{proxy+}", "GET /v1/openapi.json", "ANY /v1/callback/{proxy+}"}
    orgs = routes["ANY /v1/orgs/{org}/{proxy+}"]
    assert orgs["AuthorizationType"] == "CUSTOM" and orgs["AuthorizerId"] == {"Ref": authorizer}
    # Without the key authorizer: the description, and callbacks (a per-invocation token instead).
    for key in ("GET /v1/openapi.json", "ANY /v1/callback/{proxy+}"):
        assert routes[key]["AuthorizationType"] == "NONE" and "AuthorizerId" not in routes[key], key


# --- data ------------------------------------------------------------------------------------------
def test_table_keys_gsi_ttl_and_protection(template: Template, env_name: str) -> None:
    config = get_config(env_name)
    template.has_resource_properties(
        "AWS::DynamoDB::GlobalTable",
        {
            "KeySchema": [{"AttributeName": "pk", "KeyType": "HASH"}, {"AttributeName": "sk", "KeyType": "RANGE"}],
            "AttributeDefinitions": Match.array_with(
                [{"AttributeName": n, "AttributeType": "S"} for n in ("pk", "sk", names.GSI1_PK, names.GSI1_SK)]
            ),
            "TimeToLiveSpecification": {"AttributeName": names.TTL_ATTRIBUTE, "Enabled": True},
            "GlobalSecondaryIndexes": [
                {
                    "IndexName": names.GSI1,
                    "KeySchema": [
                        {"AttributeName": names.GSI1_PK, "KeyType": "HASH"},
                        {"AttributeName": names.GSI1_SK, "KeyType": "RANGE"},
                    ],
                    "Projection": {"ProjectionType": "ALL"},
                }
            ],
            "Replicas": [
                Match.object_like(
                    {
                        "PointInTimeRecoverySpecification": {"PointInTimeRecoveryEnabled": True},
                        "DeletionProtectionEnabled": config.deletion_protection,
                    }
                )
            ],
        },
    )
    table = template.find_resources("AWS::DynamoDB::GlobalTable")[_table(template)]
    assert table["DeletionPolicy"] == {"dev": "Delete", "prod": "Retain"}[env_name]


def test_idempotency_table_in_powertools_layout(template: Template, env_name: str) -> None:
    config = get_config(env_name)
    template.resource_count_is("AWS::DynamoDB::GlobalTable", 2)
    table = template.find_resources("AWS::DynamoDB::GlobalTable")[_idempotency_table(template)]
    props = table["Properties"]
    assert props["AttributeDefinitions"] == [{"AttributeName": "id", "AttributeType": "S"}]
    assert props["TimeToLiveSpecification"] == {"AttributeName": "expiration", "Enabled": True}
    assert "GlobalSecondaryIndexes" not in props
    (replica,) = props["Replicas"]
    assert replica["PointInTimeRecoverySpecification"] == {"PointInTimeRecoveryEnabled": True}
    assert replica["DeletionProtectionEnabled"] is config.deletion_protection
    assert table["DeletionPolicy"] == {"dev": "Delete", "prod": "Retain"}[env_name]


def test_callback_key_is_a_generated_secret_without_rotation(template: Template, env_name: str) -> None:
    secrets = template.find_resources("AWS::SecretsManager::Secret")
    assert list(secrets) == [_secret(template)]
    secret = secrets[_secret(template)]
    assert set(secret["Properties"]) == {"Name", "Description", "GenerateSecretString"}  # no SecretString
    assert secret["Properties"]["Name"] == f"functions-callback-key-{env_name}"
    assert secret["Properties"]["GenerateSecretString"] == {"PasswordLength": 64, "ExcludePunctuation": True}
    assert secret["DeletionPolicy"] == {"dev": "Delete", "prod": "Retain"}[env_name]
    # Rotated by hand (README): a rotation would invalidate the tokens of running invocations.
    template.resource_count_is("AWS::SecretsManager::RotationSchedule", 0)


def _ssl_only(template: Template, type_: str, target: str) -> None:
    template.has_resource_properties(
        type_,
        Match.object_like(
            {
                "PolicyDocument": Match.object_like(
                    {
                        "Statement": Match.array_with(
                            [
                                Match.object_like(
                                    {
                                        "Effect": "Deny",
                                        "Condition": {"Bool": {"aws:SecureTransport": "false"}},
                                    }
                                )
                            ]
                        )
                    }
                ),
                target: Match.any_value(),
            }
        ),
    )


def test_code_bucket_encrypted_private_tls_only_uploads_and_inputs_expire(template: Template, env_name: str) -> None:
    bucket = template.find_resources("AWS::S3::Bucket")[_bucket(template)]["Properties"]
    assert bucket["BucketEncryption"] == {
        "ServerSideEncryptionConfiguration": [{"ServerSideEncryptionByDefault": {"SSEAlgorithm": "AES256"}}]
    }
    assert bucket["PublicAccessBlockConfiguration"] == {
        "BlockPublicAcls": True,
        "BlockPublicPolicy": True,
        "IgnorePublicAcls": True,
        "RestrictPublicBuckets": True,
    }
    assert bucket["LifecycleConfiguration"]["Rules"] == [
        {"Id": "ExpireUploads", "Prefix": names.UPLOADS_PREFIX, "ExpirationInDays": 1, "Status": "Enabled"},
        # Large async payloads go with the invocation records that point at them.
        {
            "Id": "ExpireInputs",
            "Prefix": names.INPUTS_PREFIX,
            "ExpirationInDays": get_config(env_name).functions.invocation_retention_days,
            "Status": "Enabled",
        },
    ]
    assert "CorsConfiguration" not in bucket  # the CLI uploads, no browser
    policy = template.find_resources("AWS::S3::BucketPolicy")
    assert [_flat(p["Properties"]["Bucket"]) for p in policy.values()] == [f"<{_bucket(template)}>"]
    _ssl_only(template, "AWS::S3::BucketPolicy", "Bucket")


def _mapping(template: Template, queue: str) -> dict[str, Any]:
    found = [
        m["Properties"]
        for m in template.find_resources("AWS::Lambda::EventSourceMapping").values()
        if m["Properties"]["EventSourceArn"] == {"Fn::GetAtt": [queue, "Arn"]}
    ]
    assert len(found) == 1, f"expected one event source mapping on {queue}"
    return found[0]


def _dead_letters_alarm(template: Template, dlq: str) -> None:
    template.has_resource_properties(
        "AWS::CloudWatch::Alarm",
        {
            "MetricName": "ApproximateNumberOfMessagesVisible",
            "Threshold": 1,
            "Dimensions": [{"Name": "QueueName", "Value": Match.object_like({"Fn::GetAtt": [dlq, "QueueName"]})}],
        },
    )


def test_every_queue_is_encrypted_and_tls_only(template: Template, env_name: str) -> None:
    queues = template.find_resources("AWS::SQS::Queue")
    assert {q["Properties"]["QueueName"] for q in queues.values()} == {
        f"functions-deploy-{env_name}.fifo",
        f"functions-deploy-{env_name}-dlq.fifo",
        f"functions-results-{env_name}",
        f"functions-results-{env_name}-dlq",
        f"functions-batch-{env_name}",
        f"functions-batch-{env_name}-dlq",
    }
    assert all(q["Properties"]["SqsManagedSseEnabled"] is True for q in queues.values())
    ssl = template.find_resources("AWS::SQS::QueuePolicy")
    assert sorted(_flat(p["Properties"]["Queues"][0]) for p in ssl.values()) == sorted(f"<{q}>" for q in queues)
    for policy in ssl.values():
        statements = policy["Properties"]["PolicyDocument"]["Statement"]
        assert [s["Effect"] for s in statements] == ["Deny"]  # TLS only, nobody granted anything here
        assert statements[0]["Condition"] == {"Bool": {"aws:SecureTransport": "false"}}
    _ssl_only(template, "AWS::SQS::QueuePolicy", "Queues")


def test_fifo_deploy_queue_dead_letters_and_mapping(template: Template, env_name: str) -> None:
    settings = get_config(env_name).functions
    dlq = _queue(template, f"functions-deploy-{env_name}-dlq.fifo")
    queue = _queue(template, f"functions-deploy-{env_name}.fifo")
    queues = template.find_resources("AWS::SQS::Queue")
    props = queues[queue]["Properties"]
    assert props["FifoQueue"] is True and props["ContentBasedDeduplication"] is False
    assert props["VisibilityTimeout"] >= 6 * settings.deployer_timeout_seconds
    assert props["RedrivePolicy"] == {"deadLetterTargetArn": {"Fn::GetAtt": [dlq, "Arn"]}, "maxReceiveCount": 3}
    assert queues[dlq]["Properties"]["FifoQueue"] is True

    deployer = find_function(template, names.platform_function_name(names.DEPLOYER, env_name))[0]
    template.resource_count_is("AWS::Lambda::EventSourceMapping", 3)  # deploy, results, batch
    m = _mapping(template, queue)
    assert m["FunctionName"] == {"Ref": deployer}
    assert 1 <= m["BatchSize"] <= 10 and m["FunctionResponseTypes"] == ["ReportBatchItemFailures"]
    assert m["ScalingConfig"] == {"MaximumConcurrency": settings.deployer_max_concurrency}
    _dead_letters_alarm(template, dlq)


@pytest.mark.parametrize(
    ("base", "consumer", "max_receives"),
    [("functions-results", names.RECORDER, 5), ("functions-batch", names.BATCH, 3)],
)
def test_standard_queues_dead_letters_and_mappings(
    template: Template, env_name: str, base: str, consumer: str, max_receives: int
) -> None:
    queue, dlq = _queue(template, f"{base}-{env_name}"), _queue(template, f"{base}-{env_name}-dlq")
    queues = template.find_resources("AWS::SQS::Queue")
    props = queues[queue]["Properties"]
    assert "FifoQueue" not in props and "FifoQueue" not in queues[dlq]["Properties"]  # standard queues
    assert props["RedrivePolicy"] == {
        "deadLetterTargetArn": {"Fn::GetAtt": [dlq, "Arn"]},
        "maxReceiveCount": max_receives,
    }
    assert queues[dlq]["Properties"]["MessageRetentionPeriod"] == 14 * 24 * 3600
    fn_id, fn = find_function(template, names.platform_function_name(consumer, env_name))
    # AWS's guidance for SQS event sources: visibility at least 6x the function's timeout.
    assert props["VisibilityTimeout"] >= 6 * fn["Properties"]["Timeout"]
    m = _mapping(template, queue)
    assert m["FunctionName"] == {"Ref": fn_id}
    assert m["BatchSize"] == 10 and m["FunctionResponseTypes"] == ["ReportBatchItemFailures"]
    assert "Enabled" not in m or m["Enabled"] is True
    if consumer == names.BATCH:  # bounded parallelism, from config
        settings = get_config(env_name).functions
        assert m["ScalingConfig"] == {"MaximumConcurrency": settings.batch_max_concurrency}
        assert settings.batch_max_concurrency == {"dev": 2, "prod": 10}[env_name]
    _dead_letters_alarm(template, dlq)


# --- user functions' execution role ----------------------------------------------------------------
def test_user_function_role_only_writes_its_logs_and_results_under_a_boundary(
    template: Template, env_name: str
) -> None:
    allowed = [
        {
            "Action": ["logs:CreateLogStream", "logs:PutLogEvents"],
            "Effect": "Allow",
            "Resource": f"{_user_log_group_arn(env_name)}:*",
        },
        # Lambda sends each async invocation's destination record with the function's own role;
        # calls from user code carry lambda:SourceFunctionArn, so user code cannot send one itself.
        {
            "Action": "sqs:SendMessage",
            "Effect": "Allow",
            "Resource": _results_queue_arn(template, env_name),
            "Condition": {"Null": {"lambda:SourceFunctionArn": "true"}},
        },
    ]
    role_id, role = _user_role(template)
    props = role["Properties"]
    assert props["AssumeRolePolicyDocument"]["Statement"] == [
        {"Action": "sts:AssumeRole", "Effect": "Allow", "Principal": {"Service": "lambda.amazonaws.com"}}
    ]
    assert "ManagedPolicyArns" not in props
    assert [
        {**s, "Resource": _flat(s["Resource"])} for p in props["Policies"] for s in p["PolicyDocument"]["Statement"]
    ] == allowed
    # Nothing else is attached to it.
    attached = [
        p for p in template.find_resources("AWS::IAM::Policy").values() if {"Ref": role_id} in p["Properties"]["Roles"]
    ]
    assert attached == []
    boundary = template.find_resources("AWS::IAM::ManagedPolicy")
    assert props["PermissionsBoundary"] == {"Ref": next(iter(boundary))} and len(boundary) == 1
    statements = next(iter(boundary.values()))["Properties"]["PolicyDocument"]["Statement"]
    assert [{**s, "Resource": _flat(s["Resource"])} for s in statements] == allowed


def test_only_the_recorder_and_user_functions_send_to_the_results_queue(template: Template, env_name: str) -> None:
    results = _results_queue_arn(template, env_name)
    user_role, boundary = _user_role(template)[0], next(iter(template.find_resources("AWS::IAM::ManagedPolicy")))
    senders = set()
    for holder, statement in _every_statement(template):
        if (
            statement["Effect"] == "Allow"
            and "sqs:SendMessage" in _actions(statement)
            and results in _resources(statement)
        ):
            assert _resources(statement) == [results] and _actions(statement) == {"sqs:SendMessage"}, statement
            if holder in (user_role, boundary):  # Lambda's delivery only, never user code
                assert statement["Condition"] == {"Null": {"lambda:SourceFunctionArn": "true"}}
            senders.add(holder)
    assert senders == {user_role, boundary, _role_of(template, names.RECORDER, env_name)}


# --- deployer IAM ------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def deployer(template: Template, env_name: str) -> list[dict[str, Any]]:
    return policy_statements(template, names.platform_function_name(names.DEPLOYER, env_name))


def test_deployer_passes_only_the_user_role_and_only_to_lambda(
    template: Template, deployer: list[dict[str, Any]]
) -> None:
    (statement,) = _granting(deployer, "iam:PassRole")
    assert _actions(statement) == {"iam:PassRole"}
    assert statement["Resource"] == {"Fn::GetAtt": [_user_role(template)[0], "Arn"]}
    assert statement["Condition"] == {"StringEquals": {"iam:PassedToService": "lambda.amazonaws.com"}}
    assert {a for a in statement_actions(deployer) if a.startswith("iam:")} == {"iam:PassRole"}


def test_deployer_lambda_actions_only_on_user_functions(deployer: list[dict[str, Any]], env_name: str) -> None:
    expected = {
        f"lambda:{a}"
        for a in [
            "GetFunction",
            "GetFunctionConfiguration",
            "UpdateFunctionCode",
            "UpdateFunctionConfiguration",
            "PublishVersion",
            "ListVersionsByFunction",
            "CreateAlias",
            "UpdateAlias",
            "GetAlias",
            "DeleteAlias",
            "DeleteFunction",
            "TagResource",
            "PutFunctionConcurrency",
            "DeleteFunctionConcurrency",
            "PutFunctionEventInvokeConfig",
            "DeleteFunctionEventInvokeConfig",
        ]
    }
    lambda_allows = [s for s in _allows(deployer) if any(a.startswith("lambda:") for a in _actions(s))]
    allowed = set().union(*(_actions(s) for s in lambda_allows))
    assert allowed == expected | {"lambda:CreateFunction"}  # no InvokeFunction: the deployer never runs user code
    for statement in lambda_allows:
        assert set(_resources(statement)) <= set(_function_arns(env_name)), statement
    (control,) = [s for s in lambda_allows if "lambda:UpdateFunctionCode" in _actions(s)]
    assert _actions(control) == expected and _resources(control) == _function_arns(env_name)
    assert "Condition" not in control


def test_deployer_sets_destinations_and_deletes_old_versions(deployer: list[dict[str, Any]], env_name: str) -> None:
    """PutFunctionEventInvokeConfig (the results queue as destination) on the function and its
    `live` alias; DeleteFunction with a Qualifier (versions beyond QUOTA_VERSIONS_KEPT) is
    authorized on the qualified ARN `ufn-{env}-*:*`."""
    qualified = _function_arns(env_name)[1]
    for action in ("lambda:PutFunctionEventInvokeConfig", "lambda:DeleteFunction", "lambda:ListVersionsByFunction"):
        (statement,) = _granting(deployer, action)
        assert qualified in _resources(statement) and "Condition" not in statement, action
    # The destination needs nothing of the deployer on the queue: Lambda delivers with the user role.
    assert not any(a.startswith(("sqs:SendMessage", "secretsmanager:")) for a in statement_actions(deployer))


def test_deployer_creates_only_tagged_user_functions(deployer: list[dict[str, Any]], env_name: str) -> None:
    (create,) = _granting(deployer, "lambda:CreateFunction")
    assert _actions(create) == {"lambda:CreateFunction"}
    assert _resources(create) == _function_arns(env_name)[:1]
    assert create["Condition"] == {"StringEquals": {"aws:RequestTag/managed-by": "platform-functions"}}


def test_deployer_denies_any_vpc_configuration(deployer: list[dict[str, Any]]) -> None:
    denied_keys = set()
    for statement in _denies(deployer):
        condition = statement.get("Condition", {})
        if set(condition) == {"Null"} and condition["Null"].get("lambda:Layer") is None:
            assert _actions(statement) == CONFIG_ACTIONS and statement["Resource"] == "*"
            assert list(condition["Null"].values()) == ["false"]  # present: denied (one key per statement)
            denied_keys |= set(condition["Null"])
    assert denied_keys == {"lambda:VpcIds", "lambda:SubnetIds", "lambda:SecurityGroupIds"}


def test_deployer_denies_resource_policies_urls_and_event_sources(deployer: list[dict[str, Any]]) -> None:
    unconditional = [s for s in _denies(deployer) if "Condition" not in s]
    assert all(s["Resource"] == "*" for s in unconditional)
    denied = statement_actions(unconditional)
    assert denied == {
        "lambda:AddPermission",
        "lambda:CreateFunctionUrlConfig",
        "lambda:UpdateFunctionUrlConfig",
        "lambda:CreateEventSourceMapping",
        "lambda:UpdateEventSourceMapping",
    }
    assert not denied & statement_actions(_allows(deployer))


def test_deployer_denies_layers_by_default(deployer: list[dict[str, Any]]) -> None:
    (layers,) = [s for s in _denies(deployer) if "lambda:Layer" in str(s.get("Condition"))]
    assert _actions(layers) == CONFIG_ACTIONS and layers["Resource"] == "*"
    assert layers["Condition"] == {"Null": {"lambda:Layer": "false"}}  # any layer at all
    assert "lambda:GetLayerVersion" not in statement_actions(deployer)


def test_deployer_creates_user_log_groups(deployer: list[dict[str, Any]], env_name: str) -> None:
    logs = [s for s in _allows(deployer) if _actions(s) & {"logs:CreateLogGroup"}]
    assert len(logs) == 1
    assert _actions(logs[0]) == {"logs:CreateLogGroup", "logs:PutRetentionPolicy", "logs:TagResource"}
    assert _resources(logs[0]) == [_user_log_group_arn(env_name)]
    assert not any("logs:DeleteLogGroup" in _actions(s) for s in deployer)


def test_deployer_s3_ssm_and_dynamodb(template: Template, deployer: list[dict[str, Any]], env_name: str) -> None:
    bucket, table = f"<{_bucket(template)}.Arn>", f"<{_table(template)}.Arn>"
    s3 = {frozenset(_actions(s)): s for s in _allows(deployer) if any(a.startswith("s3:") for a in _actions(s))}
    assert set(s3) == {
        frozenset({"s3:GetObject", "s3:DeleteObject"}),
        frozenset({"s3:GetObject", "s3:PutObject", "s3:DeleteObject"}),
        frozenset({"s3:ListBucket"}),
    }
    assert _resources(s3[frozenset({"s3:GetObject", "s3:DeleteObject"})]) == [f"{bucket}/uploads/*"]
    assert _resources(s3[frozenset({"s3:GetObject", "s3:PutObject", "s3:DeleteObject"})]) == [f"{bucket}/code/*"]
    listing = s3[frozenset({"s3:ListBucket"})]
    assert _resources(listing) == [bucket] and listing["Condition"] == {"StringLike": {"s3:prefix": ["code/*"]}}

    (ssm,) = [s for s in _allows(deployer) if any(a.startswith("ssm:") for a in _actions(s))]
    assert _actions(ssm) == {"ssm:GetParameter", "ssm:GetParameters", "ssm:DeleteParameter", "ssm:DeleteParameters"}
    assert _resources(ssm) == [_secrets_arn(env_name)]

    dynamo = [s for s in _allows(deployer) if any(a.startswith("dynamodb:") for a in _actions(s))]
    assert statement_actions(dynamo) == {
        "dynamodb:GetItem",
        "dynamodb:PutItem",
        "dynamodb:UpdateItem",
        "dynamodb:DeleteItem",
        "dynamodb:BatchWriteItem",  # a deleted function's versions
        "dynamodb:Query",
    }
    assert {r for s in dynamo for r in _resources(s)} == {table, f"{table}/index/{names.GSI1}"}
    (query,) = _granting(deployer, "dynamodb:Query")
    assert f"{table}/index/{names.GSI1}" in _resources(query)


def test_deployer_reads_only_its_own_queue(template: Template, deployer: list[dict[str, Any]], env_name: str) -> None:
    queue = _logical_id(template, "AWS::SQS::Queue", {"QueueName": f"functions-deploy-{env_name}.fifo"})
    sqs = [s for s in _allows(deployer) if any(a.startswith("sqs:") for a in _actions(s))]
    assert sqs and all(_resources(s) == [f"<{queue}.Arn>"] for s in sqs)
    assert "sqs:SendMessage" not in statement_actions(sqs)


def test_no_wildcard_actions_and_no_star_allows_anywhere(template: Template, env_name: str) -> None:
    for short in PLATFORM_FUNCTIONS:
        statements = policy_statements(template, names.platform_function_name(short, env_name))
        assert not any("*" in a for a in statement_actions(statements)), short
        for statement in _allows(statements):
            if "*" in _resources(statement):
                assert _actions(statement) == {"xray:PutTraceSegments", "xray:PutTelemetryRecords"}, short
    for _, statement in _every_statement(template):
        assert not any("*" in a for a in _actions(statement)), statement


def test_user_functions_are_invoked_only_by_the_api_and_batch(template: Template, env_name: str) -> None:
    invokers = set()
    for holder, statement in _every_statement(template):
        if statement["Effect"] == "Allow" and any(a.startswith("lambda:Invoke") for a in _actions(statement)):
            assert _actions(statement) == {"lambda:InvokeFunction"}, statement
            assert _resources(statement) == _function_arns(env_name) and "Condition" not in statement
            invokers.add(holder)
    assert invokers == {_role_of(template, short, env_name) for short in (names.API, names.BATCH)}


def test_callback_key_is_read_only_by_the_api_and_recorder(template: Template, env_name: str) -> None:
    readers = set()
    for holder, statement in _every_statement(template):
        if any(a.startswith("secretsmanager:") for a in _actions(statement)):
            assert statement["Effect"] == "Allow" and _actions(statement) == {"secretsmanager:GetSecretValue"}
            assert _resources(statement) == [f"<{_secret(template)}>"]
            readers.add(holder)
    assert readers == {_role_of(template, short, env_name) for short in (names.API, names.RECORDER)}


def test_allowed_layers_are_the_only_layers(tmp_path: Path) -> None:
    layer = "arn:aws:lambda:eu-west-1:123456789012:layer:numpy:*"
    base = get_config("dev")
    config = dataclasses.replace(base, functions=dataclasses.replace(base.functions, allowed_layers=(layer,)))
    app = cdk.App(context=SKIP_BUNDLING, outdir=str(tmp_path))
    stack = FunctionsStack(
        app, "Functions-dev", config=config, env=cdk.Environment(account="123456789012", region="eu-west-1")
    )
    Validations.of(app).add_plugins(AwsSolutionsChecks(app))
    app.synth()  # cdk-nag clean with a layer wildcard too
    template = Template.from_stack(stack)
    statements = policy_statements(template, "functions-deployer-dev")
    (layers,) = [s for s in _denies(statements) if "lambda:Layer" in str(s.get("Condition"))]
    assert _actions(layers) == CONFIG_ACTIONS and layers["Resource"] == "*"
    assert layers["Condition"] == {"ForAnyValue:StringNotLike": {"lambda:Layer": [layer]}}
    (read,) = _granting(statements, "lambda:GetLayerVersion")
    assert _resources(read) == [layer]
    variables = find_function(template, "functions-deployer-dev")[1]["Properties"]["Environment"]["Variables"]
    assert variables[names.ENV_ALLOWED_LAYERS] == layer


# --- API and authorizer IAM --------------------------------------------------------------------------
def test_api_permissions(template: Template, env_name: str) -> None:
    statements = _statements(template, names.API, env_name)
    bucket, table = f"<{_bucket(template)}.Arn>", f"<{_table(template)}.Arn>"
    idempotency = f"<{_idempotency_table(template)}.Arn>"
    deploy = _queue(template, f"functions-deploy-{env_name}.fifo")
    batch = _queue(template, f"functions-batch-{env_name}")
    assert statement_actions(statements) - BASELINE == {
        "dynamodb:GetItem",
        "dynamodb:PutItem",
        "dynamodb:UpdateItem",
        "dynamodb:DeleteItem",
        "dynamodb:Query",
        "dynamodb:ConditionCheckItem",
        "s3:PutObject",
        "s3:GetObject",
        "sqs:SendMessage",
        "ssm:PutParameter",
        "ssm:DeleteParameter",
        "lambda:InvokeFunction",
        "secretsmanager:GetSecretValue",
        "logs:FilterLogEvents",
    }
    # TransactWriteItems (a change and its audit row) is authorized per item: Put/Update/Delete/ConditionCheck.
    for action in ("dynamodb:PutItem", "dynamodb:UpdateItem", "dynamodb:DeleteItem", "dynamodb:GetItem"):
        assert sorted(_resources(s)[0] for s in _granting(statements, action)) == sorted([table, idempotency]), action
    assert [_resources(s) for s in _granting(statements, "dynamodb:ConditionCheckItem")] == [[table]]
    assert [_resources(s) for s in _granting(statements, "dynamodb:Query")] == [[table, f"{table}/index/{names.GSI1}"]]
    (powertools,) = [s for s in _allows(statements) if _resources(s) == [idempotency]]
    assert _actions(powertools) == {
        "dynamodb:GetItem",
        "dynamodb:PutItem",
        "dynamodb:UpdateItem",
        "dynamodb:DeleteItem",
    }
    # results/: large results of synchronous runs (the recorder writes those of async ones).
    for action in ("s3:PutObject", "s3:GetObject"):
        assert [_resources(s) for s in _granting(statements, action)] == [
            [f"{bucket}/uploads/*", f"{bucket}/code/*", f"{bucket}/inputs/*"],
            [f"{bucket}/results/*"],
        ], action
    assert [_resources(s) for s in _granting(statements, "sqs:SendMessage")] == [[f"<{deploy}.Arn>", f"<{batch}.Arn>"]]
    for action in ("ssm:PutParameter", "ssm:DeleteParameter"):
        assert [_resources(s) for s in _granting(statements, action)] == [[_secrets_arn(env_name)]]
    # Per-invocation logs: the user functions' log groups of this environment, read only.
    assert {a for a in statement_actions(statements) if a.startswith("logs:")} - BASELINE == {"logs:FilterLogEvents"}
    (filter_logs,) = _granting(statements, "logs:FilterLogEvents")
    assert _actions(filter_logs) == {"logs:FilterLogEvents"}
    assert _resources(filter_logs) == [f"{_user_log_group_arn(env_name)}:*"]


def test_recorder_permissions(template: Template, env_name: str) -> None:
    statements = _statements(template, names.RECORDER, env_name)
    bucket, table, results = (
        f"<{_bucket(template)}.Arn>",
        f"<{_table(template)}.Arn>",
        _results_queue_arn(template, env_name),
    )
    assert statement_actions(statements) - BASELINE == CONSUME | {
        "sqs:SendMessage",  # its own delayed callback retries
        "dynamodb:GetItem",
        "dynamodb:PutItem",
        "dynamodb:UpdateItem",
        "s3:GetObject",
        "s3:PutObject",
        "secretsmanager:GetSecretValue",
        "logs:FilterLogEvents",  # the invocation's REPORT line: its billed duration
    }
    (filter_logs,) = _granting(statements, "logs:FilterLogEvents")
    assert _actions(filter_logs) == {"logs:FilterLogEvents"}
    assert _resources(filter_logs) == [f"{_user_log_group_arn(env_name)}:*"]
    for statement in _allows(statements):
        actions = _actions(statement)
        if actions & (CONSUME | {"sqs:SendMessage"}):
            assert _resources(statement) == [results], statement
        elif any(a.startswith("dynamodb:") for a in actions):
            assert _resources(statement) == [table]
        elif any(a.startswith("s3:") for a in actions):
            assert _resources(statement) == [f"{bucket}/results/*"]


def test_batch_permissions(template: Template, env_name: str) -> None:
    statements = _statements(template, names.BATCH, env_name)
    bucket, table = f"<{_bucket(template)}.Arn>", f"<{_table(template)}.Arn>"
    queue = f"<{_queue(template, f'functions-batch-{env_name}')}.Arn>"
    assert statement_actions(statements) - BASELINE == CONSUME | {
        "lambda:InvokeFunction",
        "dynamodb:GetItem",
        "dynamodb:PutItem",
        "dynamodb:UpdateItem",
        "s3:GetObject",
        "s3:PutObject",
    }
    (invoke,) = _granting(statements, "lambda:InvokeFunction")
    assert _actions(invoke) == {"lambda:InvokeFunction"} and _resources(invoke) == _function_arns(env_name)
    for statement in _allows(statements):
        actions = _actions(statement)
        if actions & CONSUME:
            assert _resources(statement) == [queue]
        elif any(a.startswith("dynamodb:") for a in actions):
            assert _resources(statement) == [table]
        elif any(a.startswith("s3:") for a in actions):
            assert _resources(statement) == [f"{bucket}/inputs/*"]


def test_api_invokes_only_user_functions(template: Template, env_name: str) -> None:
    statements = policy_statements(template, names.platform_function_name(names.API, env_name))
    lambda_actions = {a for a in statement_actions(statements) if a.startswith("lambda:")}
    assert lambda_actions == {"lambda:InvokeFunction"}  # data plane only
    (invoke,) = _granting(statements, "lambda:InvokeFunction")
    assert _resources(invoke) == _function_arns(env_name) and "Condition" not in invoke


def test_authorizer_only_reads_keys(template: Template, env_name: str) -> None:
    statements = policy_statements(template, names.platform_function_name(names.AUTHORIZER, env_name))
    assert statement_actions(statements) - BASELINE == {"dynamodb:GetItem"}
    (get,) = _granting(statements, "dynamodb:GetItem")
    assert _resources(get) == [f"<{_table(template)}.Arn>"]


# --- outputs and the security gates ------------------------------------------------------------------
def test_outputs(template: Template) -> None:
    outputs = template.to_json()["Outputs"]
    api = _logical_id(template, "AWS::ApiGatewayV2::Api")
    assert _flat(outputs[names.OUTPUT_API_URL]["Value"]) == f"<{api}.ApiEndpoint>"
    assert _flat(outputs[names.OUTPUT_TABLE]["Value"]) == f"<{_table(template)}>"
    assert _flat(outputs[names.OUTPUT_CODE_BUCKET]["Value"]) == f"<{_bucket(template)}>"


def test_stack_is_part_of_the_platform_and_its_template_is_linted(env_name: str) -> None:
    synthesized = synthesize(env_name)  # cdk-nag ran over it: an unacknowledged finding raises
    assert f"{names.STACK_BASE}-{env_name}" in synthesized.stacks
    files = {p.name for p in synthesized.template_files()}  # what test_security's cfn-lint runs over
    assert f"{names.STACK_BASE}-{env_name}.template.json" in files
