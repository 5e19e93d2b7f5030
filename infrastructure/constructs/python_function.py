"""The one construct every Lambda function of the platform is built with.

Python 3.12 on ARM64, an explicit name, its own log group with the environment's retention, X-Ray
active tracing, Powertools settings, alarms on errors, throttles and duration, and, for functions
invoked asynchronously (S3, EventBridge), bounded retries with an SQS on-failure destination.
The role is explicit and starts with nothing but writing to its own log group; callers grant the
rest: the construct is grantable (`bucket.grant_read(fn)`), and `allow`, `add_to_role_policy` and
`add_environment` reach its role and function, so stacks need not reach inside. `allow` takes the
reason for a wildcard with the grant and acknowledges each wildcard finding with it. A stack builds
its functions through one `FunctionFactory`, which binds its system's package and naming.

It takes the environment's `FunctionDefaults` (`config.function_defaults`: name, log level and
retention, removal policy, memory, timeout, async retries and event age, alarm thresholds), not the
whole config; everything that differs per function is a typed argument of its own.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import jsii
from aws_cdk import Duration
from aws_cdk import aws_cloudwatch as cloudwatch
from aws_cdk import aws_ec2 as ec2
from aws_cdk import aws_iam as iam
from aws_cdk import aws_lambda as lambda_
from aws_cdk import aws_lambda_destinations as destinations
from aws_cdk import aws_sqs as sqs
from constructs import Construct

from infrastructure.config import FunctionDefaults
from infrastructure.constructs.bundling import LAMBDAS_DIR, asset_hash, bundling_options
from infrastructure.constructs.nag import acknowledge, acknowledge_wildcards, finding
from infrastructure.constructs.storage import log_group

RUNTIME = lambda_.Runtime.PYTHON_3_12


@jsii.implements(iam.IGrantable)
class PythonFunction(Construct):
    def __init__(
        self,
        scope: Construct,
        construct_id: str,
        *,
        defaults: FunctionDefaults,
        function_name: str,
        group: str,
        handler: str,
        description: str,
        service: str,
        environment: Mapping[str, str] | None = None,
        memory_mb: int | None = None,
        timeout: Duration | None = None,
        asynchronous: bool = False,
        reserved_concurrency: int | None = None,
        vpc: ec2.IVpc | None = None,
        vpc_subnets: ec2.SubnetSelection | None = None,
        security_groups: Sequence[ec2.ISecurityGroup] | None = None,
        lambdas_dir: Path = LAMBDAS_DIR,
    ) -> None:
        super().__init__(scope, construct_id)
        if not handler.startswith(f"lambdas.{group}."):
            raise ValueError(f"{function_name}: handler {handler!r} is not inside lambdas.{group}")
        timeout = timeout or Duration.seconds(defaults.timeout_seconds)

        self._log_group_and_role(defaults, function_name)
        # Wildcard findings acknowledged on the role so far, with their reasons (see `allow`).
        self._wildcard_reasons: dict[str, str] = {}
        self._failure_queue: sqs.Queue | None = None
        async_options = self._async_options(defaults, function_name) if asynchronous else {}
        # The Lambda function itself, for what takes an `IFunction` and nothing less: API Gateway
        # integrations and authorizers, S3 notifications, EventBridge targets, triggers. Grants,
        # policies and environment variables go through this construct instead.
        self.function = lambda_.Function(
            self,
            "Function",
            function_name=function_name,
            description=description,
            runtime=RUNTIME,
            architecture=lambda_.Architecture.ARM_64,
            handler=handler,
            code=_code(function_name, group, lambdas_dir),
            memory_size=memory_mb or defaults.memory_mb,
            timeout=timeout,
            role=self.role,
            log_group=self.log_group,
            tracing=lambda_.Tracing.ACTIVE,
            environment={**_powertools_environment(defaults, service), **(environment or {})},
            reserved_concurrent_executions=reserved_concurrency,
            vpc=vpc,
            vpc_subnets=vpc_subnets,
            security_groups=security_groups,
            **async_options,  # type: ignore[arg-type]
        )
        self._acknowledge_defaults()
        self._add_alarms(defaults, function_name, timeout)

    def _log_group_and_role(self, defaults: FunctionDefaults, function_name: str) -> None:
        """Its own log group, and a role that starts with nothing but writing to it."""
        self.log_group = log_group(self, "LogGroup", defaults, name=f"/aws/lambda/{function_name}")
        self.role = iam.Role(
            self,
            "Role",
            assumed_by=iam.ServicePrincipal("lambda.amazonaws.com"),
            description=f"Execution role of {function_name}",
        )
        self.log_group.grant_write(self.role)

    def _async_options(self, defaults: FunctionDefaults, function_name: str) -> dict[str, object]:
        """Bounded retries and an SQS on-failure destination, for functions invoked asynchronously."""
        queue = sqs.Queue(
            self,
            "FailureQueue",
            queue_name=f"{function_name}-failures",
            encryption=sqs.QueueEncryption.SQS_MANAGED,
            enforce_ssl=True,
            retention_period=Duration.days(14),
        )
        self._failure_queue = queue
        acknowledge(
            queue,
            "AwsSolutions-SQS3",
            f"This queue is the on-failure destination of {function_name}: it is the dead-letter queue.",
        )
        return {
            "retry_attempts": defaults.async_retry_attempts,
            "max_event_age": Duration.seconds(defaults.async_max_event_age_seconds),
            "on_failure": destinations.SqsDestination(queue),
        }

    def _acknowledge_defaults(self) -> None:
        self._acknowledge_wildcard(
            "*", "X-Ray PutTraceSegments/PutTelemetryRecords support no resource-level permissions."
        )
        acknowledge(
            self.function,
            "AwsSolutions-L1",
            "Python 3.12 is pinned on purpose: assets are built from cp312 aarch64 wheels.",
        )

    @property
    def grant_principal(self) -> iam.IPrincipal:
        """`iam.IGrantable`: grants (`table.grant_read_data(fn)`, ...) go to the function's own role."""
        return self.role

    @property
    def function_arn(self) -> str:
        return self.function.function_arn

    @property
    def function_name(self) -> str:
        return self.function.function_name

    @property
    def failure_queue(self) -> sqs.Queue:
        """The on-failure destination: every asynchronous function has one, other functions none."""
        if self._failure_queue is None:
            raise ValueError(f"{self.node.path} is not asynchronous: it has no failure queue")
        return self._failure_queue

    def add_to_role_policy(self, statement: iam.PolicyStatement) -> None:
        self.function.add_to_role_policy(statement)

    def allow(
        self,
        actions: Sequence[str],
        *resources: str,
        conditions: Mapping[str, Any] | None = None,
        because: str | None = None,
    ) -> None:
        """One Allow statement on the function's role. Each resource with a wildcard (as cdk-nag
        prints it) is acknowledged on the role with `because`, one finding at a time; a wildcard
        without a reason is refused here, before cdk-nag would refuse the synth."""
        wildcards = [f for f in (finding(self, resource) for resource in resources) if "*" in f]
        if wildcards and because is None:
            raise ValueError(f"{self.node.path}: {', '.join(wildcards)} needs a reason (because=...)")
        for wildcard in wildcards:
            known = self._wildcard_reasons.get(wildcard, because)
            if known != because:
                raise ValueError(f"{self.node.path}: {wildcard} is already acknowledged with another reason: {known!r}")
        self.add_to_role_policy(
            iam.PolicyStatement(actions=list(actions), resources=list(resources), conditions=conditions)
        )
        for wildcard in wildcards:
            self._acknowledge_wildcard(wildcard, because or "")

    def _acknowledge_wildcard(self, wildcard: str, reason: str) -> None:
        """Once per finding (a second grant on the same wildcard gives the same reason, see `allow`)."""
        if wildcard not in self._wildcard_reasons:
            self._wildcard_reasons[wildcard] = reason
            acknowledge_wildcards(self.role, reason, wildcard)

    def add_environment(self, key: str, value: str) -> None:
        self.function.add_environment(key, value)

    def add_event_source(self, source: lambda_.IEventSource) -> None:
        self.function.add_event_source(source)

    def _add_alarms(self, defaults: FunctionDefaults, function_name: str, timeout: Duration) -> None:
        """Errors and throttles at the environment's thresholds per 5 minutes; p99 duration over
        its share of the timeout for three 5-minute periods in a row."""
        period = Duration.minutes(5)
        fn = self.function
        thresholds = defaults.alarms
        at_least = cloudwatch.ComparisonOperator.GREATER_THAN_OR_EQUAL_TO_THRESHOLD
        self.alarms = [
            metric.create_alarm(
                self,
                f"{name}Alarm",
                alarm_name=f"{function_name}-{name.lower()}",
                threshold=threshold,
                evaluation_periods=evaluation_periods,
                comparison_operator=operator,
                treat_missing_data=cloudwatch.TreatMissingData.NOT_BREACHING,
            )
            for name, metric, threshold, evaluation_periods, operator in (
                ("Errors", fn.metric_errors(period=period), thresholds.errors, 1, at_least),
                ("Throttles", fn.metric_throttles(period=period), thresholds.throttles, 1, at_least),
                (
                    "Duration",
                    fn.metric_duration(period=period, statistic="p99"),
                    timeout.to_milliseconds() * thresholds.duration_fraction_of_timeout,
                    3,
                    cloudwatch.ComparisonOperator.GREATER_THAN_THRESHOLD,
                ),
            )
        ]


