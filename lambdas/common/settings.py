"""Reading a handler's configuration from its environment, once, with a clear error."""

from __future__ import annotations

import os


class MissingSetting(RuntimeError):
    pass


def require_env(name: str) -> str:
    value = os.environ.get(name, "").strip()
    if not value:
        raise MissingSetting(f"environment variable {name} is not set")
    return value


def env_int(name: str, default: int) -> int:
    raw = os.environ.get(name, "").strip()
    if not raw:
        return default
    try:
        return int(raw)
    except ValueError:
        raise MissingSetting(f"environment variable {name} must be an integer, got {raw!r}") from None
