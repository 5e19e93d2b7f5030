"""CollectionsDataStack-{env} and CollectionsComputeStack-{env}: network, database, pipeline wiring, IAM."""

from __future__ import annotations

import dataclasses
import json
from typing import Any

import pytest
from aws_cdk.assertions import Match, Template

from infrastructure.config import get_config
from infrastructure.stacks.collections_data import connection_budget, max_connections
from lambdas.migrations.roles import FUNCTION_ROLES, ROLES
from tests.infrastructure.synth import synthesize
from tests.infrastructure.template_queries import find_function, policy_statements


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


def _subnets(template: Template, group: str) -> set[str]:
    return {
        k
        for k, s in template.find_resources("AWS::EC2::Subnet").items()
        if {"Key": "aws-cdk:subnet-name", "Value": group} in s["Properties"]["Tags"]
    }


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
    # Master credentials: the secret RDS/CDK generates; one more secret per function role; all rotated.
    data.resource_count_is("AWS::SecretsManager::Secret", 1 + len(FUNCTION_ROLES))
    data.resource_count_is("AWS::SecretsManager::RotationSchedule", 1 + len(FUNCTION_ROLES))


def test_master_secret_is_retained_in_prod_like_the_database(data: Template, env_name: str) -> None:
    [master] = data.find_resources(
        "AWS::SecretsManager::Secret",
        {
            "Properties": {
                "GenerateSecretString": Match.object_like(
                    {"SecretStringTemplate": Match.string_like_regexp("collections_admin")}
                )
            }
        },
    ).values()
    policy = "Retain" if env_name == "prod" else "Delete"
    assert (master["DeletionPolicy"], master["UpdateReplacePolicy"]) == (policy, policy)


def test_one_generated_secret_per_function_role(data: Template, env_name: str) -> None:
    for function, role in FUNCTION_ROLES.items():
        [secret] = data.find_resources(
            "AWS::SecretsManager::Secret",
            {"Properties": {"Description": f"PostgreSQL role {role} of collections-{env_name}-{function}"}},
        ).values()
        generated = secret["Properties"]["GenerateSecretString"]
        parts = generated["SecretStringTemplate"]["Fn::Join"][1]
        template = json.loads("".join(p if isinstance(p, str) else "HOST" for p in parts))
        # What the single-user rotation needs to log in as the role: the instance, not the proxy.
        assert template == {
            "username": role,
            "engine": "postgres",
            "host": "HOST",
            "port": 5432,
            "dbname": "collections",
        }
        assert [p for p in parts if not isinstance(p, str)] == [
            {"Fn::GetAtt": ["DatabaseB269D8BB", "Endpoint.Address"]}
        ]
        assert generated["GenerateStringKey"] == "password" and generated["PasswordLength"] >= 32
        assert secret["DeletionPolicy"] == ("Retain" if env_name == "prod" else "Delete")


def _security_group(template: Template, description_start: str) -> str:
    [logical_id] = [
        k
        for k, v in template.find_resources("AWS::EC2::SecurityGroup").items()
        if v["Properties"]["GroupDescription"].startswith(description_start)
    ]
    return logical_id


def _group_id(logical_id: str) -> dict[str, Any]:
    return {"Fn::GetAtt": [logical_id, "GroupId"]}


def test_database_reachable_only_from_the_functions_and_the_proxy(data: Template, env_name: str) -> None:
    db_sg = _security_group(data, "Collections PostgreSQL")
    sources = {
        _security_group(data, "Collections functions:"),
        _security_group(data, "Collections functions without internet"),
    }
    if env_name == "prod":
        sources.add(_security_group(data, "Collections RDS Proxy"))
    ingress = [
        r["Properties"]
        for r in data.find_resources("AWS::EC2::SecurityGroupIngress").values()
        if r["Properties"]["GroupId"] == _group_id(db_sg)
    ]
    # PostgreSQL's port (literally, or as the instance's Endpoint.Port) from those groups, no CIDR.
    assert {p["SourceSecurityGroupId"]["Fn::GetAtt"][0] for p in ingress} == sources
    assert all(p["IpProtocol"] == "tcp" and "CidrIp" not in p for p in ingress)
    assert all(p["FromPort"] in (5432, {"Fn::GetAtt": ["DatabaseB269D8BB", "Endpoint.Port"]}) for p in ingress)
    assert "SecurityGroupIngress" not in data.find_resources("AWS::EC2::SecurityGroup")[db_sg]["Properties"]


