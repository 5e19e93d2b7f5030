"""The collections functions' settings, read from the environment once per container.

Every value is read as text and nothing here can fail when the settings are read: a required
value is checked where it is needed (`need`), so a function that never needs it still starts and
one that does fails with the same MissingSetting as before. Integer settings (image limits, the
analysis budget, search tuning, URL lifetimes) are parsed where they are used, so that a bad value
fails only the requests that read it; the SDK providers and the database connection read theirs
when they are built, which is already once per container.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

from lambdas.collections import names
from lambdas.common.containers import per_container
from lambdas.common.settings import env_str, need


@dataclass(frozen=True)
class Settings:
    event_bus_name: str
    parameter_prefix_path: str
    derived_bucket_name: str
    allow_local_providers: bool
    failure_queue_url: str | None
    cross_user_principals: frozenset[str]

    @classmethod
    def from_env(cls) -> Settings:
        return cls(
            event_bus_name=env_str(names.ENV_EVENT_BUS_NAME),
            parameter_prefix_path=env_str(names.ENV_PARAMETER_PREFIX),
            derived_bucket_name=env_str(names.ENV_DERIVED_BUCKET),
            # Unset means allowed (local runs); the stacks set "false" in prod.
            allow_local_providers=_raw(names.ENV_ALLOW_LOCAL_PROVIDERS, "true").lower() == "true",
            failure_queue_url=_raw(names.ENV_FAILURE_QUEUE_URL, "") or None,
            cross_user_principals=frozenset(
                p.strip() for p in _raw(names.ENV_CROSS_USER_PRINCIPALS, "").split(",") if p.strip()
            ),
        )

    def event_bus(self) -> str:
        return need(self.event_bus_name, names.ENV_EVENT_BUS_NAME)

    def parameter_prefix(self) -> str:
        return need(self.parameter_prefix_path, names.ENV_PARAMETER_PREFIX).rstrip("/")

    def derived_bucket(self) -> str:
        return need(self.derived_bucket_name, names.ENV_DERIVED_BUCKET)


def _raw(name: str, default: str) -> str:
    """The value as it is set (no stripping), as these three were always read."""
    return os.environ.get(name, default)


@per_container
def settings() -> Settings:
    return Settings.from_env()
