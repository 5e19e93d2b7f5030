"""Tunnel-{env}: routes, table keys, GSIs and TTLs, the body bucket, each function's IAM, domain."""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any

import aws_cdk as cdk
import pytest
from aws_cdk import Validations
from aws_cdk.assertions import Match, Template
from cdk_nag import AwsSolutionsChecks

from infrastructure.config import TunnelDomain, get_config
from infrastructure.stacks.tunnel import TunnelStack
from tests.infrastructure.synth import SKIP_BUNDLING, synthesize
from tests.infrastructure.template_queries import find_function, policy_statements, statement_actions


@pytest.fixture(scope="module")
def template(env_name: str) -> Template:
    return synthesize(env_name).template(f"Tunnel-{env_name}")


def _logical_id(template: Template, type_: str, props: dict[str, Any]) -> str:
    found = template.find_resources(type_, {"Properties": props})
    assert len(found) == 1
    return next(iter(found))


def _table_id(template: Template, key: str) -> str:
    return _logical_id(
        template,
        "AWS::DynamoDB::GlobalTable",
        {"KeySchema": Match.array_with([{"AttributeName": key, "KeyType": "HASH"}])},
    )


def test_http_api_sends_everything_to_the_forwarder(template: Template) -> None:
    template.has_resource_properties("AWS::ApiGatewayV2::Api", {"ProtocolType": "HTTP"})
    template.has_resource_properties("AWS::ApiGatewayV2::Route", {"RouteKey": "$default"})
    template.has_resource_properties(
        "AWS::ApiGatewayV2::Integration", {"IntegrationType": "AWS_PROXY", "PayloadFormatVersion": "2.0"}
    )
    apis = template.find_resources("AWS::ApiGatewayV2::Api", {"Properties": {"ProtocolType": "HTTP"}})
    assert "CorsConfiguration" not in next(iter(apis.values()))["Properties"]  # the app answers its own CORS
    template.has_resource_properties("AWS::ApiGatewayV2::Stage", {"StageName": "$default", "AutoDeploy": True})


def test_websocket_routes_and_stage(template: Template, env_name: str) -> None:
    template.has_resource_properties("AWS::ApiGatewayV2::Api", {"ProtocolType": "WEBSOCKET"})
    for route in ("$connect", "$disconnect", "$default"):
        template.has_resource_properties("AWS::ApiGatewayV2::Route", {"RouteKey": route})
    template.has_resource_properties("AWS::ApiGatewayV2::Stage", {"StageName": env_name, "AutoDeploy": True})


def test_connections_table_key_gsi_and_ttl(template: Template) -> None:
    template.has_resource_properties(
        "AWS::DynamoDB::GlobalTable",
        {
            "KeySchema": [{"AttributeName": "connectionId", "KeyType": "HASH"}],
            "TimeToLiveSpecification": {"AttributeName": "ttl", "Enabled": True},
            "GlobalSecondaryIndexes": [
                {
                    "IndexName": "subdomain-index",
                    "KeySchema": [
                        {"AttributeName": "publicSubdomain", "KeyType": "HASH"},
                        {"AttributeName": "createdAt", "KeyType": "RANGE"},
                    ],
                    "Projection": {"ProjectionType": "KEYS_ONLY"},
                },
                {  # revoking a token finds its open connections without a Scan
                    "IndexName": "token-index",
                    "KeySchema": [{"AttributeName": "tokenId", "KeyType": "HASH"}],
                    "Projection": {"ProjectionType": "KEYS_ONLY"},
                },
            ],
        },
    )


def test_pending_table_key_gsi_and_ttl(template: Template) -> None:
    template.has_resource_properties(
        "AWS::DynamoDB::GlobalTable",
        {
            "KeySchema": [{"AttributeName": "requestId", "KeyType": "HASH"}],
            "TimeToLiveSpecification": {"AttributeName": "ttl", "Enabled": True},
            "GlobalSecondaryIndexes": [
                {
                    "IndexName": "connection-index",
                    "KeySchema": [{"AttributeName": "connectionId", "KeyType": "HASH"}],
                    "Projection": {"ProjectionType": "KEYS_ONLY"},
                }
            ],
        },
    )


def test_tokens_table_is_protected(template: Template, env_name: str) -> None:
    template.has_resource_properties(
        "AWS::DynamoDB::GlobalTable",
        {
            "KeySchema": [{"AttributeName": "pk", "KeyType": "HASH"}, {"AttributeName": "sk", "KeyType": "RANGE"}],
            "Replicas": [
                Match.object_like(
                    {
                        "PointInTimeRecoverySpecification": {"PointInTimeRecoveryEnabled": True},
                        "DeletionProtectionEnabled": env_name == "prod",
                    }
                )
            ],
        },
    )