def test_subnets_and_nat_per_environment(data: Template, env_name: str) -> None:
    data.resource_count_is("AWS::EC2::NatGateway", 2 if env_name == "prod" else 1)
    subnets = data.find_resources("AWS::EC2::Subnet")
    kinds = {
        tag["Value"] for s in subnets.values() for tag in s["Properties"]["Tags"] if tag["Key"] == "aws-cdk:subnet-type"
    }
    assert kinds == {"Public", "Private", "Isolated"}
    [db_subnets] = data.find_resources("AWS::RDS::DBSubnetGroup").values()
    assert {r["Ref"] for r in db_subnets["Properties"]["SubnetIds"]} == _subnets(data, "Database")
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
    settings = get_config(env_name).collections
    for name, expected in (
        ("AnalyzerLambda", settings.analyzer_reserved_concurrency),
        ("EmbedderLambda", settings.embedder_reserved_concurrency),
        ("ImageProcessorLambda", settings.processor_reserved_concurrency),
        ("SearchLambda", settings.search_reserved_concurrency),
        ("DeferredAnalysesLambda", settings.deferred_reserved_concurrency),
    ):
        props = find_function(compute, f"collections-{env_name}-{name}")[1]["Properties"]
        assert props["ReservedConcurrentExecutions"] == expected
        assert props["Environment"]["Variables"]["ALLOW_LOCAL_PROVIDERS"] == ("false" if env_name == "prod" else "true")
    assert (settings.processor_reserved_concurrency, settings.search_reserved_concurrency) == (
        (20, 20) if env_name == "prod" else (4, 4)
    )


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


def test_every_function_reads_only_its_own_role_secret(compute: Template, data: Template, env_name: str) -> None:
    outputs = data.to_json()["Outputs"]

    def exported(value: Any) -> Any:
        """The data stack's value behind a Fn::ImportValue."""
        name = value["Fn::ImportValue"].split(":", 1)[1]
        return outputs[name]["Value"]

    master = next(iter(data.find_resources("AWS::SecretsManager::SecretTargetAttachment")))
    role_secrets = {}
    for function, role in FUNCTION_ROLES.items():
        props = find_function(compute, f"collections-{env_name}-{function}")[1]["Properties"]
        secrets = _resources_for(
            policy_statements(compute, f"collections-{env_name}-{function}"), "secretsmanager:GetSecretValue"
        )
        [own] = [exported(s) for s in secrets]
        assert own["Ref"].startswith(f"{function}DatabaseSecret")  # its role's, not the master's
        assert exported(props["Environment"]["Variables"]["DB_SECRET_ARN"]) == own
        role_secrets[role] = own
    # The migration function alone reads the master secret, and every role's to set its password.
    migrate = find_function(compute, f"collections-{env_name}-MigrateLambda")[1]["Properties"]
    read = _resources_for(
        policy_statements(compute, f"collections-{env_name}-MigrateLambda"), "secretsmanager:GetSecretValue"
    )
    assert sorted(map(json.dumps, map(exported, read))) == sorted(
        json.dumps(v) for v in [{"Ref": master}, *role_secrets.values()]
    )
    assert exported(migrate["Environment"]["Variables"]["DB_SECRET_ARN"]) == {"Ref": master}
    parts = migrate["Environment"]["Variables"]["DB_ROLE_SECRETS"]["Fn::Join"][1]
    role_secret_ids = json.loads("".join(p if isinstance(p, str) else exported(p)["Ref"] for p in parts))
    assert role_secret_ids == {role: secret["Ref"] for role, secret in role_secrets.items()}
    assert set(role_secret_ids) == ROLES
    for name in (*FUNCTION_ROLES, "MigrateLambda"):
        statements = policy_statements(compute, f"collections-{env_name}-{name}")
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


# --- connections: budget and proxy --------------------------------------------------------------


