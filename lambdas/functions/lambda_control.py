"""Lambda's control plane for user functions: create or update `$LATEST`, publish, alias, delete.

Only the deployer uses this. Every call names a `ufn-{env}-...` function (the deployer's IAM
policy allows nothing else), passes the one execution role, no VPC, no layers, and the platform's
tags; each step waits until Lambda has finished applying the previous one.
"""

from __future__ import annotations

import base64
import contextlib
from dataclasses import dataclass
from typing import Any

from lambdas.common.aws import client
from lambdas.functions import names
from lambdas.functions.code import CodeError

_WAIT = {"Delay": 1, "MaxAttempts": 120}


@dataclass(frozen=True)
class UserFunctionSpec:
    name: str
    org: str
    fid: str
    handler: str
    memory_mb: int
    timeout_seconds: int
    environment: dict[str, str]
    bucket: str
    key: str
    sha256_hex: str

    @property
    def lambda_sha256(self) -> str:
        return base64.b64encode(bytes.fromhex(self.sha256_hex)).decode()


def _b64(hex_digest: str | None) -> str | None:
    return base64.b64encode(bytes.fromhex(hex_digest)).decode() if hex_digest else None


@dataclass(frozen=True)
class AsyncConfig:
    """How Lambda handles a user function's asynchronous invocations: its own retries and maximum
    event age, then the results queue (on success and on failure) that the recorder reads."""

    retry_attempts: int
    max_event_age_seconds: int
    destination_arn: str


@dataclass(frozen=True)
class LambdaControl:
    env: str
    role_arn: str
    reserved_concurrency: int | None
    log_retention_days: int
    async_config: AsyncConfig | None = None

    def configure_async(self, name: str, qualifier: str) -> None:
        """Event invoke configuration is per qualifier: `$LATEST`, each version, the alias."""
        if self.async_config is None:
            return
        target = {"Destination": self.async_config.destination_arn}
        self.lam.put_function_event_invoke_config(
            FunctionName=name,
            Qualifier=qualifier,
            MaximumRetryAttempts=self.async_config.retry_attempts,
            MaximumEventAgeInSeconds=self.async_config.max_event_age_seconds,
            DestinationConfig={"OnSuccess": target, "OnFailure": target},
        )

    @property
    def lam(self) -> Any:
        return client("lambda")

    def _configuration(self, name: str) -> dict[str, Any] | None:
        try:
            return dict(self.lam.get_function_configuration(FunctionName=name))
        except self.lam.exceptions.ResourceNotFoundException:
            return None

    def _log_group(self, name: str) -> None:
        """Created by us (with the environment's retention) rather than by Lambda on first write,
        which would keep logs forever and needs logs:CreateLogGroup in the execution role."""
        logs = client("logs")
        group = names.user_log_group(name)
        with contextlib.suppress(logs.exceptions.ResourceAlreadyExistsException):
            logs.create_log_group(logGroupName=group, tags={names.MANAGED_BY_TAG: names.MANAGED_BY_VALUE})
        logs.put_retention_policy(logGroupName=group, retentionInDays=self.log_retention_days)

    def apply(self, spec: UserFunctionSpec) -> None:
        """Make `$LATEST` exactly `spec` (code and configuration), then wait until it is ready."""
        settings: dict[str, Any] = {
            "Role": self.role_arn,
            "Handler": spec.handler,
            "Runtime": names.USER_RUNTIME,
            "MemorySize": spec.memory_mb,
            "Timeout": spec.timeout_seconds,
            "Environment": {"Variables": spec.environment},
            "Layers": [],
        }
        current = self._configuration(spec.name)
        if current is None:
            self._log_group(spec.name)
            self.lam.create_function(
                FunctionName=spec.name,
                Code={"S3Bucket": spec.bucket, "S3Key": spec.key},
                Architectures=[names.USER_ARCHITECTURE],
                PackageType="Zip",
                Publish=False,
                Description=f"User function {spec.fid} of {spec.org}",
                Tags={
                    names.MANAGED_BY_TAG: names.MANAGED_BY_VALUE,
                    names.ENV_TAG: self.env,
                    names.ORG_TAG: spec.org,
                    names.FUNCTION_ID_TAG: spec.fid,
                },
                **settings,
            )
            self.lam.get_waiter("function_active_v2").wait(FunctionName=spec.name, WaiterConfig=_WAIT)
        else:
            if current.get("CodeSha256") != spec.lambda_sha256:
                self.lam.update_function_code(FunctionName=spec.name, S3Bucket=spec.bucket, S3Key=spec.key)
                self.lam.get_waiter("function_updated_v2").wait(FunctionName=spec.name, WaiterConfig=_WAIT)
            have = (current.get("Environment") or {}).get("Variables") or {}
            if (
                current.get("Handler") != spec.handler
                or current.get("MemorySize") != spec.memory_mb
                or current.get("Timeout") != spec.timeout_seconds
                or have != spec.environment
                or current.get("Role") != self.role_arn
            ):
                self.lam.update_function_configuration(FunctionName=spec.name, **settings)
                self.lam.get_waiter("function_updated_v2").wait(FunctionName=spec.name, WaiterConfig=_WAIT)
        if self.reserved_concurrency is not None:
            self.lam.put_function_concurrency(
                FunctionName=spec.name, ReservedConcurrentExecutions=self.reserved_concurrency
            )
        self.configure_async(spec.name, "$LATEST")

    def publish(self, name: str, config: dict[str, Any], description: str) -> str:
        """Publish `$LATEST` as a version, only if it still holds the code and settings of
        `config` (a version snapshot); returns Lambda's version number. Lambda answers an
        unchanged `$LATEST` with the version it already published, so a retry publishes nothing new."""
        current = self._configuration(name)
        if current is None:
            raise CodeError("the function has no deployed draft to publish")
        expected = _b64(config.get("code_sha256"))
        if (
            current.get("CodeSha256") != expected
            or current.get("Handler") != config["handler"]
            or current.get("MemorySize") != config["memory_mb"]
            or current.get("Timeout") != config["timeout_seconds"]
        ):
            raise CodeError("the draft changed before this version was published: publish again")
        response = self.lam.publish_version(FunctionName=name, CodeSha256=expected, Description=description)
        version = str(response["Version"])
        self.configure_async(name, version)
        return version

    def point_alias(self, name: str, alias: str, version: str, canary: tuple[str, float] | None) -> None:
        routing = {"AdditionalVersionWeights": {canary[0]: canary[1]}} if canary else {"AdditionalVersionWeights": {}}
        try:
            self.lam.update_alias(FunctionName=name, Name=alias, FunctionVersion=version, RoutingConfig=routing)
        except self.lam.exceptions.ResourceNotFoundException:
            self.lam.create_alias(FunctionName=name, Name=alias, FunctionVersion=version, RoutingConfig=routing)
        self.configure_async(name, alias)

    def delete_version(self, name: str, version: str) -> None:
        with contextlib.suppress(self.lam.exceptions.ResourceNotFoundException):
            self.lam.delete_function(FunctionName=name, Qualifier=version)

    def delete(self, name: str) -> None:
        """Deleting the function deletes its versions and aliases with it. Its log group stays
        until its retention expires (logs of what ran are worth keeping)."""
        with contextlib.suppress(self.lam.exceptions.ResourceNotFoundException):
            self.lam.delete_function(FunctionName=name)
