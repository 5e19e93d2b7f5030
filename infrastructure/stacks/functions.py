"""User-defined functions (`Functions-{env}`): each organization's functions run as real Lambdas.

HTTP API `functions-{env}`: `ANY /v1/orgs/{org}/{proxy+}` (Lambda REQUEST authorizer: an org API
key) and `GET /v1/openapi.json` (public) -> functions-api
functions-api -> SQS FIFO deploy queue (message group = function id) -> functions-deployer, the only
code that calls Lambda's control plane, and only on `ufn-{env}-*` functions
User functions `ufn-{env}-{org}-{fid}` run under one execution role that can write its logs and
send their async results to the results queue, nothing else; the guardrails below are the
deployer's IAM policy, asserted by the stack's tests.

Invoking (part 2): every user function's async invocations (the API's `async` mode, and the batch
function's Event invokes of the batch queue's items) end on the standard queue
`functions-results-{env}` (on-success and on-failure destination, set by the deployer) ->
functions-recorder, which updates the invocation record and POSTs the caller's callback_url, its
retries being delayed messages on the same queue. `ANY /v1/callback/{proxy+}` has no key
authorizer: the API verifies a per-invocation token signed with the callback secret.
"""

from __future__ import annotations

from typing import Any

from aws_cdk import Aws, CfnOutput, Duration, Stack
from aws_cdk import aws_apigatewayv2 as apigw
from aws_cdk import aws_apigatewayv2_authorizers as authorizers
from aws_cdk import aws_apigatewayv2_integrations as integrations
from aws_cdk import aws_cloudwatch as cloudwatch
from aws_cdk import aws_dynamodb as dynamodb
from aws_cdk import aws_iam as iam
from aws_cdk import aws_lambda_event_sources as event_sources
from aws_cdk import aws_logs as logs
from aws_cdk import aws_s3 as s3
from aws_cdk import aws_secretsmanager as secretsmanager
from aws_cdk import aws_sqs as sqs
from constructs import Construct

from infrastructure.config import EnvConfig
from infrastructure.constructs.apis import HttpEndpoint
from infrastructure.constructs.nag import acknowledge, acknowledge_wildcards, finding
from infrastructure.constructs.python_function import FunctionFactory, PythonFunction
from infrastructure.constructs.storage import private_bucket, ttl_table
from lambdas.functions import names

GROUP = "functions"
# SSM SecureStrings of users' secret variables: `{parameter_prefix}/functions/secrets/{org}/{fid}/{NAME}`.
SECRETS_PATH = "functions/secrets"
LAMBDA_SERVICE = "lambda.amazonaws.com"
# Deploy messages per deployer invocation (FIFO queues allow at most 10); failures are reported
# per message (ReportBatchItemFailures), so one bad message does not redeliver the others.
DEPLOY_BATCH_SIZE = 10
DEPLOY_MAX_RECEIVES = 3
# Results and batch queues (standard): 10 messages per invocation, failures reported per message.
# A destination record is retried more often (5 receives) than a batch item (3): losing it leaves an
# invocation `queued` for ever, while a failed batch item is only a failed submission.
QUEUE_BATCH_SIZE = 10
RESULTS_MAX_RECEIVES = 5
BATCH_MAX_RECEIVES = 3
DEAD_LETTER_RETENTION = Duration.days(14)
# Powertools' idempotency layout (DynamoDBPersistenceLayer's default attribute names).
IDEMPOTENCY_KEY_ATTRIBUTE = "id"
IDEMPOTENCY_EXPIRY_ATTRIBUTE = "expiration"
# The callback secret: 64 letters and digits (no punctuation: it is used as raw HMAC key bytes).
CALLBACK_KEY_LENGTH = 64

