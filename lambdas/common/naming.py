"""The platform's one naming scheme for what each system deploys per environment: `{name}-{env}`
for a stack or an API, `{system}-{short}-{env}` for a function (`{system}-{short}` is its Powertools
service). Each system's `names` module applies it to its own system name.

Light on purpose (standard library only): stacks import it through those `names` modules.
"""

from __future__ import annotations


def env_scoped(name: str, env: str) -> str:
    """`{name}-{env}`: one environment's copy of a stack, an API or another named resource."""
    return f"{name}-{env}"


def service_name(system: str, short: str) -> str:
    """`{system}-{short}`: a function's name without its environment."""
    return f"{system}-{short}"


def function_name(system: str, short: str, env: str) -> str:
    """`{system}-{short}-{env}`: a platform function's name (what its role, logs and alarms are named by)."""
    return env_scoped(service_name(system, short), env)
