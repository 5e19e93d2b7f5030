"""Reading a handler's configuration from its environment, once, with a clear error."""

from __future__ import annotations

import os


class MissingSetting(RuntimeError):
    pass


def env_str(name: str) -> str:
    """The variable's value without surrounding white space; "" when it is not set."""
    return os.environ.get(name, "").strip()


def need(value: str, name: str) -> str:
    """A setting read as optional but required by what asks for it now: the value, or
    MissingSetting naming the variable (a function that never needs it still starts)."""
    if not value:
        raise MissingSetting(f"environment variable {name} is not set")
    return value


def require_env(name: str) -> str:
    return need(env_str(name), name)


def env_int(name: str, default: int) -> int:
    raw = os.environ.get(name, "").strip()
    if not raw:
        return default
    try:
        return int(raw)
    except ValueError:
        raise MissingSetting(f"environment variable {name} must be an integer, got {raw!r}") from None