# Control-plane actions the deployer needs on user functions (and their versions and aliases).
DEPLOYER_LAMBDA_ACTIONS = [
    "lambda:GetFunction",
    "lambda:GetFunctionConfiguration",
    "lambda:UpdateFunctionCode",
    "lambda:UpdateFunctionConfiguration",
    "lambda:PublishVersion",
    "lambda:ListVersionsByFunction",
    "lambda:CreateAlias",
    "lambda:UpdateAlias",
    "lambda:GetAlias",
    "lambda:DeleteAlias",
    "lambda:DeleteFunction",
    "lambda:TagResource",
    "lambda:PutFunctionConcurrency",
    "lambda:DeleteFunctionConcurrency",
    "lambda:PutFunctionEventInvokeConfig",
    "lambda:DeleteFunctionEventInvokeConfig",
]
# What no user function may ever get, whatever the deployer is asked to do: a resource policy
# (another principal could invoke it), a function URL (a public endpoint), an event source mapping
# (it could drain a queue or stream of the account).
DEPLOYER_DENIED_ACTIONS = [
    "lambda:AddPermission",
    "lambda:CreateFunctionUrlConfig",
    "lambda:UpdateFunctionUrlConfig",
    "lambda:CreateEventSourceMapping",
    "lambda:UpdateEventSourceMapping",
]
FUNCTION_CONFIG_ACTIONS = ["lambda:CreateFunction", "lambda:UpdateFunctionConfiguration"]
# Lambda puts this key in the request context of every call made with the execution role from
# inside the execution environment (user code), and of nothing else it does outside it except
# writing logs and traces: asynchronous destination records are sent without it. Requiring it
# absent lets Lambda deliver results while user code cannot send (forge) a message itself.
NOT_FROM_FUNCTION_CODE = {"Null": {"lambda:SourceFunctionArn": "true"}}
ITEM_ACTIONS = ["dynamodb:GetItem", "dynamodb:PutItem", "dynamodb:UpdateItem", "dynamodb:DeleteItem"]
VPC_CONDITION_KEYS = ("lambda:VpcIds", "lambda:SubnetIds", "lambda:SecurityGroupIds")


