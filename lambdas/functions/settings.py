"""The Functions handlers' configuration: read from the environment once per container."""

from __future__ import annotations

import os
from dataclasses import dataclass
from functools import cache

from lambdas.common.settings import MissingSetting, env_int, require_env
from lambdas.functions import names


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

    @classmethod
    def from_env(cls) -> Settings:
        reserved = os.environ.get(names.ENV_RESERVED_CONCURRENCY, "").strip()
        return cls(
            table=require_env(names.ENV_TABLE),
            code_bucket=os.environ.get(names.ENV_CODE_BUCKET, "").strip(),
            deploy_queue_url=os.environ.get(names.ENV_DEPLOY_QUEUE_URL, "").strip(),
            env=os.environ.get(names.ENV_PLATFORM_ENV, "dev").strip() or "dev",
            execution_role_arn=os.environ.get(names.ENV_EXECUTION_ROLE_ARN, "").strip(),
            secret_prefix=os.environ.get(names.ENV_SECRET_PREFIX, "").strip().rstrip("/"),
            max_memory_mb=env_int(names.ENV_MAX_MEMORY_MB, 1024),
            max_timeout_seconds=env_int(names.ENV_MAX_TIMEOUT_SECONDS, 300),
            reserved_concurrency=int(reserved) if reserved else None,
            allowed_layers=tuple(
                a.strip() for a in os.environ.get(names.ENV_ALLOWED_LAYERS, "").split(",") if a.strip()
            ),
            log_retention_days=env_int(names.ENV_LOG_RETENTION_DAYS, 7),
        )

    def need(self, value: str, variable: str) -> str:
        if not value:
            raise MissingSetting(f"environment variable {variable} is not set")
        return value


@cache
def settings() -> Settings:
    return Settings.from_env()


def clear() -> None:
    """Forget the cached settings (tests change the environment between cases)."""
    settings.cache_clear()