def test_body_bucket_expires_after_a_day_and_is_private(template: Template) -> None:
    template.has_resource_properties(
        "AWS::S3::Bucket",
        {
            "LifecycleConfiguration": {"Rules": [Match.object_like({"ExpirationInDays": 1, "Status": "Enabled"})]},
            "PublicAccessBlockConfiguration": Match.object_like(
                {"BlockPublicAcls": True, "RestrictPublicBuckets": True}
            ),
        },
    )


def test_functions_and_environment(template: Template, env_name: str) -> None:
    for short in ("connect", "disconnect", "forward", "response"):
        fn = find_function(template, f"tunnel-{short}-{env_name}")[1]["Properties"]
        assert fn["Handler"] == f"lambdas.tunnel.{short}.handler"
        assert fn["Runtime"] == "python3.12" and fn["Architectures"] == ["arm64"]
    forward = find_function(template, f"tunnel-forward-{env_name}")[1]["Properties"]
    variables = forward["Environment"]["Variables"]
    assert {
        "CONNECTIONS_TABLE_NAME",
        "PENDING_REQUESTS_TABLE_NAME",
        "WS_API_ENDPOINT",
        "BODY_BUCKET_NAME",
    } <= set(variables)
    assert int(variables["REQUEST_TIMEOUT_MS"]) < 29_000 and forward["Timeout"] == 29
    connect = find_function(template, f"tunnel-connect-{env_name}")[1]["Properties"]["Environment"]["Variables"]
    assert {"CONNECTIONS_TABLE_NAME", "TOKENS_TABLE_NAME", "PUBLIC_HTTP_URL"} <= set(connect)
    assert "DOMAIN_NAME" not in connect  # no custom domain configured in dev/prod


def test_forwarder_concurrency_and_per_tunnel_cap_come_from_config(template: Template, env_name: str) -> None:
    settings = get_config(env_name).tunnel
    forward = find_function(template, f"tunnel-forward-{env_name}")[1]["Properties"]
    assert forward.get("ReservedConcurrentExecutions") == settings.forward_reserved_concurrency
    variables = forward["Environment"]["Variables"]
    assert variables["MAX_INFLIGHT_PER_TUNNEL"] == str(settings.max_inflight_per_tunnel)
    assert variables["BUSY_RETRY_AFTER_SECONDS"] == str(settings.busy_retry_after_seconds)
    if env_name == "prod":  # prod bounds what all tunnels together hold, and one tunnel's share of it
        assert settings.forward_reserved_concurrency is not None
        assert settings.max_inflight_per_tunnel < settings.forward_reserved_concurrency


def test_iam_is_least_privilege_per_function(template: Template, env_name: str) -> None:
    expected = {
        "connect": {
            "dynamodb:GetItem",
            "dynamodb:PutItem",
            "dynamodb:UpdateItem",
            "dynamodb:Query",
            "dynamodb:DeleteItem",
            "execute-api:ManageConnections",
        },
        "disconnect": {"dynamodb:DeleteItem", "dynamodb:Query", "dynamodb:UpdateItem"},
        "forward": {
            "dynamodb:Query",
            "dynamodb:DeleteItem",
            "dynamodb:PutItem",
            "dynamodb:GetItem",
            "dynamodb:UpdateItem",
            "s3:PutObject",
            "s3:GetObject",
            "s3:DeleteObject",
            "execute-api:ManageConnections",
        },
        "response": {"dynamodb:UpdateItem", "execute-api:ManageConnections"},
    }
    for short, actions in expected.items():
        statements = policy_statements(template, f"tunnel-{short}-{env_name}")
        own = statement_actions(statements) - {
            "logs:CreateLogStream",
            "logs:PutLogEvents",
            "xray:PutTraceSegments",
            "xray:PutTelemetryRecords",
        }
        assert own == actions, short
        assert not any(s["Resource"] == "*" for s in statements if "xray" not in str(s["Action"]))

    connections, pending = _table_id(template, "connectionId"), _table_id(template, "requestId")
    forward = policy_statements(template, f"tunnel-forward-{env_name}")
    query = next(s for s in forward if s["Action"] == "dynamodb:Query")
    assert query["Resource"] == {"Fn::Join": ["", [{"Fn::GetAtt": [connections, "Arn"]}, "/index/subdomain-index"]]}
    tokens = _logical_id(
        template,
        "AWS::DynamoDB::GlobalTable",
        {"KeySchema": Match.array_with([{"AttributeName": "pk", "KeyType": "HASH"}])},
    )
    # Routing reads who owns a name (one GetItem), nothing else of the tokens table.
    assert [s["Action"] for s in forward if s["Resource"] == {"Fn::GetAtt": [tokens, "Arn"]}] == ["dynamodb:GetItem"]
    disconnect = policy_statements(template, f"tunnel-disconnect-{env_name}")
    query = next(s for s in disconnect if s["Action"] == "dynamodb:Query")
    assert query["Resource"] == {"Fn::Join": ["", [{"Fn::GetAtt": [pending, "Arn"]}, "/index/connection-index"]]}
    s3 = next(s for s in forward if "s3:GetObject" in s["Action"])
    assert [r["Fn::Join"][1][-1] for r in s3["Resource"]] == ["/requests/*", "/responses/*"]
    # $connect may look up, post to and close connections of its own stage (one agent per name), no more.
    manage = [
        s
        for s in policy_statements(template, f"tunnel-connect-{env_name}")
        if s["Action"] == "execute-api:ManageConnections"
    ]
    verbs = sorted(
        str(r).split("/@connections")[0].rsplit("/", 1)[-1]
        for s in manage
        for r in (s["Resource"] if isinstance(s["Resource"], list) else [s["Resource"]])
    )
    assert verbs == ["DELETE", "GET", "POST"], verbs
    # Only the response handler touches connections besides connect/disconnect/forward, and only UpdateItem.
    response = policy_statements(template, f"tunnel-response-{env_name}")
    assert {"Fn::GetAtt": [connections, "Arn"]} in [s["Resource"] for s in response]


