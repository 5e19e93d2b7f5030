"""HTTP tunnel (`Tunnel-{env}`): public HTTP requests reach an agent on a laptop over a WebSocket.

HTTP API `$default` -> tunnel-forward (any method, any path, `/` included; payload format 2.0)
WebSocket API `$connect` -> tunnel-connect, `$disconnect` -> tunnel-disconnect,
`$default` -> tunnel-response (agent messages: responses, Ready, Ping, errors)

Tunnels are reachable at `https://{http-api}/t/{subdomain}/...`, and with the environment's
wildcard domain (config or context `tunnel_domain`, `tunnel_certificate_arn`,
`tunnel_hosted_zone_id`) at `https://{subdomain}.{domain}/...` too: one browser origin per tunnel.
Where the config requires a domain (prod) and none is set, the stack carries a warning naming the
setting, so `cdk deploy --strict` refuses it.
"""

from __future__ import annotations

from typing import Any

from aws_cdk import Annotations, Aws, CfnOutput, Duration, Stack
from aws_cdk import aws_apigatewayv2 as apigw
from aws_cdk import aws_apigatewayv2_integrations as integrations
from aws_cdk import aws_certificatemanager as acm
from aws_cdk import aws_dynamodb as dynamodb
from aws_cdk import aws_route53 as route53
from aws_cdk import aws_route53_targets as targets
from aws_cdk import aws_s3 as s3
from constructs import Construct

from infrastructure.config import TUNNEL_DOMAIN_CONTEXT, EnvConfig, TunnelDomain
from infrastructure.constructs.access_logs import AccessLogBucket
from infrastructure.constructs.apis import HttpEndpoint, WebSocketEndpoint
from infrastructure.constructs.nag import acknowledge
from infrastructure.constructs.python_function import FunctionFactory
from infrastructure.constructs.storage import private_bucket, ttl_table
from lambdas.tunnel import names

# Under the HTTP API's 30 s integration limit, with room for the forwarder's own cleanup.
REQUEST_TIMEOUT_MS = 25_000


