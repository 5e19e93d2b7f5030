"""`Dashboards-{env}`: one CloudWatch dashboard per system, built from the system stacks' own resources.

Each dashboard is read off the stacks it is given, so a new function, API or queue appears without
a change here: per function invocations, errors, throttles and p99 duration; per HTTP API 4xx, 5xx
and p99 latency (per WebSocket API its client/execution/integration errors and p99 integration
latency); the depth and oldest-message age of every queue; RDS CPU, connections and free storage.

Functions, queues and the database have explicit names, so their metrics need only those strings.
API Gateway v2 metrics are keyed by `ApiId` only (no API name dimension, so no search expression
can find an API by name): the dashboard takes the IDs as tokens, i.e. CloudFormation exports of the
system stacks imported here. An API ID lives as long as the API, and nothing depends on this stack,
so the only cost is that a system stack's API cannot be deleted while a dashboard still shows it.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from aws_cdk import Duration, Stack, Token
from aws_cdk import aws_apigatewayv2 as apigw
from aws_cdk import aws_cloudwatch as cloudwatch
from aws_cdk import aws_lambda as lambda_
from aws_cdk import aws_rds as rds
from aws_cdk import aws_sqs as sqs
from constructs import Construct

from infrastructure.config import EnvConfig

WIDTH = 24  # a dashboard row
GRAPH = 8  # three graphs per row
HEIGHT = 6


def _names(stacks: Sequence[Stack], cfn_type: type, attribute: str) -> list[str]:
    """The plain names (`function_name`, `queue_name`, ...) of one resource type in these stacks."""
    found = []
    for stack in stacks:
        for construct in stack.node.find_all():
            if isinstance(construct, cfn_type):
                value = getattr(construct, attribute)
                if isinstance(value, str) and not Token.is_unresolved(value):
                    found.append(value)
    return sorted(found)


def _apis(stacks: Sequence[Stack]) -> list[apigw.CfnApi]:
    apis = [c for stack in stacks for c in stack.node.find_all() if isinstance(c, apigw.CfnApi)]
    return sorted(apis, key=lambda api: str(api.name))


class DashboardsStack(Stack):
    def __init__(
        self,
        scope: Construct,
        construct_id: str,
        *,
        config: EnvConfig,
        systems: Mapping[str, Sequence[Stack]],
        **kwargs: object,
    ) -> None:
        super().__init__(scope, construct_id, **kwargs)  # type: ignore[arg-type]
        self.period = Duration.minutes(config.monitoring.dashboard_period_minutes)
        self.dashboards: dict[str, cloudwatch.Dashboard] = {}
        for system, stacks in systems.items():
            dashboard = cloudwatch.Dashboard(
                self,
                f"{''.join(part.title() for part in system.split('-'))}Dashboard",
                dashboard_name=f"{system}-{config.name}",
                default_interval=Duration.hours(3),
            )
            dashboard.add_widgets(
                cloudwatch.TextWidget(
                    markdown=f"# {system} ({config.name})\nStacks: {', '.join(s.stack_name for s in stacks)}",
                    width=WIDTH,
                    height=2,
                )
            )
            functions = _names(stacks, lambda_.CfnFunction, "function_name")
            dashboard.add_widgets(*[self._function(name) for name in functions])
            if system == "functions":
                dashboard.add_widgets(*self._user_functions(f"ufn-{config.name}-"))
            apis = _apis(stacks)
            dashboard.add_widgets(*[self._api(api) for api in apis])
            queues = _names(stacks, sqs.CfnQueue, "queue_name")
            if queues:
                dashboard.add_widgets(*self._queues(queues))
            databases = _names(stacks, rds.CfnDBInstance, "db_instance_identifier")
            for database in databases:
                dashboard.add_widgets(*self._database(database))
            self.dashboards[system] = dashboard

    def _metric(
        self, namespace: str, name: str, dimensions: dict[str, str], statistic: str, label: str | None = None
    ) -> cloudwatch.Metric:
        return cloudwatch.Metric(
            namespace=namespace,
            metric_name=name,
            dimensions_map=dimensions,
            statistic=statistic,
            period=self.period,
            label=label or name,
        )

    def _function(self, name: str) -> cloudwatch.GraphWidget:
        dims = {"FunctionName": name}
        return cloudwatch.GraphWidget(
            title=name,
            left=[self._metric("AWS/Lambda", m, dims, "Sum") for m in ("Invocations", "Errors", "Throttles")],
            right=[self._metric("AWS/Lambda", "Duration", dims, "p99", "Duration p99 (ms)")],
            width=GRAPH,
            height=HEIGHT,
        )

    def _user_functions(self, prefix: str) -> list[cloudwatch.IWidget]:
        """User functions are created at run time: found by name with a search expression."""

        term = prefix.rstrip("-")  # search terms match whole tokens of the name: ufn, dev, ...

        def search(metric: str, statistic: str) -> cloudwatch.MathExpression:
            return cloudwatch.MathExpression(
                expression=f"SEARCH('{{AWS/Lambda,FunctionName}} MetricName=\"{metric}\" FunctionName={term}', "
                f"'{statistic}', {int(self.period.to_seconds())})",
                using_metrics={},
                label="",
                period=self.period,
            )

        return [
            cloudwatch.GraphWidget(
                title=f"user functions ({prefix}*): {metric}",
                left=[search(metric, statistic)],
                width=GRAPH,
                height=HEIGHT,
            )
            for metric, statistic in (("Invocations", "Sum"), ("Errors", "Sum"), ("Duration", "p99"))
        ]

    def _api(self, api: apigw.CfnApi) -> cloudwatch.GraphWidget:
        dims = {"ApiId": api.ref}
        namespace = "AWS/ApiGateway"
        if api.protocol_type == "WEBSOCKET":
            left = [
                self._metric(namespace, m, dims, "Sum")
                for m in ("ConnectCount", "MessageCount", "ClientError", "ExecutionError", "IntegrationError")
            ]
            right = [self._metric(namespace, "IntegrationLatency", dims, "p99", "IntegrationLatency p99 (ms)")]
        else:
            left = [self._metric(namespace, m, dims, "Sum") for m in ("Count", "4xx", "5xx")]
            right = [self._metric(namespace, "Latency", dims, "p99", "Latency p99 (ms)")]
        return cloudwatch.GraphWidget(
            title=f"API {api.name} ({str(api.protocol_type).lower()})",
            left=left,
            right=right,
            width=GRAPH,
            height=HEIGHT,
        )

    def _queues(self, queues: list[str]) -> list[cloudwatch.IWidget]:
        def graph(metric: str, title: str) -> cloudwatch.GraphWidget:
            return cloudwatch.GraphWidget(
                title=title,
                left=[self._metric("AWS/SQS", metric, {"QueueName": q}, "Maximum", q) for q in queues],
                width=WIDTH // 2,
                height=HEIGHT,
            )

        return [
            graph("ApproximateNumberOfMessagesVisible", "Queue depth (visible messages)"),
            graph("ApproximateAgeOfOldestMessage", "Age of oldest message (s)"),
        ]

    def _database(self, identifier: str) -> list[cloudwatch.IWidget]:
        dims = {"DBInstanceIdentifier": identifier}
        return [
            cloudwatch.GraphWidget(
                title=f"RDS {identifier}: {title}",
                left=[self._metric("AWS/RDS", metric, dims, statistic)],
                width=GRAPH,
                height=HEIGHT,
            )
            for metric, statistic, title in (
                ("CPUUtilization", "Average", "CPU (%)"),
                ("DatabaseConnections", "Maximum", "connections"),
                ("FreeStorageSpace", "Minimum", "free storage (bytes)"),
            )
        ]
