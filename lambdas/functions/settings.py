"""The Functions handlers' configuration: read from the environment once per container."""

from __future__ import annotations

from dataclasses import dataclass

from lambdas.common.containers import per_container
from lambdas.common.settings import env_int, env_str, require_env
from lambdas.functions import names


@dataclass(frozen=True)
class Quotas:
    """Per organization: a cap on functions, versions kept per function (older ones are
    garbage-collected), invocations per minute, and GB-seconds per calendar month (a hard stop)."""

    max_functions: int
    versions_kept: int
    invocations_per_minute: int
    monthly_gb_seconds: int


@dataclass(frozen=True)
class Settings:
    table: str
    code_bucket: str
    deploy_queue_url: str
    env: str
    execution_role_arn: str
    secret_prefix: str
    max_memory_mb: int
    max_timeout_seconds: int
    reserved_concurrency: int | None
    allowed_layers: tuple[str, ...]
    log_retention_days: int
    results_queue_url: str
    results_queue_arn: str
    batch_queue_url: str
    idempotency_table: str
    callback_key_secret_arn: str
    public_api_url: str
    invocation_retention_days: int
    async_retry_attempts: int
    async_max_event_age_seconds: int
    webhook_retry_base_seconds: int
    quotas: Quotas

    @classmethod
    def from_env(cls) -> Settings:
        reserved = env_str(names.ENV_RESERVED_CONCURRENCY)
        return cls(
            table=require_env(names.ENV_TABLE),
            code_bucket=env_str(names.ENV_CODE_BUCKET),
            deploy_queue_url=env_str(names.ENV_DEPLOY_QUEUE_URL),
            env=env_str(names.ENV_PLATFORM_ENV) or "dev",
            execution_role_arn=env_str(names.ENV_EXECUTION_ROLE_ARN),
            secret_prefix=env_str(names.ENV_SECRET_PREFIX).rstrip("/"),
            max_memory_mb=env_int(names.ENV_MAX_MEMORY_MB, 1024),
            max_timeout_seconds=env_int(names.ENV_MAX_TIMEOUT_SECONDS, 300),
            reserved_concurrency=int(reserved) if reserved else None,
            allowed_layers=tuple(a.strip() for a in env_str(names.ENV_ALLOWED_LAYERS).split(",") if a.strip()),
            log_retention_days=env_int(names.ENV_LOG_RETENTION_DAYS, 7),
            results_queue_url=env_str(names.ENV_RESULTS_QUEUE_URL),
            results_queue_arn=env_str(names.ENV_RESULTS_QUEUE_ARN),
            batch_queue_url=env_str(names.ENV_BATCH_QUEUE_URL),
            idempotency_table=env_str(names.ENV_IDEMPOTENCY_TABLE),
            callback_key_secret_arn=env_str(names.ENV_CALLBACK_KEY_SECRET_ARN),
            public_api_url=env_str(names.ENV_PUBLIC_API_URL).rstrip("/"),
            invocation_retention_days=env_int(names.ENV_INVOCATION_RETENTION_DAYS, 30),
            async_retry_attempts=env_int(names.ENV_ASYNC_RETRY_ATTEMPTS, 2),
            async_max_event_age_seconds=env_int(names.ENV_ASYNC_MAX_EVENT_AGE_SECONDS, 3600),
            webhook_retry_base_seconds=env_int(names.ENV_WEBHOOK_RETRY_BASE_SECONDS, 60),
            quotas=Quotas(
                max_functions=env_int(names.ENV_QUOTA_MAX_FUNCTIONS, 100),
                versions_kept=env_int(names.ENV_QUOTA_VERSIONS_KEPT, 10),
                invocations_per_minute=env_int(names.ENV_QUOTA_INVOCATIONS_PER_MINUTE, 600),
                monthly_gb_seconds=env_int(names.ENV_QUOTA_MONTHLY_GB_SECONDS, 100_000),
            ),
        )


@per_container
def settings() -> Settings:
    return Settings.from_env()