def test_connection_budget_fits_the_instance(env_name: str) -> None:
    """Sum of reserved concurrencies x 1 connection per container (or, behind the proxy, the proxy's
    share) + the migration and six secret rotations (7) + superuser slots (5) + headroom (10) <= max_connections,
    counted as 3/4 of LEAST(memory / 9531392, 5000) for the configured instance class."""
    settings = get_config(env_name).collections
    budget = connection_budget(settings)
    if env_name == "dev":  # t4g.micro, 1 GiB: 84; functions 4 + 2 + 1 + 2 + 4 = 13, direct
        assert (budget.max_connections, budget.function_connections, budget.proxy_connections) == (84, 13, None)
        assert budget.database_connections == 13 + 7 + 5 + 10 == 35
    else:  # t4g.small, 2 GiB: 168; functions 20 + 5 + 1 + 5 + 20 = 51 clients of a proxy capped at 50%
        assert (budget.max_connections, budget.function_connections, budget.proxy_connections) == (168, 51, 84)
        assert budget.database_connections == 84 + 7 + 5 + 10 == 106
    assert budget.database_connections <= budget.max_connections
    budget.check()
    # One more function container per connection than the instance can take fails the synth.
    spare = budget.max_connections - budget.database_connections
    if settings.db_proxy:
        too_many = dataclasses.replace(settings, db_proxy_max_connections_percent=100)
    else:
        too_many = dataclasses.replace(
            settings, search_reserved_concurrency=settings.search_reserved_concurrency + spare + 1
        )
    with pytest.raises(ValueError, match="more than max_connections"):
        connection_budget(too_many).check()


def test_max_connections_of_unknown_classes_is_an_error() -> None:
    assert max_connections("t4g.medium") == 337
    with pytest.raises(ValueError, match=r"no connection budget for db instance class 'r7g\.large'"):
        max_connections("r7g.large")


def test_rds_proxy_in_prod_holds_every_role_secret(data: Template, compute: Template, env_name: str) -> None:
    proxies = data.find_resources("AWS::RDS::DBProxy")
    if env_name == "dev":
        assert proxies == {}
    else:
        [(proxy_id, proxy)] = proxies.items()
        props = proxy["Properties"]
        assert props["RequireTLS"] is True and props["EngineFamily"] == "POSTGRESQL"
        # Exactly the function roles' secrets (never the master's), one each.
        secret_ids = sorted(a["SecretArn"]["Ref"] for a in props["Auth"])
        assert sorted(i[: -len("DatabaseSecret") - 8] for i in secret_ids) == sorted(FUNCTION_ROLES)
        assert len(props["Auth"]) == len(FUNCTION_ROLES)
        assert all(
            (a["AuthScheme"], a["IAMAuth"], a["ClientPasswordAuthType"])
            == ("SECRETS", "DISABLED", "POSTGRES_SCRAM_SHA_256")
            for a in props["Auth"]
        )
        data.has_resource_properties(
            "AWS::RDS::DBProxyTargetGroup",
            {"DBProxyName": {"Ref": proxy_id}, "ConnectionPoolConfigurationInfo": {"MaxConnectionsPercent": 50}},
        )
    outputs = data.to_json()["Outputs"]
    for function in FUNCTION_ROLES:
        env = find_function(compute, f"collections-{env_name}-{function}")[1]["Properties"]["Environment"]["Variables"]
        host = outputs[env["DB_HOST"]["Fn::ImportValue"].split(":", 1)[1]]["Value"]["Fn::GetAtt"]
        if env_name == "prod":
            assert host[1] == "Endpoint" and host[0].startswith("Proxy") and env["DB_VIA_PROXY"] == "true"
        else:
            assert host[1] == "Endpoint.Address" and host[0].startswith("Database") and env["DB_VIA_PROXY"] == "false"
    migrate = find_function(compute, f"collections-{env_name}-MigrateLambda")[1]["Properties"]
    assert "DB_HOST" not in migrate["Environment"]["Variables"]  # the master secret's host: the instance


# --- egress: no internet for functions that call no external API ---------------------------------

NO_INTERNET = ("ImageProcessorLambda", "DeferredAnalysesLambda", "MigrateLambda")
INTERNET = ("AnalyzerLambda", "EmbedderLambda", "SearchLambda")  # Anthropic/OpenAI, Voyage


