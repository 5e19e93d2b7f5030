"""Who is calling: the authorizer's verdict, and what each role may do.

A key belongs to one organization: on another organization's path every route answers 404, so a
key reveals nothing about what exists elsewhere. A key limited to one function sees only it.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from aws_lambda_powertools.event_handler.exceptions import UnauthorizedError

from lambdas.common.http import HttpError

RANK = {"invoker": 0, "developer": 1, "admin": 2}
# What each kind of action needs (the role or any above it).
READ, INVOKE, WRITE, RELEASE = "invoker", "invoker", "developer", "admin"


@dataclass(frozen=True)
class Caller:
    org: str
    role: str
    key_id: str
    function: str | None

    def may(self, needed: str) -> bool:
        return RANK.get(self.role, -1) >= RANK[needed]


def caller_from(event: dict[str, Any]) -> Caller:
    context = (event.get("requestContext", {}).get("authorizer") or {}).get("lambda") or {}
    org, role, key_id = context.get("org"), context.get("role"), context.get("key_id")
    if not org or role not in RANK or not key_id:
        # Only reachable if a route were deployed without the authorizer: refuse, never guess.
        raise UnauthorizedError("missing or invalid API key")
    return Caller(str(org), str(role), str(key_id), str(context.get("function") or "") or None)


def check(caller: Caller, org: str, needed: str, fid: str | None = None, action: str = "do this") -> None:
    if caller.org != org:
        raise HttpError(404, f"organization {org!r} not found")
    if fid is not None and caller.function and fid != caller.function:
        raise HttpError(404, "function not found")
    if not caller.may(needed):
        raise HttpError(403, f"a {caller.role} key cannot {action} (needs {needed})")
