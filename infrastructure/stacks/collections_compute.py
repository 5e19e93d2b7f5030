"""Collections pipeline and search API (`CollectionsComputeStack-{env}`).

S3 images bucket --ObjectCreated--> ImageProcessorLambda --ImageProcessed--> [bus] --rule-->
AnalyzerLambda --AnalysisComplete--> [bus] --rule--> EmbedderLambda;  HTTP API (IAM) -> SearchLambda.

Originals are `{user_id}/{filename}` in the images bucket; every created object there is an
upload, whatever its extension's case. Thumbnails and analysis copies go to a separate derived
bucket that has no notification and that the processor alone may write, so outputs can never
trigger the processor again. A CDK Trigger runs the migrations inside the VPC on every deploy
whose migration code changed, before anything else in this stack can be invoked.

Database access: each function connects as its own PostgreSQL role with its own secret (and may
read no other); only the migration function reads the master secret, and it sets the roles'
passwords. Functions that call no external API (processor, deferred requeue, migrations) run in
subnets without any route to the internet.
"""

from __future__ import annotations

from typing import Any

from aws_cdk import Aws, CfnOutput, Duration, Stack, triggers
from aws_cdk import aws_apigatewayv2 as apigw
from aws_cdk import aws_apigatewayv2_authorizers as authorizers
from aws_cdk import aws_apigatewayv2_integrations as integrations
from aws_cdk import aws_events as events
from aws_cdk import aws_events_targets as targets
from aws_cdk import aws_s3 as s3
from aws_cdk import aws_s3_notifications as s3n
from aws_cdk import aws_sqs as sqs
from constructs import Construct

from infrastructure.config import EnvConfig
from infrastructure.constructs.apis import HttpEndpoint
from infrastructure.constructs.nag import acknowledge, acknowledge_bucket_notifications_handler
from infrastructure.constructs.python_function import FunctionFactory, PythonFunction
from infrastructure.stacks.collections_data import FUNCTIONS_SUBNETS, ISOLATED_FUNCTIONS_SUBNETS, CollectionsDataStack
from lambdas.collections import names
from lambdas.migrations.roles import FUNCTION_ROLES, ROLE_SECRETS_ENV