class FunctionsStack(Stack):
    def __init__(self, scope: Construct, construct_id: str, *, config: EnvConfig, **kwargs: Any) -> None:
        super().__init__(scope, construct_id, **kwargs)
        self.config = config
        self.settings = config.functions
        self._arns()
        self._tables()
        self._bucket()
        self._callback_key()
        self._queues()
        self._user_function_role()
        self._functions()
        self._grants()
        self._api()
        self._routes()
        self._outputs()

    def _arns(self) -> None:
        """What the grants name: user functions, their log groups and streams, users' secrets."""
        prefix = names.user_function_prefix(self.config.name)
        self.secret_prefix = f"{self.config.parameter_prefix}/{SECRETS_PATH}"
        arn = f"arn:{Aws.PARTITION}"
        region_account = f"{Aws.REGION}:{Aws.ACCOUNT_ID}"
        # `ufn-{env}-*` and its qualified form (`:{version}` or `:{alias}`); nothing else in the
        # account is reachable through the deployer's or the API's Lambda grants.
        self.user_function_arns = [
            f"{arn}:lambda:{region_account}:function:{prefix}*",
            f"{arn}:lambda:{region_account}:function:{prefix}*:*",
        ]
        self.user_log_group_arn = f"{arn}:logs:{region_account}:log-group:{names.user_log_group(prefix)}*"
        self.secrets_arn = f"{arn}:ssm:{region_account}:parameter{self.secret_prefix}/*"
        # Log streams of user functions' groups: what the API's per-invocation log look-up reads.
        self.user_log_streams_arn = f"{self.user_log_group_arn}:*"

    # --- data -----------------------------------------------------------------------------------
    def _tables(self) -> None:
        self._table()
        self._idempotency_table()

    def _table(self) -> None:
        string = dynamodb.AttributeType.STRING
        self.table = ttl_table(
            self,
            "Table",
            partition_key="pk",
            sort_key="sk",
            ttl_attribute=names.TTL_ATTRIBUTE,
            indexes=[
                dynamodb.GlobalSecondaryIndexPropsV2(
                    index_name=names.GSI1,
                    partition_key=dynamodb.Attribute(name=names.GSI1_PK, type=string),
                    sort_key=dynamodb.Attribute(name=names.GSI1_SK, type=string),
                    projection_type=dynamodb.ProjectionType.ALL,
                )
            ],
            removal_policy=self.config.removal_policy,
            deletion_protection=self.config.deletion_protection,
        )
        self.gsi1_arn = f"{self.table.table_arn}/index/{names.GSI1}"

    def _idempotency_table(self) -> None:
        """Powertools idempotency records of `Idempotency-Key` requests (24 h, expired by TTL). A
        table of its own: Powertools owns its items' layout, and the API can be granted exactly
        the four item actions it uses here without touching the functions table's grants."""
        self.idempotency_table = ttl_table(
            self,
            "IdempotencyTable",
            partition_key=IDEMPOTENCY_KEY_ATTRIBUTE,
            ttl_attribute=IDEMPOTENCY_EXPIRY_ATTRIBUTE,
            removal_policy=self.config.removal_policy,
            deletion_protection=self.config.deletion_protection,
        )

    def _bucket(self) -> None:
        self.bucket = private_bucket(
            self,
            "CodeBucket",
            removal_policy=self.config.removal_policy,
            lifecycle_rules=[
                s3.LifecycleRule(id="ExpireUploads", prefix=names.UPLOADS_PREFIX, expiration=Duration.days(1)),
                # Large async payloads live as long as the invocation records that point at them.
                s3.LifecycleRule(
                    id="ExpireInputs",
                    prefix=names.INPUTS_PREFIX,
                    expiration=Duration.days(self.settings.invocation_retention_days),
                ),
            ],
        )
        acknowledge(
            self.bucket,
            "AwsSolutions-S1",
            "Code bucket: uploads/ are written only through presigned POSTs that the API issues per "
            "(org, function, upload id) to an authenticated key and records with it; code/ is written "
            "only by the deployer, content-addressed by SHA-256 and recorded on the version. Access "
            "logs would repeat that record; CloudTrail S3 data events are the account-level option.",
        )

    def _callback_key(self) -> None:
        """The key that signs callback tokens (given to functions per invocation) and the
        `X-Platform-Signature` of callback_url POSTs; read by the API and the recorder only."""
        name = f"functions-callback-key-{self.config.name}"
        self.callback_key = secretsmanager.Secret(
            self,
            "CallbackKey",
            secret_name=name,
            description="Signs Functions callback tokens and callback_url webhook signatures (HMAC-SHA256)",
            generate_secret_string=secretsmanager.SecretStringGenerator(
                password_length=CALLBACK_KEY_LENGTH, exclude_punctuation=True
            ),
            removal_policy=self.config.removal_policy,
        )
        acknowledge(
            self.callback_key,
            "AwsSolutions-SMG4",
            f"{name} signs per-invocation callback tokens and the webhook signatures receivers "
            "verify: an automatic rotation would invalidate every token of invocations still "
            "running and break receivers' verification without notice. It is rotated by hand, "
            "as the README describes (new value, receivers told, running invocations drained).",
        )

    def _dead_letter_queue(self, construct_id: str, source_name: str, *, fifo: bool = False) -> sqs.Queue:
        """The dead-letter queue of `source_name` (`{source}-dlq`), with an alarm on its first message."""
        base = source_name.removesuffix(".fifo")
        queue = sqs.Queue(
            self,
            f"{construct_id}DeadLetterQueue",
            queue_name=f"{base}-dlq.fifo" if fifo else f"{base}-dlq",
            fifo=fifo or None,
            encryption=sqs.QueueEncryption.SQS_MANAGED,
            enforce_ssl=True,
            retention_period=DEAD_LETTER_RETENTION,
        )
        acknowledge(queue, "AwsSolutions-SQS3", f"This queue is the dead-letter queue of {source_name}.")
        queue.metric_approximate_number_of_messages_visible(period=Duration.minutes(5)).create_alarm(
            self,
            f"{construct_id}DeadLettersAlarm",
            alarm_name=f"{base}-dead-letters",
            threshold=1,
            evaluation_periods=1,
            comparison_operator=cloudwatch.ComparisonOperator.GREATER_THAN_OR_EQUAL_TO_THRESHOLD,
            treat_missing_data=cloudwatch.TreatMissingData.NOT_BREACHING,
        )
        return queue

    def _queue(
        self,
        construct_id: str,
        queue_name: str,
        *,
        consumer_timeout_seconds: int,
        max_receives: int,
        fifo: bool = False,
    ) -> sqs.Queue:
        """`{construct_id}Queue`, visible again after 6x its consumer's timeout (AWS's guidance for
        SQS event sources), moved to its dead-letter queue after `max_receives`."""
        dead_letters = self._dead_letter_queue(construct_id, queue_name, fifo=fifo)
        return sqs.Queue(
            self,
            f"{construct_id}Queue",
            queue_name=queue_name,
            fifo=fifo or None,
            # The API sends an explicit deduplication id per change (function revision): two
            # identical bodies can be two real requests (deploy, then deploy again after a failure).
            content_based_deduplication=False if fifo else None,
            encryption=sqs.QueueEncryption.SQS_MANAGED,
            enforce_ssl=True,
            visibility_timeout=Duration.seconds(6 * consumer_timeout_seconds),
            dead_letter_queue=sqs.DeadLetterQueue(queue=dead_letters, max_receive_count=max_receives),
        )

    def _queues(self) -> None:
        name = self.config.name
        settings = self.settings
        # A message here left a function `deploying` after three attempts: an operator looks.
        self.deploy_queue = self._queue(
            "Deploy",
            f"functions-deploy-{name}.fifo",
            consumer_timeout_seconds=settings.deployer_timeout_seconds,
            max_receives=DEPLOY_MAX_RECEIVES,
            fifo=True,
        )
        # Destination records of user functions' async invocations, and the recorder's own delayed
        # callback retries. SQS-managed SSE (not KMS): Lambda sends destination records with each
        # user function's execution role, which would otherwise need the key too. A record here
        # means an invocation stayed `queued`/`running` in its record: an operator looks.
        self.results_queue = self._queue(
            "Results",
            f"functions-results-{name}",
            consumer_timeout_seconds=settings.recorder_timeout_seconds,
            max_receives=RESULTS_MAX_RECEIVES,
        )
        # One message per item of POST .../batch; a dead letter is an item never submitted.
        self.batch_queue = self._queue(
            "Batch",
            f"functions-batch-{name}",
            consumer_timeout_seconds=settings.batch_timeout_seconds,
            max_receives=BATCH_MAX_RECEIVES,
        )

    def _user_function_role(self) -> None:
        """The one execution role of every user function: it may append to user functions' log
        groups and let Lambda send async destination records to the results queue (Lambda sends
        them with the function's execution role; user code itself cannot, see
        NOT_FROM_FUNCTION_CODE), nothing else, and a permissions boundary holds it there even if
        a policy were ever attached to it. One role for all means a function could append to
        another user function's group (never read it); per-organization roles would be the next
        step."""
        write_logs = iam.PolicyStatement(
            actions=["logs:CreateLogStream", "logs:PutLogEvents"],
            resources=[self.user_log_streams_arn],
        )
        send_results = iam.PolicyStatement(
            actions=["sqs:SendMessage"], resources=[self.results_queue.queue_arn], conditions=NOT_FROM_FUNCTION_CODE
        )
        self.user_boundary = iam.ManagedPolicy(
            self,
            "UserFunctionBoundary",
            description=f"Permissions boundary of user functions ({names.user_function_prefix(self.config.name)}*)",
            statements=[write_logs, send_results],
        )
        self.user_role = iam.Role(
            self,
            "UserFunctionRole",
            assumed_by=iam.ServicePrincipal(LAMBDA_SERVICE),
            description=f"Execution role of every user function ({names.user_function_prefix(self.config.name)}*)",
            permissions_boundary=self.user_boundary,
            inline_policies={
                "WriteOwnLogs": iam.PolicyDocument(statements=[write_logs]),
                "SendAsyncResults": iam.PolicyDocument(statements=[send_results]),
            },
        )
        reason = (
            "User functions' logs: the deployer creates each /aws/lambda/ufn-{env}-{org}-{fid} group; "
            "this role (shared by all user functions) can only append log events to groups with that prefix."
        )
        log_streams = finding(self, self.user_log_streams_arn)
        acknowledge_wildcards(self.user_role, reason, log_streams)
        acknowledge_wildcards(self.user_boundary, reason, log_streams)

    # --- functions ------------------------------------------------------------------------------
    def _functions(self) -> None:
        self._function = FunctionFactory(
            self,
            self.config.function_defaults,
            GROUP,
            names.platform_function_name,
            lambda short: f"functions-{short}",
        )
        self.api_fn = self._api_function()
        self.deployer_fn = self._deployer_function()
        self.authorizer_fn = self._function(
            "AuthorizerFunction",
            names.AUTHORIZER,
            "Functions API authorizer: org API keys (one GetItem per key, cached by API Gateway)",
            environment={names.ENV_TABLE: self.table.table_name},
            timeout=Duration.seconds(5),
        )
        self.recorder_fn = self._recorder_function()
        self.batch_fn = self._batch_function()

    def _invoking_environment(self) -> dict[str, str]:
        """What every function that reads or writes invocations needs."""
        return {
            names.ENV_TABLE: self.table.table_name,
            names.ENV_CODE_BUCKET: self.bucket.bucket_name,
            names.ENV_PLATFORM_ENV: self.config.name,
            names.ENV_INVOCATION_RETENTION_DAYS: str(self.settings.invocation_retention_days),
        }

    def _managing_environment(self) -> dict[str, str]:
        """What the API and the deployer, which both validate and apply function settings, need."""
        return {
            **self._invoking_environment(),
            names.ENV_SECRET_PREFIX: self.secret_prefix,
            names.ENV_MAX_MEMORY_MB: str(self.settings.max_memory_mb),
            names.ENV_MAX_TIMEOUT_SECONDS: str(self.settings.max_timeout_seconds),
        }

    def _api_function(self) -> PythonFunction:
        settings = self.settings
        return self._function(
            "ApiFunction",
            names.API,
            "Functions API: functions, code uploads, versions, the live alias, invocations",
            environment={
                **self._managing_environment(),
                names.ENV_CALLBACK_KEY_SECRET_ARN: self.callback_key.secret_arn,
                names.ENV_DEPLOY_QUEUE_URL: self.deploy_queue.queue_url,
                names.ENV_BATCH_QUEUE_URL: self.batch_queue.queue_url,
                names.ENV_IDEMPOTENCY_TABLE: self.idempotency_table.table_name,
                names.ENV_QUOTA_MAX_FUNCTIONS: str(settings.quota_max_functions),
                names.ENV_QUOTA_VERSIONS_KEPT: str(settings.quota_versions_kept),
                names.ENV_QUOTA_INVOCATIONS_PER_MINUTE: str(settings.quota_invocations_per_minute),
                names.ENV_QUOTA_MONTHLY_GB_SECONDS: str(settings.quota_monthly_gb_seconds),
                # PUBLIC_API_URL (the callback_url base given to functions) is added with the routes.
            },
            memory_mb=settings.api_memory_mb,
            # The HTTP API cuts every request off at 30 s, synchronous invocations included.
            timeout=Duration.seconds(29),
        )

    def _deployer_function(self) -> PythonFunction:
        settings = self.settings
        reserved = settings.user_reserved_concurrency
        fn = self._function(
            "DeployerFunction",
            names.DEPLOYER,
            "Functions deployer: the only caller of Lambda's control plane, for ufn-{env}-* only",
            environment={
                **self._managing_environment(),
                names.ENV_EXECUTION_ROLE_ARN: self.user_role.role_arn,
                names.ENV_RESERVED_CONCURRENCY: "" if reserved is None else str(reserved),
                names.ENV_ALLOWED_LAYERS: ",".join(settings.allowed_layers),
                # The environment's retention, as the platform's own functions get it.
                names.ENV_LOG_RETENTION_DAYS: str(_retention_days(self.api_fn.log_group)),
                names.ENV_QUOTA_VERSIONS_KEPT: str(settings.quota_versions_kept),
                # Every user function's async invocations end here (on success and on failure).
                names.ENV_RESULTS_QUEUE_ARN: self.results_queue.queue_arn,
                names.ENV_ASYNC_RETRY_ATTEMPTS: str(settings.user_async_retry_attempts),
                names.ENV_ASYNC_MAX_EVENT_AGE_SECONDS: str(settings.user_async_max_event_age_seconds),
            },
            memory_mb=settings.deployer_memory_mb,
            timeout=Duration.seconds(settings.deployer_timeout_seconds),
            reserved_concurrency=settings.deployer_reserved_concurrency,
        )
        fn.add_event_source(
            event_sources.SqsEventSource(
                self.deploy_queue,
                batch_size=DEPLOY_BATCH_SIZE,
                report_batch_item_failures=True,
                max_concurrency=settings.deployer_max_concurrency,
            )
        )
        return fn

    def _recorder_function(self) -> PythonFunction:
        fn = self._function(
            "RecorderFunction",
            names.RECORDER,
            "Functions recorder: async results of user functions into invocation records, callback_url POSTs",
            environment={
                **self._invoking_environment(),
                names.ENV_CALLBACK_KEY_SECRET_ARN: self.callback_key.secret_arn,
                names.ENV_RESULTS_QUEUE_URL: self.results_queue.queue_url,
            },
            timeout=Duration.seconds(self.settings.recorder_timeout_seconds),
        )
        fn.add_event_source(
            event_sources.SqsEventSource(
                self.results_queue, batch_size=QUEUE_BATCH_SIZE, report_batch_item_failures=True
            )
        )
        return fn

    def _batch_function(self) -> PythonFunction:
        fn = self._function(
            "BatchFunction",
            names.BATCH,
            "Functions batch: one queued batch item -> one async (Event) invocation of a user function",
            environment=self._invoking_environment(),
            timeout=Duration.seconds(self.settings.batch_timeout_seconds),
        )
        fn.add_event_source(
            event_sources.SqsEventSource(
                self.batch_queue,
                batch_size=QUEUE_BATCH_SIZE,
                report_batch_item_failures=True,
                max_concurrency=self.settings.batch_max_concurrency,
            )
        )
        return fn

    # --- IAM ------------------------------------------------------------------------------------
    def _objects(self, *prefixes: str) -> list[str]:
        return [self.bucket.arn_for_objects(f"{prefix}*") for prefix in prefixes]

    def _grants(self) -> None:
        self._grant_api()
        self._grant_deployer()
        self._grant_authorizer()
        self._grant_recorder()
        self._grant_batch()

    def _grant_api(self) -> None:
        fn = self.api_fn
        # TransactWriteItems (a change with its audit row) is authorized per item by these actions.
        fn.allow([*ITEM_ACTIONS, "dynamodb:ConditionCheckItem"], self.table.table_arn)
        fn.allow(["dynamodb:Query"], self.table.table_arn, self.gsi1_arn)
        # Powertools idempotency: get, put (in progress), update (completed), delete (on failure).
        fn.allow(ITEM_ACTIONS, self.idempotency_table.table_arn)
        # PutObject signs the presigned POST (uploads/), stores zips built from inline source
        # (code/) and async payloads over the inline limit (inputs/, read back by GET .../input).
        fn.allow(
            ["s3:PutObject", "s3:GetObject"],
            *self._objects(names.UPLOADS_PREFIX, names.CODE_PREFIX, names.INPUTS_PREFIX),
            because="The API presigns uploads/{org}/{fid}/{upload id}.zip, stores inline sources as "
            "code/{org}/{fid}/{sha256}.zip and async payloads over Lambda's inline limit as "
            "inputs/{org}/{iid}.json, and reads them back (inputs by the invocation's input callback), "
            "for whichever function or invocation a request names.",
        )
        # Results over the inline limit: written by synchronous runs (the recorder writes async
        # ones), read back with one invocation record.
        fn.allow(
            ["s3:GetObject", "s3:PutObject"],
            *self._objects(names.RESULTS_PREFIX),
            because="The API stores results over the inline limit of synchronous runs as "
            "results/{org}/{iid}.json and reads them back, for whichever invocation a request names.",
        )
        fn.allow(["sqs:SendMessage"], self.deploy_queue.queue_arn, self.batch_queue.queue_arn)
        fn.allow(["secretsmanager:GetSecretValue"], self.callback_key.secret_arn)
        # GET .../invocations/{iid}/logs: the invocation's lines, filtered by its request id.
        fn.allow(
            ["logs:FilterLogEvents"],
            self.user_log_streams_arn,
            because="GET .../invocations/{iid}/logs reads one invocation's lines (FilterLogEvents by its "
            "request id) from its user function's log group /aws/lambda/ufn-{env}-{org}-{fid}.",
        )
        fn.allow(
            ["ssm:PutParameter", "ssm:DeleteParameter"],
            self.secrets_arn,
            because="The API writes and deletes users' secret variables, one SecureString per "
            "{org}/{fid}/{NAME} under this environment's functions/secrets/ path.",
        )
        # Data plane only: invoking user functions (any version or alias), never changing them.
        fn.allow(
            ["lambda:InvokeFunction"],
            *self.user_function_arns,
            because="POST .../invoke calls any user function of this environment (ufn-{env}-{org}-{fid}), "
            "qualified by version or alias; lambda:InvokeFunction is the only Lambda action granted.",
        )

    def _grant_deployer(self) -> None:
        """Lambda's control plane on user functions only, within the guardrails of its Deny
        statements; their log groups, code, secrets and records."""
        self._grant_deployer_lambda()
        self._grant_deployer_layers()
        self._grant_deployer_data()

    def _deny_deployer(self, sid: str, actions: list[str], **conditions: Any) -> None:
        self.deployer_fn.add_to_role_policy(
            iam.PolicyStatement(
                sid=sid, effect=iam.Effect.DENY, actions=actions, resources=["*"], conditions=conditions or None
            )
        )

    def _grant_deployer_lambda(self) -> None:
        fn = self.deployer_fn
        prefix = names.user_function_prefix(self.config.name)
        user_functions = (
            f"The deployer manages user functions only: every one is named {prefix}{{org}}-{{fid}}, and "
            "its versions and aliases are the qualified form; creating one needs the managed-by tag."
        )
        # The execution role of user functions, and only to Lambda.
        fn.allow(
            ["iam:PassRole"],
            self.user_role.role_arn,
            conditions={"StringEquals": {"iam:PassedToService": LAMBDA_SERVICE}},
        )
        fn.allow(DEPLOYER_LAMBDA_ACTIONS, *self.user_function_arns, because=user_functions)
        # New functions carry the platform's tag, or are not created.
        fn.allow(
            ["lambda:CreateFunction"],
            self.user_function_arns[0],
            conditions={"StringEquals": {f"aws:RequestTag/{names.MANAGED_BY_TAG}": names.MANAGED_BY_VALUE}},
            because=user_functions,
        )
        for key in VPC_CONDITION_KEYS:  # any one of them present means a VPC configuration
            self._deny_deployer(f"DenyVpc{key.split(':')[1]}", FUNCTION_CONFIG_ACTIONS, Null={key: "false"})
        self._deny_deployer("DenyResourcePoliciesUrlsAndEventSources", DEPLOYER_DENIED_ACTIONS)

    def _grant_deployer_layers(self) -> None:
        """The layers the environment allows (allowed_layers), or none at all."""
        layers = list(self.settings.allowed_layers)
        if not layers:
            self._deny_deployer("DenyLayers", FUNCTION_CONFIG_ACTIONS, Null={"lambda:Layer": "false"})
            return
        self._deny_deployer(
            "DenyOtherLayers", FUNCTION_CONFIG_ACTIONS, **{"ForAnyValue:StringNotLike": {"lambda:Layer": layers}}
        )
        self.deployer_fn.allow(  # using a layer needs reading it
            ["lambda:GetLayerVersion"],
            *layers,
            because="Layer versions the environment's configuration allows (allowed_layers), nothing else.",
        )

    def _grant_deployer_data(self) -> None:
        fn = self.deployer_fn
        prefix = names.user_function_prefix(self.config.name)
        # Each user function's log group, created before the function with the environment's retention.
        fn.allow(
            ["logs:CreateLogGroup", "logs:PutRetentionPolicy", "logs:TagResource"],
            self.user_log_group_arn,
            because=f"Each user function's log group /aws/lambda/{prefix}{{org}}-{{fid}} is created by the "
            "deployer with the environment's retention before the function itself.",
        )

        code = (
            "The deployer reads and removes uploads/{org}/{fid}/{id}.zip and keeps validated zips as "
            "code/{org}/{fid}/{sha256}.zip, for whichever function a deploy message names."
        )
        fn.allow(["s3:GetObject", "s3:DeleteObject"], *self._objects(names.UPLOADS_PREFIX), because=code)
        # GetObject on code/ also lets Lambda fetch the zip on CreateFunction/UpdateFunctionCode.
        fn.allow(["s3:GetObject", "s3:PutObject", "s3:DeleteObject"], *self._objects(names.CODE_PREFIX), because=code)
        fn.allow(
            ["s3:ListBucket"],
            self.bucket.bucket_arn,
            conditions={"StringLike": {"s3:prefix": [f"{names.CODE_PREFIX}*"]}},
        )

        # Users' secret variables: read to set them on the function (SecureStrings under the
        # aws/ssm key, whose policy lets SSM decrypt for this account), deleted with the function.
        fn.allow(
            ["ssm:GetParameter", "ssm:GetParameters", "ssm:DeleteParameter", "ssm:DeleteParameters"],
            self.secrets_arn,
            because="The deployer reads users' secret variables ({org}/{fid}/{NAME}) to set them on the "
            "function and deletes them with it, only under this environment's functions/secrets/.",
        )

        # BatchWriteItem: a deleted function's version items go in batches of 25 (deletes only).
        fn.allow(
            [
                "dynamodb:GetItem",
                "dynamodb:PutItem",
                "dynamodb:UpdateItem",
                "dynamodb:DeleteItem",
                "dynamodb:BatchWriteItem",
            ],
            self.table.table_arn,
        )
        fn.allow(["dynamodb:Query"], self.table.table_arn, self.gsi1_arn)

    def _grant_authorizer(self) -> None:
        self.authorizer_fn.allow(["dynamodb:GetItem"], self.table.table_arn)

    def _grant_recorder(self) -> None:
        """Consuming the results queue (the event source's grant), plus: the request-id look-up and
        the invocation record and usage updates, large results under results/, its own delayed
        callback retries on the same queue, the key that signs callback_url POSTs, and the REPORT
        lines of user functions' logs."""
        fn = self.recorder_fn
        fn.allow(["dynamodb:GetItem", "dynamodb:PutItem", "dynamodb:UpdateItem"], self.table.table_arn)
        fn.allow(
            ["s3:GetObject", "s3:PutObject"],
            *self._objects(names.RESULTS_PREFIX),
            because="The recorder stores results over the inline limit as results/{org}/{iid}.json and "
            "reads them back for the callback_url POST, for whichever invocation a record names.",
        )
        fn.allow(["sqs:SendMessage"], self.results_queue.queue_arn)
        fn.allow(["secretsmanager:GetSecretValue"], self.callback_key.secret_arn)
        # Destination records carry no duration: the invocation's REPORT line has the billed one.
        fn.allow(
            ["logs:FilterLogEvents"],
            self.user_log_streams_arn,
            because="The recorder reads one invocation's REPORT line (billed duration, for the GB-second "
            "quota) from its user function's log group /aws/lambda/ufn-{env}-{org}-{fid}.",
        )

    def _grant_batch(self) -> None:
        """Consuming the batch queue (the event source's grant), plus: Event invocations of user
        functions (data plane only), the invocation records, and inputs/ for large items."""
        fn = self.batch_fn
        fn.allow(
            ["lambda:InvokeFunction"],
            *self.user_function_arns,
            because="Each batch item is an Event invocation of one user function of this environment "
            "(ufn-{env}-{org}-{fid}, qualified by version or alias); lambda:InvokeFunction is the "
            "only Lambda action granted.",
        )
        fn.allow(["dynamodb:GetItem", "dynamodb:PutItem", "dynamodb:UpdateItem"], self.table.table_arn)
        fn.allow(
            ["s3:GetObject", "s3:PutObject"],
            *self._objects(names.INPUTS_PREFIX),
            because="A batch item over Lambda's inline Event limit travels as inputs/{org}/{iid}.json, "
            "for whichever invocation the item names.",
        )

    # --- API ------------------------------------------------------------------------------------
    def _api(self) -> None:
        """The HTTP API, every route behind the key authorizer unless it says otherwise."""
        self.authorizer = authorizers.HttpLambdaAuthorizer(
            "KeyAuthorizer",
            self.authorizer_fn.function,
            authorizer_name=names.platform_function_name(names.AUTHORIZER, self.config.name),
            response_types=[authorizers.HttpLambdaResponseType.SIMPLE],
            identity_source=["$request.header.Authorization"],
            # A revoked key keeps working for at most these 5 minutes.
            results_cache_ttl=Duration.minutes(5),
        )
        self.http = HttpEndpoint(
            self,
            "Http",
            log_policy=self.config,
            api_name=names.api_name(self.config.name),
            description="Functions: user-defined functions per organization",
            # Every route is authorized unless it says otherwise (only the API description does).
            default_authorizer=self.authorizer,
            rate_limit=50,
            burst_limit=100,
        )

    def _routes(self) -> None:
        integration = integrations.HttpLambdaIntegration(
            "ApiIntegration",
            self.api_fn.function,
            payload_format_version=apigw.PayloadFormatVersion.VERSION_2_0,
            timeout=Duration.seconds(29),
        )
        self.http.api.add_routes(
            path="/v1/orgs/{org}/{proxy+}", methods=[apigw.HttpMethod.ANY], integration=integration
        )
        self._public_route(
            "/v1/openapi.json",
            apigw.HttpMethod.GET,
            integration,
            because="GET /v1/openapi.json is the public, static description of this API (no data, no "
            "side effects); every /v1/orgs/... route is behind the key authorizer.",
        )
        self._public_route(
            "/v1/callback/{proxy+}",
            apigw.HttpMethod.ANY,
            integration,
            because="/v1/callback/... is called by running user functions, which hold no API key: the API "
            "handler verifies a per-invocation token (HMAC-SHA256 with the callback secret; org, "
            "function, invocation, scopes and expiry in its claims) on every request instead.",
        )
        # The callback_url base handed to functions: this API's own URL.
        self.api_fn.add_environment(names.ENV_PUBLIC_API_URL, self.http.url)

    def _public_route(
        self, path: str, method: apigw.HttpMethod, integration: apigw.HttpRouteIntegration, *, because: str
    ) -> None:
        """A route without the key authorizer; `because` says who may call it and why that is safe."""
        (route,) = self.http.api.add_routes(
            path=path, methods=[method], integration=integration, authorizer=apigw.HttpNoneAuthorizer()
        )
        acknowledge(route, "AwsSolutions-APIG4", because)

    def _outputs(self) -> None:
        CfnOutput(self, names.OUTPUT_API_URL, value=self.http.url)
        CfnOutput(self, names.OUTPUT_TABLE, value=self.table.table_name)
        CfnOutput(self, names.OUTPUT_CODE_BUCKET, value=self.bucket.bucket_name)


def _retention_days(log_group: logs.LogGroup) -> int:
    """Days of a log group's retention as the template states them (RetentionDays members are names
    in Python; only the rendered CfnLogGroup carries the number)."""
    cfn = log_group.node.default_child
    assert isinstance(cfn, logs.CfnLogGroup) and isinstance(cfn.retention_in_days, int | float)
    return int(cfn.retention_in_days)
