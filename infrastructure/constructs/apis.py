"""API Gateway v2 endpoints as every system uses them.

`HttpEndpoint`: an HTTP API with one auto-deployed `$default` stage, throttled and access-logged.
`WebSocketEndpoint`: a WebSocket API with a stage named after the environment, throttled, plus what
handlers need to reach its clients: the `@connections` endpoint for their environment and a
least-privilege grant of `execute-api:ManageConnections` on this stage's connections only.
"""

from __future__ import annotations

from aws_cdk import Aws
from aws_cdk import aws_apigatewayv2 as apigw
from constructs import Construct

from infrastructure.constructs.api_logging import http_access_logs
from infrastructure.constructs.nag import acknowledge
from infrastructure.constructs.python_function import PythonFunction
from infrastructure.constructs.storage import LogPolicy


class HttpEndpoint(Construct):
    def __init__(
        self,
        scope: Construct,
        construct_id: str,
        *,
        log_policy: LogPolicy,
        api_name: str,
        description: str,
        rate_limit: int,
        burst_limit: int,
        default_authorizer: apigw.IHttpRouteAuthorizer | None = None,
    ) -> None:
        super().__init__(scope, construct_id)
        self.api = apigw.HttpApi(
            self,
            "Api",
            api_name=api_name,
            description=description,
            default_authorizer=default_authorizer,
            create_default_stage=False,
        )
        self.stage = apigw.HttpStage(
            self,
            "Stage",
            http_api=self.api,
            auto_deploy=True,
            access_log_settings=http_access_logs(self, "AccessLogs", log_policy),
            throttle=apigw.ThrottleSettings(rate_limit=rate_limit, burst_limit=burst_limit),
        )

    @property
    def url(self) -> str:
        """`https://{api-id}.execute-api.{region}.amazonaws.com` (the `$default` stage has no path)."""
        return self.api.api_endpoint


class WebSocketEndpoint(Construct):
    def __init__(
        self,
        scope: Construct,
        construct_id: str,
        *,
        stage_name: str,
        api_name: str,
        description: str,
        rate_limit: int,
        burst_limit: int,
        logged_by: str,
    ) -> None:
        super().__init__(scope, construct_id)
        self.api = apigw.WebSocketApi(self, "Api", api_name=api_name, description=description)
        self.stage = apigw.WebSocketStage(
            self,
            "Stage",
            web_socket_api=self.api,
            stage_name=stage_name,
            auto_deploy=True,
            throttle=apigw.ThrottleSettings(rate_limit=rate_limit, burst_limit=burst_limit),
        )
        acknowledge(
            self.stage,
            "AwsSolutions-APIG1",
            "WebSocket access logging needs the account-wide API Gateway CloudWatch role, which this "
            f"app does not own; {logged_by}.",
        )

    @property
    def management_endpoint(self) -> str:
        """`{api-id}.execute-api.{region}.amazonaws.com/{stage}`: what handlers post to."""
        return f"{self.api.api_id}.execute-api.{Aws.REGION}.{Aws.URL_SUFFIX}/{self.stage.stage_name}"

    @property
    def url(self) -> str:
        """`wss://...`: what clients connect to."""
        return self.stage.url

    def grant_manage_connections(self, fn: PythonFunction, reason: str) -> None:
        """Post to (and look up, or close) any connection of this stage, nothing else.

        Built from pseudo-parameter references so the ARN, and the nag finding acknowledged with it,
        read the same whether or not the stack's account and region are known at synth time."""
        fn.allow(
            ["execute-api:ManageConnections"],
            f"arn:{Aws.PARTITION}:execute-api:{Aws.REGION}:{Aws.ACCOUNT_ID}:"
            f"{self.api.api_id}/{self.stage.stage_name}/POST/@connections/*",
            because=reason,
        )
