"""What every Functions route needs: the caller, the store, paging, loading a function the caller
may act on, queueing work for the deployer, and the audit row of a change."""

from __future__ import annotations

from typing import Any

from aws_lambda_powertools.event_handler.api_gateway import Router
from aws_lambda_powertools.event_handler.exceptions import BadRequestError

from lambdas.common.http import HttpError
from lambdas.common.settings import need
from lambdas.functions import names
from lambdas.functions.access import Caller, caller_from, check
from lambdas.functions.audit import Entry
from lambdas.functions.deploy_queue import DeployMessage, send
from lambdas.functions.settings import settings
from lambdas.functions.store import FunctionStore

ORG = "/v1/orgs/<org>"
FN = ORG + "/functions/<fid>"


def store() -> FunctionStore:
    return FunctionStore(settings().table)


def caller(router: Router) -> Caller:
    return caller_from(router.current_event.raw_event)


def page_limit(router: Router, default: int = 50) -> int:
    raw = router.current_event.get_query_string_value("limit", str(default)) or str(default)
    if not raw.isdigit() or not 1 <= int(raw) <= 100:
        raise BadRequestError("limit must be an integer from 1 to 100")
    return int(raw)


def load(org: str, ref: str, who: Caller, needed: str, action: str) -> dict[str, Any]:
    """The function `ref` (id or name) of `org`, if this caller may `action` it."""
    check(who, org, needed, action=action)
    fid = ref if names.FUNCTION_ID_PATTERN.match(ref) else store().fid_for_name(org, ref)
    fn = store().get(org, fid) if fid else None
    if fn is None or (who.function and fn["id"] != who.function):
        raise HttpError(404, f"function {ref!r} not found")
    return fn


def queue(action: str, fn: dict[str, Any], number: int) -> None:
    url = need(settings().deploy_queue_url, names.ENV_DEPLOY_QUEUE_URL)
    send(url, DeployMessage(action, fn["org"], fn["id"], number))


def audit(who: Caller, action: str, target: str, **details: Any) -> Entry:
    return Entry(org=who.org, actor=who.key_id, action=action, target=target, details=details or None)