class CollectionsComputeStack(Stack):
    def __init__(
        self, scope: Construct, construct_id: str, *, config: EnvConfig, data: CollectionsDataStack, **kwargs: Any
    ) -> None:
        super().__init__(scope, construct_id, **kwargs)
        # Server access logs delivered under a bucket policy, not the legacy log-delivery ACL.
        self.node.set_context("@aws-cdk/aws-s3:serverAccessLogsUseBucketPolicy", True)
        self.config = config
        self.data = data
        self.parameter_prefix = f"{config.parameter_prefix}/collections"
        self._buckets()
        self.bus = events.EventBus(self, "EventBus", event_bus_name=f"collections-{config.name}")
        self._functions()
        self._routes()
        self._grant()
        self._api()
        self._migration_trigger()
        acknowledge_bucket_notifications_handler(self)
        self._outputs()

    def _buckets(self) -> None:
        self.access_logs = self._bucket("AccessLogsBucket", None)
        acknowledge(
            self.access_logs,
            "AwsSolutions-S1",
            "This is the server-access-log bucket of the two collections buckets; logging it into itself would loop.",
        )
        self.images = self._bucket("ImagesBucket", "images/")
        self.derived = self._bucket("DerivedBucket", "derived/")

    def _environment(self) -> dict[str, str]:
        """What every pipeline function and search share. The secret ARN is each function's own
        (`_function`); these say where to connect."""
        settings = self.config.collections
        return {
            names.ENV_DB_HOST: self.data.db_host,
            names.ENV_DB_PORT: str(names.DB_PORT),
            names.ENV_DB_VIA_PROXY: "true" if self.data.db_via_proxy else "false",
            names.ENV_DB_NAME: names.DB_NAME,
            names.ENV_PARAMETER_PREFIX: self.parameter_prefix,
            names.ENV_ALLOW_LOCAL_PROVIDERS: "true" if settings.allow_local_providers else "false",
            names.ENV_EVENT_BUS_NAME: self.bus.event_bus_name,
            names.ENV_DERIVED_BUCKET: self.derived.bucket_name,
            names.ENV_EMBEDDING_MODEL: settings.embedding_model,
            names.ENV_EMBEDDING_DIMENSIONS: str(settings.embedding_dimensions),
            names.ENV_ANALYSIS_MODEL: settings.analysis_model,
            names.ENV_OPENAI_ANALYSIS_MODEL: settings.openai_analysis_model,
        }

    def _functions(self) -> None:
        settings, env = self.config.collections, self._environment()
        self._pipeline_functions(env)
        self.search = self._function(
            "SearchLambda",
            "search",
            "Collections: semantic search and item API",
            {**env, names.ENV_CROSS_USER_PRINCIPALS: ",".join(settings.cross_user_principals)},
            memory_mb=512,
            timeout=Duration.seconds(15),
            reserved_concurrency=settings.search_reserved_concurrency,
        )
        self.migrate = self._migration_function()

    def _pipeline_functions(self, env: dict[str, str]) -> None:
        """The asynchronous functions: processor, analyzer (and its deferred requeue), embedder."""
        settings = self.config.collections
        self.processor = self._function(
            "ImageProcessorLambda",
            "image_processor",
            "Collections: thumbnail + analysis copy of each upload",
            env,
            asynchronous=True,
            memory_mb=settings.processor_memory_mb,
            timeout=Duration.seconds(60),
            reserved_concurrency=settings.processor_reserved_concurrency,
            isolated=True,
        )
        self.processor.add_environment(names.ENV_FAILURE_QUEUE_URL, self.processor.failure_queue.queue_url)
        self.analyzer = self._function(
            "AnalyzerLambda",
            "analyzer",
            "Collections: vision analysis of each processed image",
            env,
            asynchronous=True,
            memory_mb=512,
            timeout=Duration.seconds(settings.analyzer_timeout_seconds),
            reserved_concurrency=settings.analyzer_reserved_concurrency,
        )
        self.analyzer.add_environment(names.ENV_ANALYSIS_DAILY_BUDGET, str(settings.analysis_daily_budget))
        # Deferred analyses (over a user's daily budget) are requeued when the budgets start
        # afresh (`_routes`); scripts/collections_deferred.py invokes the same function on demand.
        self.deferred = self._function(
            "DeferredAnalysesLambda",
            "analyzer",
            "Collections: requeue analyses deferred by the daily budget",
            env,
            asynchronous=True,
            memory_mb=256,
            timeout=Duration.minutes(5),
            module="deferred",
            reserved_concurrency=settings.deferred_reserved_concurrency,
            isolated=True,
        )
        self.embedder = self._function(
            "EmbedderLambda",
            "embedder",
            "Collections: text embedding of each analysis",
            env,
            asynchronous=True,
            memory_mb=512,
            timeout=Duration.seconds(60),
            reserved_concurrency=settings.embedder_reserved_concurrency,
        )

    def _migration_function(self) -> PythonFunction:
        return self._function(
            "MigrateLambda",
            "migrations",
            "Collections: applies database migrations at deploy time",
            {
                # The master secret names the instance itself: migrations never go through the proxy.
                names.ENV_DB_SECRET_ARN: self.data.secret.secret_arn,
                names.ENV_DB_NAME: names.DB_NAME,
                names.ENV_DB_STATEMENT_TIMEOUT_MS: "600000",
                ROLE_SECRETS_ENV: Stack.of(self).to_json_string(
                    {role: self.data.role_secrets[function].secret_arn for function, role in FUNCTION_ROLES.items()}
                ),
            },
            timeout=Duration.minutes(10),
            isolated=True,
        )

    def _routes(self) -> None:
        """What invokes the pipeline: uploads, the bus's two rules and the deferred schedule."""
        self.images.add_event_notification(s3.EventType.OBJECT_CREATED, s3n.LambdaDestination(self.processor.function))
        self.rule_dlqs: dict[str, sqs.Queue] = {}
        self._rule("ImageProcessedRule", names.PROCESSOR_SOURCE, names.IMAGE_PROCESSED, self.analyzer)
        self._rule("AnalysisCompleteRule", names.ANALYZER_SOURCE, names.ANALYSIS_COMPLETE, self.embedder)
        events.Rule(
            self,
            "DeferredAnalysesSchedule",
            rule_name=f"collections-{self.config.name}-DeferredAnalysesSchedule",
            schedule=events.Schedule.cron(minute="5", hour="0"),
            targets=[targets.LambdaFunction(self.deferred.function, retry_attempts=2)],
        )

    def _migration_trigger(self) -> None:
        self.trigger = triggers.Trigger(
            self,
            "MigrateTrigger",
            handler=self.migrate.function,
            execute_on_handler_change=True,
            timeout=Duration.minutes(10),
        )
        # Nothing event-driven runs before the schema is there.
        for fn in (self.processor, self.analyzer, self.embedder, self.search, self.deferred):
            fn.function.node.add_dependency(self.trigger)

    def _outputs(self) -> None:
        CfnOutput(self, "ImagesBucketName", value=self.images.bucket_name)
        CfnOutput(self, "DerivedBucketName", value=self.derived.bucket_name)
        CfnOutput(self, "EventBusName", value=self.bus.event_bus_name)
        CfnOutput(self, "SearchApiUrl", value=self.http_api.api_endpoint)

    def _bucket(self, construct_id: str, log_prefix: str | None) -> s3.Bucket:
        return s3.Bucket(
            self,
            construct_id,
            block_public_access=s3.BlockPublicAccess.BLOCK_ALL,
            encryption=s3.BucketEncryption.S3_MANAGED,
            enforce_ssl=True,
            object_ownership=s3.ObjectOwnership.BUCKET_OWNER_ENFORCED,
            removal_policy=self.config.removal_policy,
            auto_delete_objects=False,
            server_access_logs_bucket=self.access_logs if log_prefix else None,
            server_access_logs_prefix=log_prefix,
            lifecycle_rules=[s3.LifecycleRule(expiration=Duration.days(90))] if log_prefix is None else None,
        )

    def _function(
        self,
        name: str,
        group: str,
        description: str,
        env: dict[str, str],
        *,
        module: str = "handler",
        isolated: bool = False,
        **options: Any,
    ) -> PythonFunction:
        """A collections function in the VPC: `isolated` ones (no external API) get no route to the
        internet. One with a database role (FUNCTION_ROLES) reads that role's secret and no other.
        Named `collections-{env}-{name}` after its construct; each group (the package it is bundled
        from, handler `lambdas.{group}.{module}.handler`) is one Powertools service."""
        function = FunctionFactory(
            self,
            self.config.function_defaults,
            group,
            lambda short, env_name: f"collections-{env_name}-{short}",
            lambda _short: f"collections-{group.replace('_', '-')}",
        )
        fn = function(
            name,
            name,
            description,
            module=module,
            environment=env,
            vpc=self.data.vpc,
            vpc_subnets=ISOLATED_FUNCTIONS_SUBNETS if isolated else FUNCTIONS_SUBNETS,
            security_groups=[
                self.data.isolated_functions_security_group if isolated else self.data.functions_security_group
            ],
            **options,
        )
        secret = self.data.role_secrets.get(name)
        if secret is not None:
            secret.grant_read(fn.role)
            fn.add_environment(names.ENV_DB_SECRET_ARN, secret.secret_arn)
        return fn

    def _rule(self, name: str, source: str, detail_type: str, target: PythonFunction) -> None:
        settings = self.config.collections
        dlq = sqs.Queue(
            self,
            f"{name}DeadLetterQueue",
            queue_name=f"collections-{self.config.name}-{name}-dlq",
            encryption=sqs.QueueEncryption.SQS_MANAGED,
            enforce_ssl=True,
            retention_period=Duration.days(14),
        )
        acknowledge(dlq, "AwsSolutions-SQS3", f"This queue is the dead-letter queue of the {name} target.")
        events.Rule(
            self,
            name,
            rule_name=f"collections-{self.config.name}-{name}",
            event_bus=self.bus,
            event_pattern=events.EventPattern(source=[source], detail_type=[detail_type]),
            targets=[
                targets.LambdaFunction(
                    target.function,
                    retry_attempts=settings.event_retry_attempts,
                    max_event_age=Duration.hours(settings.event_max_age_hours),
                    dead_letter_queue=dlq,
                )
            ],
        )
        self.rule_dlqs[name] = dlq

    def _parameter_arns(self, *names: str) -> list[str]:
        return [
            f"arn:{Aws.PARTITION}:ssm:{Aws.REGION}:{Aws.ACCOUNT_ID}:parameter{self.parameter_prefix}/{n}" for n in names
        ]

    def _grant(self) -> None:
        # The master secret and every role's (to set their passwords): the migration function only.
        for secret in (self.data.secret, *self.data.role_secrets.values()):
            secret.grant_read(self.migrate.role)
        for fn in (self.processor, self.analyzer, self.deferred):
            self.bus.grant_put_events_to(fn.role)
        self._grant_buckets()
        self.processor.failure_queue.grant_send_messages(self.processor.role)
        self._grant_parameters()

    def _grant_buckets(self) -> None:
        """Each function its own prefixes: the processor reads uploads and writes both derived
        prefixes, the analyzer reads analysis copies, search reads thumbnails."""
        thumbnails = self.derived.arn_for_objects(f"{names.THUMBNAILS_PREFIX}*")
        analysis = self.derived.arn_for_objects(f"{names.ANALYSIS_PREFIX}*")
        processor = (
            "The processor reads whichever upload arrived (any "
            f"{{user_id}}/{{filename}}) and writes only {names.THUMBNAILS_PREFIX} and {names.ANALYSIS_PREFIX} "
            "of the derived bucket."
        )
        self.processor.allow(["s3:GetObject"], self.images.arn_for_objects("*"), because=processor)
        self.processor.allow(["s3:PutObject"], thumbnails, analysis, because=processor)
        self.analyzer.allow(
            ["s3:GetObject"],
            analysis,
            because="The analyzer reads the analysis copy of whichever item its event names, all under "
            f"{names.ANALYSIS_PREFIX}.",
        )
        self.search.allow(
            ["s3:GetObject"],
            thumbnails,
            because=f"Search presigns thumbnail URLs for any item it returns, all under {names.THUMBNAILS_PREFIX}.",
        )

    def _grant_parameters(self) -> None:
        # Exactly the named SecureStrings (scripts/put_parameters.py writes them); the default
        # aws/ssm key's policy already lets SSM decrypt for principals of this account.
        self.analyzer.allow(
            ["ssm:GetParameter"],
            *self._parameter_arns(names.ANTHROPIC_API_KEY, names.OPENAI_API_KEY, names.LANGSMITH_API_KEY),
        )
        for fn in (self.embedder, self.search):
            fn.allow(["ssm:GetParameter"], *self._parameter_arns(names.VOYAGE_API_KEY))

    def _api(self) -> None:
        self.search_api = HttpEndpoint(
            self,
            "SearchApi",
            log_policy=self.config,
            api_name=f"collections-{self.config.name}",
            description="Collections search (IAM-authorized)",
            default_authorizer=authorizers.HttpIamAuthorizer(),
            rate_limit=20,
            burst_limit=40,
        )
        self.http_api = self.search_api.api
        integration = integrations.HttpLambdaIntegration("SearchIntegration", self.search.function)
        for path in ("/search", "/items/{item_id}"):
            self.http_api.add_routes(path=path, methods=[apigw.HttpMethod.GET], integration=integration)