def _vpc_config(compute: Template, data: Template, env_name: str, function: str) -> tuple[set[str], set[str]]:
    """(subnet logical ids, security group logical ids) in the data stack, behind the imports."""
    outputs = data.to_json()["Outputs"]
    config = find_function(compute, f"collections-{env_name}-{function}")[1]["Properties"]["VpcConfig"]

    def target(value: Any) -> str:
        exported = outputs[value["Fn::ImportValue"].split(":", 1)[1]]["Value"]
        return str(exported["Ref"] if "Ref" in exported else exported["Fn::GetAtt"][0])

    return {target(v) for v in config["SubnetIds"]}, {target(v) for v in config["SecurityGroupIds"]}


def _default_routes(data: Template, subnets: set[str]) -> list[dict[str, Any]]:
    tables = {
        a["Properties"]["RouteTableId"]["Ref"]
        for a in data.find_resources("AWS::EC2::SubnetRouteTableAssociation").values()
        if a["Properties"]["SubnetId"]["Ref"] in subnets
    }
    return [
        r["Properties"]
        for r in data.find_resources("AWS::EC2::Route").values()
        if r["Properties"]["RouteTableId"]["Ref"] in tables
    ]


def test_functions_without_external_calls_have_no_route_to_the_internet(
    compute: Template, data: Template, env_name: str
) -> None:
    isolated_sg = _security_group(data, "Collections functions without internet")
    for function in NO_INTERNET:
        subnets, groups = _vpc_config(compute, data, env_name, function)
        assert subnets == _subnets(data, "IsolatedFunctions") and groups == {isolated_sg}, function
        # No NAT gateway, no internet gateway: nothing but the VPC and the S3 gateway endpoint.
        assert _default_routes(data, subnets) == [], function
    egress_sg = _security_group(data, "Collections functions:")
    for function in INTERNET:
        subnets, groups = _vpc_config(compute, data, env_name, function)
        assert subnets == _subnets(data, "Functions") and groups == {egress_sg}, function
        assert all("NatGatewayId" in r for r in _default_routes(data, subnets))
    # The S3 gateway endpoint serves the isolated subnets' route tables.
    [s3] = [
        v["Properties"]
        for v in data.find_resources("AWS::EC2::VPCEndpoint").values()
        if v["Properties"].get("VpcEndpointType", "Gateway") == "Gateway"
    ]
    tables = {
        a["Properties"]["RouteTableId"]["Ref"]
        for a in data.find_resources("AWS::EC2::SubnetRouteTableAssociation").values()
        if a["Properties"]["SubnetId"]["Ref"] in _subnets(data, "IsolatedFunctions")
    }
    assert tables <= {t["Ref"] for t in s3["RouteTableIds"]}


def test_isolated_security_group_reaches_only_the_database_and_the_endpoints(data: Template, env_name: str) -> None:
    isolated_sg = _security_group(data, "Collections functions without internet")
    group = data.find_resources("AWS::EC2::SecurityGroup")[isolated_sg]["Properties"]
    # Inline: 443 only (the S3 gateway's prefix list cannot be named in a template).
    assert [(e["IpProtocol"], e["FromPort"], e["ToPort"]) for e in group["SecurityGroupEgress"]] == [("tcp", 443, 443)]
    rules = {
        (e["Properties"]["DestinationSecurityGroupId"]["Fn::GetAtt"][0], e["Properties"]["FromPort"])
        for e in data.find_resources("AWS::EC2::SecurityGroupEgress").values()
        if e["Properties"]["GroupId"] == _group_id(isolated_sg)
    }
    expected = {
        (_security_group(data, "Collections PostgreSQL"), 5432),
        (_security_group(data, "Collections VPC endpoints"), 443),
    }
    if env_name == "prod":
        expected.add((_security_group(data, "Collections RDS Proxy"), 5432))
    assert rules == expected


def test_interface_endpoints_for_what_the_isolated_functions_call(data: Template) -> None:
    endpoints = [
        v["Properties"]
        for v in data.find_resources("AWS::EC2::VPCEndpoint").values()
        if v["Properties"].get("VpcEndpointType") == "Interface"
    ]
    services = {json.dumps(e["ServiceName"]).split(".")[-1].strip('"]}') for e in endpoints}
    assert services == {"secretsmanager", "events", "sqs"}
    endpoints_sg = _security_group(data, "Collections VPC endpoints")
    for e in endpoints:
        assert e["PrivateDnsEnabled"] is True
        assert {s["Ref"] for s in e["SubnetIds"]} == _subnets(data, "IsolatedFunctions")
        assert e["SecurityGroupIds"] == [_group_id(endpoints_sg)]