def test_outputs_for_the_agent_and_token_script(template: Template) -> None:
    outputs = template.to_json()["Outputs"]
    for name in ("WebSocketUrl", "HttpApiUrl", "PublicUrlPattern", "TokensTableName"):
        assert name in outputs


def test_custom_wildcard_domain(tmp_path: Path) -> None:
    domain = TunnelDomain(
        domain_name="tunnel.example.com",
        certificate_arn="arn:aws:acm:eu-west-1:123456789012:certificate/11111111-2222-3333-4444-555555555555",
        hosted_zone_id="Z0123456789ABCDEFGHIJ",
    )
    config = dataclasses.replace(get_config("dev"), tunnel_domain=domain)
    app = cdk.App(context=SKIP_BUNDLING, outdir=str(tmp_path))
    stack = TunnelStack(
        app, "Tunnel-dev", config=config, env=cdk.Environment(account="123456789012", region="eu-west-1")
    )
    Validations.of(app).add_plugins(AwsSolutionsChecks(app))
    app.synth()  # cdk-nag clean with the domain too
    template = Template.from_stack(stack)
    template.has_resource_properties("AWS::ApiGatewayV2::DomainName", {"DomainName": "*.tunnel.example.com"})
    template.resource_count_is("AWS::ApiGatewayV2::ApiMapping", 1)
    template.has_resource_properties(
        "AWS::Route53::RecordSet",
        {"Name": "*.tunnel.example.com.", "Type": "A", "HostedZoneId": "Z0123456789ABCDEFGHIJ"},
    )
    for short in ("connect", "forward"):
        variables = find_function(template, f"tunnel-{short}-dev")[1]["Properties"]["Environment"]["Variables"]
        assert variables["DOMAIN_NAME"] == "tunnel.example.com"
    assert template.to_json()["Outputs"]["PublicUrlPattern"]["Value"] == "https://{subdomain}.tunnel.example.com/"


_CERTIFICATE = "arn:aws:acm:eu-west-1:123456789012:certificate/11111111-2222-3333-4444-555555555555"


def _stack(tmp_path: Path, env_name: str, context: dict[str, Any]) -> TunnelStack:
    app = cdk.App(context={**SKIP_BUNDLING, **context}, outdir=str(tmp_path))
    config = get_config(env_name)
    return TunnelStack(
        app, f"Tunnel-{env_name}", config=config, env=cdk.Environment(account="123456789012", region="eu-west-1")
    )


def test_prod_without_a_tunnel_domain_is_a_warning_naming_the_setting(tmp_path: Path) -> None:
    # A warning is what `cdk deploy --strict` (the prod deploy path) refuses.
    from aws_cdk.assertions import Annotations

    Annotations.from_stack(_stack(tmp_path / "prod", "prod", {})).has_warning(
        "*", Match.string_like_regexp("tunnel_domain is not set for prod.*-c tunnel_domain=")
    )
    Annotations.from_stack(_stack(tmp_path / "dev", "dev", {})).has_no_warning("*", Match.any_value())


def test_the_tunnel_domain_from_context_gives_prod_host_routing_without_a_warning(tmp_path: Path) -> None:
    from aws_cdk.assertions import Annotations

    stack = _stack(
        tmp_path,
        "prod",
        {
            "tunnel_domain": "t.example.org",
            "tunnel_certificate_arn": _CERTIFICATE,
            "tunnel_hosted_zone_id": "Z0123456789ABCDEFGHIJ",
        },
    )
    Annotations.from_stack(stack).has_no_warning("*", Match.any_value())
    template = Template.from_stack(stack)
    template.has_resource_properties("AWS::ApiGatewayV2::DomainName", {"DomainName": "*.t.example.org"})
    variables = find_function(template, "tunnel-forward-prod")[1]["Properties"]["Environment"]["Variables"]
    assert variables["DOMAIN_NAME"] == "t.example.org" and "PUBLIC_HTTP_URL" in variables
