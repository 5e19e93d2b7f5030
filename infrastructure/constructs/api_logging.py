"""Access logging for API Gateway v2 stages, one JSON line per request."""

from __future__ import annotations

import jsii
from aws_cdk import aws_apigateway as apigw_v1
from aws_cdk import aws_apigatewayv2 as apigw
from constructs import Construct

from infrastructure.constructs.storage import LogPolicy, log_group


@jsii.implements(apigw.IAccessLogSettings)
class _AccessLogSettings:
    def __init__(self, destination: apigw.IAccessLogDestination, log_format: apigw_v1.AccessLogFormat) -> None:
        self._destination = destination
        self._format = log_format

    @property
    def destination(self) -> apigw.IAccessLogDestination:
        return self._destination

    @property
    def format(self) -> apigw_v1.AccessLogFormat:
        return self._format


def http_access_logs(scope: Construct, construct_id: str, policy: LogPolicy) -> apigw.IAccessLogSettings:
    """A log group with the environment's retention, and API Gateway's standard JSON fields."""
    group = log_group(scope, construct_id, policy)
    return _AccessLogSettings(
        apigw.LogGroupLogDestination(group),
        apigw_v1.AccessLogFormat.json_with_standard_fields(
            caller=False,
            http_method=True,
            ip=True,
            protocol=True,
            request_time=True,
            resource_path=True,
            response_length=True,
            status=True,
            user=False,
        ),
    )