@dataclass(frozen=True)
class FunctionFactory:
    """The functions of one system: binds the stack, the environment's defaults, the `lambdas`
    package the functions are bundled from (`group`) and the system's naming (from its names
    module), so that each function names only what differs: construct id, short name,
    description, and PythonFunction's own options (environment, memory, timeout, ...)."""

    scope: Construct
    defaults: FunctionDefaults
    group: str
    function_name: Callable[[str, str], str]  # (short, env) -> the Lambda function's name
    service_name: Callable[[str], str]  # short -> POWERTOOLS_SERVICE_NAME

    def __call__(
        self, construct_id: str, short: str, description: str, *, module: str | None = None, **options: Any
    ) -> PythonFunction:
        """Handler `lambdas.{group}.{module}.handler`, the module being `short` unless named."""
        return PythonFunction(
            self.scope,
            construct_id,
            defaults=self.defaults,
            function_name=self.function_name(short, self.defaults.env_name),
            group=self.group,
            handler=f"lambdas.{self.group}.{module or short}.handler",
            description=description,
            service=self.service_name(short),
            **options,
        )


def _code(function_name: str, group: str, lambdas_dir: Path) -> lambda_.Code:
    """The group's asset: hashed from its sources, bundled with its requirements."""
    return lambda_.Code.from_asset(
        str(lambdas_dir),
        asset_hash=asset_hash(group, lambdas_dir),
        bundling=bundling_options(function_name, group, lambdas_dir),
    )


def _powertools_environment(defaults: FunctionDefaults, service: str) -> dict[str, str]:
    return {
        "POWERTOOLS_SERVICE_NAME": service,
        "POWERTOOLS_METRICS_NAMESPACE": f"Platform/{defaults.env_name}",
        "POWERTOOLS_LOG_LEVEL": defaults.log_level,
    }