class TunnelStack(Stack):
    def __init__(self, scope: Construct, construct_id: str, *, config: EnvConfig, **kwargs: Any) -> None:
        super().__init__(scope, construct_id, **kwargs)
        self.config = config
        self.domain = self._configured_domain()
        self._tables()
        self._bucket()
        self._apis()
        self._functions()
        self._grant()
        self._routes()
        self._custom_domain()
        self._outputs()

    def _configured_domain(self) -> TunnelDomain | None:
        if self.config.tunnel_domain is not None:
            return self.config.tunnel_domain
        values = [self.node.try_get_context(key) for key in TUNNEL_DOMAIN_CONTEXT]
        if all(values):
            return TunnelDomain(domain_name=values[0], certificate_arn=values[1], hosted_zone_id=values[2])
        if self.config.tunnel.require_domain:
            Annotations.of(self).add_warning_v2(
                "platform:tunnel-domain-missing",
                f"tunnel_domain is not set for {self.config.name}: every tunnel would share one browser origin "
                "(/t/NAME/ of the HTTP API, cookies and responses readable across tunnels). Set "
                + " ".join(f"-c {key}=..." for key in TUNNEL_DOMAIN_CONTEXT)
                + " (or tunnel_domain in infrastructure/config.py).",
            )
        return None

    def _table(
        self, construct_id: str, key: str, index: str, index_key: str, sort: str | None, *more: tuple[str, str]
    ) -> dynamodb.TableV2:
        indexes = [
            dynamodb.GlobalSecondaryIndexPropsV2(
                index_name=index,
                partition_key=dynamodb.Attribute(name=index_key, type=dynamodb.AttributeType.STRING),
                sort_key=dynamodb.Attribute(name=sort, type=dynamodb.AttributeType.NUMBER) if sort else None,
                projection_type=dynamodb.ProjectionType.KEYS_ONLY,
            )
        ]
        for extra_index, extra_key in more:  # further keys-only indexes without a sort key
            indexes.append(
                dynamodb.GlobalSecondaryIndexPropsV2(
                    index_name=extra_index,
                    partition_key=dynamodb.Attribute(name=extra_key, type=dynamodb.AttributeType.STRING),
                    projection_type=dynamodb.ProjectionType.KEYS_ONLY,
                )
            )
        return ttl_table(
            self,
            construct_id,
            partition_key=key,
            ttl_attribute=names.TTL_ATTRIBUTE,
            indexes=indexes,
            removal_policy=self.config.removal_policy,
            unprotected_because=f"{construct_id} holds only short-lived routing rows (TTL of minutes to 2 hours) "
            "that agents recreate on reconnect; a point-in-time restore would bring back dead connections.",
        )

    def _tables(self) -> None:
        self.connections = self._table(
            # token-index: revoking a token finds (and closes) its open connections without a Scan.
            "ConnectionsTable",
            names.CONNECTION_ID,
            names.SUBDOMAIN_INDEX,
            names.SUBDOMAIN_INDEX_KEY,
            names.SUBDOMAIN_INDEX_SORT,
            (names.TOKEN_INDEX, names.TOKEN_INDEX_KEY),
        )
        self.pending = self._table(
            "PendingRequestsTable", names.REQUEST_ID, names.CONNECTION_INDEX, names.CONNECTION_INDEX_KEY, None
        )
        self.tokens = dynamodb.TableV2(
            self,
            "TokensTable",
            partition_key=dynamodb.Attribute(name=names.TOKENS_PK, type=dynamodb.AttributeType.STRING),
            sort_key=dynamodb.Attribute(name=names.TOKENS_SK, type=dynamodb.AttributeType.STRING),
            point_in_time_recovery_specification=dynamodb.PointInTimeRecoverySpecification(
                point_in_time_recovery_enabled=True
            ),
            deletion_protection=self.config.deletion_protection,
            removal_policy=self.config.removal_policy,
        )

    def _bucket(self) -> None:
        self.access_logs = AccessLogBucket(self, "AccessLogs", config=self.config)
        self.bucket = private_bucket(
            self,
            "BodyBucket",
            removal_policy=self.config.removal_policy,
            lifecycle_rules=[s3.LifecycleRule(id="ExpireBodies", expiration=Duration.days(1))],
        )
        self.access_logs.log(self.bucket, "body-bucket")

    def _apis(self) -> None:
        name = self.config.name
        self.http = HttpEndpoint(
            self,
            "Http",
            log_policy=self.config,
            api_name=f"tunnel-{name}",
            description="Tunnel: public HTTP requests for connected agents",
            rate_limit=100,
            burst_limit=200,
        )
        self.http_api, self.http_stage = self.http.api, self.http.stage
        self.ws = WebSocketEndpoint(
            self,
            "WebSocket",
            stage_name=name,
            api_name=f"tunnel-ws-{name}",
            description="Tunnel: agent connections",
            rate_limit=100,
            burst_limit=200,
            logged_by="connect, disconnect and every agent message are logged by the handlers",
        )
        self.ws_api, self.ws_stage = self.ws.api, self.ws.stage
        self.ws_endpoint = self.ws.management_endpoint

    def _functions(self) -> None:
        domain = {names.ENV_DOMAIN_NAME: self.domain.domain_name} if self.domain else {}
        connections = {names.ENV_CONNECTIONS_TABLE: self.connections.table_name}
        pending = {names.ENV_PENDING_TABLE: self.pending.table_name}
        ws = {names.ENV_WS_API_ENDPOINT: self.ws_endpoint}
        function = FunctionFactory(
            self, self.config.function_defaults, "tunnel", names.function_name, lambda short: f"tunnel-{short}"
        )
        self.connect_fn = function(
            "ConnectFunction",
            names.CONNECT,
            "Tunnel $connect: token check, subdomain claim, connection registration",
            environment={
                **connections,
                names.ENV_TOKENS_TABLE: self.tokens.table_name,
                names.ENV_PUBLIC_HTTP_URL: self.http_api.api_endpoint,
                **ws,
                **domain,
            },
            timeout=Duration.seconds(10),
        )
        self.disconnect_fn = function(
            "DisconnectFunction",
            names.DISCONNECT,
            "Tunnel $disconnect: forget the connection, fail its in-flight requests",
            environment={**connections, **pending},
            timeout=Duration.seconds(10),
        )
        self.forward_fn = function(
            "ForwardFunction",
            names.FORWARD,
            "Tunnel: forward a public HTTP request to its agent and wait for the answer",
            environment={
                **connections,
                **pending,
                **ws,
                **domain,
                # On the local runtime (a loopback endpoint) tunnels are routed by `{name}.localhost`.
                names.ENV_PUBLIC_HTTP_URL: self.http_api.api_endpoint,
                names.ENV_BODY_BUCKET: self.bucket.bucket_name,
                names.ENV_TOKENS_TABLE: self.tokens.table_name,
                names.ENV_REQUEST_TIMEOUT_MS: str(REQUEST_TIMEOUT_MS),
                names.ENV_MAX_INFLIGHT: str(self.config.tunnel.max_inflight_per_tunnel),
                names.ENV_BUSY_RETRY_AFTER: str(self.config.tunnel.busy_retry_after_seconds),
            },
            # Waiting for the agent is most of its time: the HTTP API cuts off at 30 s anyway.
            timeout=Duration.seconds(29),
            memory_mb=512,
            # Bounds what all tunnels together can hold of the account's concurrency.
            reserved_concurrency=self.config.tunnel.forward_reserved_concurrency,
        )
        self.response_fn = function(
            "ResponseFunction",
            names.RESPONSE,
            "Tunnel $default: agent responses, Ready handshake, pings",
            environment={**connections, **pending, **ws},
            timeout=Duration.seconds(10),
        )

    def _grant(self) -> None:
        connections_arn, pending_arn = self.connections.table_arn, self.pending.table_arn
        self._grant_connect()

        self.disconnect_fn.allow(["dynamodb:DeleteItem"], connections_arn)
        self.disconnect_fn.allow(["dynamodb:Query"], f"{pending_arn}/index/{names.CONNECTION_INDEX}")
        self.disconnect_fn.allow(["dynamodb:UpdateItem"], pending_arn)

        self._grant_forward()

        self.response_fn.allow(["dynamodb:UpdateItem"], pending_arn)
        self.response_fn.allow(["dynamodb:UpdateItem"], connections_arn)  # Ready makes it routable
        self.ws.grant_manage_connections(
            self.response_fn, "Replies (ConnectionEstablished, Pong, Error) go to the calling agent connection."
        )

    def _grant_connect(self) -> None:
        connections_arn = self.connections.table_arn
        # $connect: read the token, claim a subdomain (a transaction: put claim + update token).
        self.connect_fn.allow(["dynamodb:GetItem", "dynamodb:PutItem", "dynamodb:UpdateItem"], self.tokens.table_arn)
        self.connect_fn.allow(["dynamodb:PutItem", "dynamodb:DeleteItem"], connections_arn)
        # One agent per name: find the name's live connection, and close it on --replace.
        self.connect_fn.allow(["dynamodb:Query"], f"{connections_arn}/index/{names.SUBDOMAIN_INDEX}")
        self.ws.grant_manage_connections(
            self.connect_fn, "One agent per name: a replaced agent is told why before it is closed."
        )
        stage = self.ws_stage.stage_name
        self.connect_fn.allow(
            ["execute-api:ManageConnections"],
            *(
                f"arn:{Aws.PARTITION}:execute-api:{Aws.REGION}:{Aws.ACCOUNT_ID}:{self.ws_api.api_id}/{stage}/"
                f"{verb}/@connections/*"
                for verb in ("GET", "DELETE")
            ),
            because="One agent per name: $connect checks whether the name's current connection is alive (GET) "
            "and closes it on --replace (DELETE); connection ids are only known at run time.",
        )

    def _grant_forward(self) -> None:
        connections_arn, pending_arn = self.connections.table_arn, self.pending.table_arn
        self.forward_fn.allow(["dynamodb:Query"], f"{connections_arn}/index/{names.SUBDOMAIN_INDEX}")
        # Routing checks that a live token still owns the name (a revoked token's connection gets nothing).
        self.forward_fn.allow(["dynamodb:GetItem"], self.tokens.table_arn)
        # Delete: a stale connection after GoneException; Update/Get: its in-flight count (the per-tunnel cap).
        self.forward_fn.allow(["dynamodb:DeleteItem", "dynamodb:UpdateItem", "dynamodb:GetItem"], connections_arn)
        self.forward_fn.allow(
            ["dynamodb:PutItem", "dynamodb:GetItem", "dynamodb:UpdateItem", "dynamodb:DeleteItem"],
            pending_arn,
        )
        # Put/Get also sign the presigned URLs the agent uses (GET requests/*, POST responses/*).
        self.forward_fn.allow(
            ["s3:PutObject", "s3:GetObject", "s3:DeleteObject"],
            *(self.bucket.arn_for_objects(f"{prefix}*") for prefix in names.BODY_PREFIXES),
            because="Bodies are keyed by request id under requests/ and responses/ of the tunnel's own bucket.",
        )
        self.ws.grant_manage_connections(
            self.forward_fn, "The forwarder posts each request to whichever agent connection serves its tunnel."
        )

    def _routes(self) -> None:
        forward = integrations.HttpLambdaIntegration(
            "ForwardIntegration",
            self.forward_fn.function,
            payload_format_version=apigw.PayloadFormatVersion.VERSION_2_0,
            timeout=Duration.seconds(29),  # the most CDK allows; the forwarder answers 504 before it
        )
        # `$default` rather than `ANY /{proxy+}`: it also catches `/`, so the app's root works.
        default_route = apigw.HttpRoute(
            self,
            "DefaultRoute",
            http_api=self.http_api,
            route_key=apigw.HttpRouteKey.DEFAULT,
            integration=forward,
        )
        for route, fn in (
            ("$connect", self.connect_fn),
            ("$disconnect", self.disconnect_fn),
            ("$default", self.response_fn),
        ):
            integration = integrations.WebSocketLambdaIntegration(f"{fn.node.id}Integration", fn.function)
            self.ws_api.add_route(route, integration=integration)
        acknowledge(
            default_route,
            "AwsSolutions-APIG4",
            "A tunnel is a public URL by design: the app behind it answers its own auth; no gateway "
            "authorizer or CORS so the tunnelled app sees requests unchanged.",
        )
        acknowledge(
            self.ws_api,
            "AwsSolutions-APIG4",
            "$connect is authorized in tunnel-connect by the agent token (only a hash is stored).",
        )

    def _custom_domain(self) -> None:
        domain = self.domain
        if domain is None:
            return
        wildcard = apigw.DomainName(
            self,
            "WildcardDomain",
            domain_name=f"*.{domain.domain_name}",
            certificate=acm.Certificate.from_certificate_arn(self, "Certificate", domain.certificate_arn),
        )
        apigw.ApiMapping(self, "WildcardMapping", api=self.http_api, domain_name=wildcard, stage=self.http_stage)
        zone = route53.HostedZone.from_hosted_zone_attributes(
            self, "Zone", hosted_zone_id=domain.hosted_zone_id, zone_name=domain.domain_name
        )
        route53.ARecord(
            self,
            "WildcardRecord",
            zone=zone,
            record_name=f"*.{domain.domain_name}.",
            target=route53.RecordTarget.from_alias(
                targets.ApiGatewayv2DomainProperties(wildcard.regional_domain_name, wildcard.regional_hosted_zone_id)
            ),
        )

    def _outputs(self) -> None:
        domain = self.domain
        pattern = (
            f"https://{{subdomain}}.{domain.domain_name}/"
            if domain
            else f"{self.http_api.api_endpoint}/t/{{subdomain}}/"
        )
        CfnOutput(self, names.OUTPUT_WEBSOCKET_URL, value=self.ws_stage.url)
        CfnOutput(self, names.OUTPUT_HTTP_API_URL, value=self.http_api.api_endpoint)
        CfnOutput(self, names.OUTPUT_PUBLIC_URL_PATTERN, value=pattern)
        CfnOutput(self, names.OUTPUT_TOKENS_TABLE, value=self.tokens.table_name)
        CfnOutput(self, names.OUTPUT_CONNECTIONS_TABLE, value=self.connections.table_name)
        CfnOutput(self, names.OUTPUT_PENDING_TABLE, value=self.pending.table_name)
        CfnOutput(self, names.OUTPUT_BODY_BUCKET, value=self.bucket.bucket_name)
