"""The fixture stack: an HTTP route, routes behind Lambda REQUEST authorizers (simple responses,
cached; IAM policies, uncached), an IAM (SigV4) route, a WebSocket route replying through @connections, a filtered S3
notification, an EventBridge rule, an asynchronous failure with a retry and a destination, an SQS
FIFO mapping with partial batch failures and a dead-letter queue, and for functions created at run
time through the Lambda API: their role, and a function that invokes them through boto3.

Context keys change the wiring (tests show the runtime follows): `fixture_route` (HTTP route path),
`fixture_prefix` (S3 notification prefix).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from aws_cdk import App, Aws, CfnOutput, Duration, Stack
from aws_cdk import aws_apigatewayv2 as apigw
from aws_cdk import aws_apigatewayv2_authorizers as authorizers
from aws_cdk import aws_apigatewayv2_integrations as integrations
from aws_cdk import aws_ec2 as ec2
from aws_cdk import aws_events as events
from aws_cdk import aws_events_targets as targets
from aws_cdk import aws_iam as iam
from aws_cdk import aws_lambda as lambda_
from aws_cdk import aws_lambda_destinations as destinations
from aws_cdk import aws_lambda_event_sources as sources
from aws_cdk import aws_rds as rds
from aws_cdk import aws_s3 as s3
from aws_cdk import aws_s3_notifications as s3n
from aws_cdk import aws_sqs as sqs
from constructs import Construct

HANDLERS = Path(__file__).resolve().parent / "handlers"


class FixtureStack(Stack):
    def __init__(
        self, scope: Construct, construct_id: str, *, route: str, prefix: str, database: bool = False, **kwargs: Any
    ) -> None:
        super().__init__(scope, construct_id, **kwargs)
        observed = sqs.Queue(self, "Observed")
        failures = sqs.Queue(self, "Failures")
        code = lambda_.Code.from_asset(str(HANDLERS))

        def function(logical_id: str, handler: str, **extra: Any) -> lambda_.Function:
            extra.setdefault("timeout", Duration.seconds(10))
            fn = lambda_.Function(
                self,
                logical_id,
                runtime=lambda_.Runtime.PYTHON_3_12,
                handler=handler,
                code=code,
                environment={"OBSERVED_QUEUE_URL": observed.queue_url, "GREETING": "hello"},
                **extra,
            )
            observed.grant_send_messages(fn)
            return fn

        http_fn = function("HttpFunction", "http_handler.handler")
        http_api = apigw.HttpApi(self, "HttpApi")
        http_api.add_routes(
            path=route,
            methods=[apigw.HttpMethod.GET, apigw.HttpMethod.POST],
            integration=integrations.HttpLambdaIntegration("Http", http_fn),
        )

        # Behind authorizers: "Bearer good..." is allowed (simple responses, cached 300 s), "Bearer
        # bad..." denied; the policy route's authorizer answers IAM policies and is not cached.
        authorizer_fn = function("AuthorizerFunction", "authorizer.handler")
        http_api.add_routes(
            path="/private/{item}",
            methods=[apigw.HttpMethod.GET],
            integration=integrations.HttpLambdaIntegration("Private", http_fn),
            authorizer=authorizers.HttpLambdaAuthorizer(
                "Simple",
                authorizer_fn,
                response_types=[authorizers.HttpLambdaResponseType.SIMPLE],
                results_cache_ttl=Duration.seconds(300),
            ),
        )
        http_api.add_routes(
            path="/policy/{item}",
            methods=[apigw.HttpMethod.GET],
            integration=integrations.HttpLambdaIntegration("Policy", http_fn),
            authorizer=authorizers.HttpLambdaAuthorizer(
                "Policy",
                authorizer_fn,
                response_types=[authorizers.HttpLambdaResponseType.IAM],
                results_cache_ttl=Duration.seconds(0),
                identity_source=["$request.header.Authorization", "$request.querystring.item"],
            ),
        )

        # IAM: any well-formed SigV4 Authorization passes locally (signatures are not verified),
        # anything else is refused.
        http_api.add_routes(
            path="/iam/{item}",
            methods=[apigw.HttpMethod.GET],
            integration=integrations.HttpLambdaIntegration("Iam", http_fn),
            authorizer=authorizers.HttpIamAuthorizer(),
        )

        ws_api = apigw.WebSocketApi(self, "WsApi")
        stage = apigw.WebSocketStage(self, "WsStage", web_socket_api=ws_api, stage_name="test", auto_deploy=True)
        endpoint = f"{ws_api.api_id}.execute-api.{Aws.REGION}.{Aws.URL_SUFFIX}/{stage.stage_name}"
        ws_fn = function("WsFunction", "ws_handler.handler")
        ws_fn.add_environment("WS_API_ENDPOINT", endpoint)
        ws_integration = integrations.WebSocketLambdaIntegration("Ws", ws_fn)
        ws_api.add_route("$connect", integration=ws_integration)
        ws_api.add_route("echo", integration=ws_integration)

        bucket = s3.Bucket(self, "Bucket")
        s3_fn = function("S3Function", "observe.handler")
        bucket.add_event_notification(
            s3.EventType.OBJECT_CREATED,
            s3n.LambdaDestination(s3_fn),
            s3.NotificationKeyFilter(prefix=prefix, suffix=".txt"),
        )

        jobs = sqs.Queue(self, "Jobs", visibility_timeout=Duration.seconds(30))
        jobs_fn = function("JobsFunction", "observe.handler")
        jobs_fn.add_event_source_mapping("JobsSource", event_source_arn=jobs.queue_arn, batch_size=5)
        jobs.grant_consume_messages(jobs_fn)

        # A FIFO queue like the deployer's: a message group per function, partial batch failures,
        # a FIFO dead-letter queue. Short timeouts keep the retries quick.
        fifo_observed = sqs.Queue(self, "FifoObserved")
        deploys_dlq = sqs.Queue(self, "DeploysDlq", fifo=True)
        deploys = sqs.Queue(
            self,
            "Deploys",
            fifo=True,
            content_based_deduplication=False,
            visibility_timeout=Duration.seconds(1),
            dead_letter_queue=sqs.DeadLetterQueue(queue=deploys_dlq, max_receive_count=2),
        )
        fifo_fn = function("FifoFunction", "fifo_handler.handler", timeout=Duration.seconds(1))
        fifo_fn.add_environment("OBSERVED_QUEUE_URL", fifo_observed.queue_url)
        fifo_fn.add_event_source(sources.SqsEventSource(deploys, batch_size=10, report_batch_item_failures=True))
        fifo_observed.grant_send_messages(fifo_fn)

        user_role = iam.Role(self, "UserFunctionRole", assumed_by=iam.ServicePrincipal("lambda.amazonaws.com"))
        lambda_caller = function("LambdaCaller", "lambda_caller.handler")
        lambda_caller.add_to_role_policy(iam.PolicyStatement(actions=["lambda:InvokeFunction"], resources=["*"]))

        bus = events.EventBus(self, "Bus")
        rule_fn = function("RuleFunction", "observe.handler")
        events.Rule(
            self,
            "BigOrders",
            event_bus=bus,
            event_pattern=events.EventPattern(
                source=["fixture.orders"],
                detail={"amount": events.Match.greater_than(100), "kind": events.Match.prefix("big")},
            ),
            targets=[targets.LambdaFunction(rule_fn)],
        )
        failing_fn = function(
            "FailingFunction",
            "failing.handler",
            retry_attempts=1,
            on_failure=destinations.SqsDestination(failures),
        )
        events.Rule(
            self,
            "FailEvents",
            event_bus=bus,
            event_pattern=events.EventPattern(source=["fixture.fail"]),
            targets=[targets.LambdaFunction(failing_fn, retry_attempts=0)],
        )

        if database:
            self._database(function, http_api)

        CfnOutput(self, "HttpUrl", value=http_api.api_endpoint)
        CfnOutput(self, "WsUrl", value=stage.url)
        CfnOutput(self, "BucketName", value=bucket.bucket_name)
        CfnOutput(self, "BusName", value=bus.event_bus_name)
        CfnOutput(self, "ObservedQueueUrl", value=observed.queue_url)
        CfnOutput(self, "FailureQueueUrl", value=failures.queue_url)
        CfnOutput(self, "JobsQueueUrl", value=jobs.queue_url)
        CfnOutput(self, "DeploysQueueUrl", value=deploys.queue_url)
        CfnOutput(self, "DeploysDlqUrl", value=deploys_dlq.queue_url)
        CfnOutput(self, "FifoObservedQueueUrl", value=fifo_observed.queue_url)
        CfnOutput(self, "UserFunctionRoleArn", value=user_role.role_arn)
        CfnOutput(self, "LambdaCallerName", value=lambda_caller.function_name)

    def _database(self, function: Any, http_api: apigw.HttpApi) -> None:
        vpc = ec2.Vpc(
            self,
            "Vpc",
            nat_gateways=0,
            max_azs=2,
            subnet_configuration=[ec2.SubnetConfiguration(name="db", subnet_type=ec2.SubnetType.PRIVATE_ISOLATED)],
        )
        instance = rds.DatabaseInstance(
            self,
            "Database",
            engine=rds.DatabaseInstanceEngine.postgres(version=rds.PostgresEngineVersion.VER_16),
            vpc=vpc,
            vpc_subnets=ec2.SubnetSelection(subnet_type=ec2.SubnetType.PRIVATE_ISOLATED),
            credentials=rds.Credentials.from_generated_secret("fixture_admin"),
            database_name="fixture",
        )
        assert instance.secret is not None
        db_fn = function("DbFunction", "db_handler.handler")
        db_fn.add_environment("DB_SECRET_ARN", instance.secret.secret_arn)
        instance.secret.grant_read(db_fn)
        http_api.add_routes(
            path="/db", methods=[apigw.HttpMethod.GET], integration=integrations.HttpLambdaIntegration("Db", db_fn)
        )


def build(app: App, env_name: str, context: dict[str, Any]) -> None:
    FixtureStack(
        app,
        f"Fixture-{env_name}",
        route=str(context.get("fixture_route", "/hello/{name}")),
        prefix=str(context.get("fixture_prefix", "incoming/")),
        database=bool(context.get("fixture_database", False)),
    )
