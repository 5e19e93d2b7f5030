"""Routes about subjects' results (run, read, edit, verify) and about the organization itself
(audit log, usage against quotas, the webhook signing key)."""

from __future__ import annotations

import json
from typing import Any

from aws_lambda_powertools.event_handler import Response
from aws_lambda_powertools.event_handler.api_gateway import Router
from aws_lambda_powertools.event_handler.exceptions import BadRequestError

from lambdas.common.http import HttpError, json_body, json_response
from lambdas.functions import access, audit, callbacks
from lambdas.functions import invoke_service as svc
from lambdas.functions import model as m
from lambdas.functions.access import check
from lambdas.functions.dynamo import BadCursor, Conflict
from lambdas.functions.invoke_routes import base_url
from lambdas.functions.invoking import InvokeRequest
from lambdas.functions.results import SUBJECT, ResultStore, result_view
from lambdas.functions.route_support import FN, ORG, caller, load, page_limit, store
from lambdas.functions.route_support import audit as audit_entry
from lambdas.functions.settings import settings

router = Router()


def results() -> ResultStore:
    return ResultStore(settings().table)


def _subject(raw: str | None) -> str:
    if not raw or not SUBJECT.match(raw):
        raise BadRequestError("subject must be 1-128 characters: letters, digits and ._:@-")
    return raw


def _version_param() -> str | None:
    raw = router.current_event.get_query_string_value("version")
    if raw is None:
        return None
    if raw != "draft" and not (raw.isdigit() and int(raw) > 0):
        raise BadRequestError('version must be a version number or "draft"')
    return raw


@router.post(FN + "/run", summary="Run the function for a subject and keep its result", tags=["results"])
def run(org: str, fid: str) -> Response[dict]:
    who = caller(router)
    fn = load(org, fid, who, access.INVOKE, "run functions")
    event = router.current_event
    subject = _subject(event.get_query_string_value("subject"))
    force = (event.get_query_string_value("force") or "").lower() == "true"
    body = json_body(router)
    qualifier = event.get_query_string_value("qualifier") or "live"
    request = InvokeRequest.parse({"qualifier": qualifier, "payload": body.get("input")}, fn, store())
    expected = str(fn["live"]["version"]) if request.label == "live" else request.label
    if not force:
        stored = results().get(org, fn["id"], subject, expected)
        if stored is not None:
            return json_response(200, {**result_view(stored), "reused": True})
    svc.validate_payload(fn, body.get("input"))
    token_iid, token = _token(fn)
    svc.keep_input(org, token_iid, svc.encode(body.get("input")))
    envelope = svc.envelope(
        fn, {"invocation_id": token_iid}, body.get("input"), base_url(), token, subject_id=subject
    )  # the seed's event: the subject, the input, and a callback token for this invocation only
    outcome = svc.run_sync(fn, request, who.key_id, mode="run", event=envelope, subject=subject, iid=token_iid)
    if outcome["status"] != "succeeded":
        return json_response(
            200, {"status": outcome["status"], "error": outcome["error"], "invocation_id": outcome["invocation_id"]}
        )
    version = outcome["executed_version"]
    now = m.now_iso()
    record = {
        "org": org,
        "function_id": fn["id"],
        "subject": subject,
        "version": version,
        "invocation_id": outcome["invocation_id"],
        "original_result": outcome["result"],
        "updated_result": outcome["result"],
        "is_edited": False,
        "is_verified": False,
        "created_at": now,
        "updated_at": now,
        "updated_by": who.key_id,
    }
    action = "result.rerun" if force else "result.create"
    try:
        results().put_new(record, audit_entry(who, action, f"{fn['id']}/{subject}", version=version), replace=force)
    except Conflict:
        stored = results().get(org, fn["id"], subject, version)  # a concurrent run stored it first
        return json_response(200, {**result_view(stored or record), "reused": True})
    return json_response(200, {**result_view(record), "reused": False, "duration_ms": outcome["duration_ms"]})


def _token(fn: dict[str, Any]) -> tuple[str, str]:
    from lambdas.functions.invocations import new_invocation_id

    iid = new_invocation_id()
    token, _claims = callbacks.mint(fn["org"], fn["id"], iid, timeout_seconds=int(fn["timeout_seconds"]))
    return iid, token


def _stored(org: str, fid: str, subject: str, needed: str, action: str) -> tuple[dict[str, Any], dict[str, Any]]:
    who = caller(router)
    fn = load(org, fid, who, needed, action)
    found = results().get(org, fn["id"], _subject(subject), _version_param())
    if found is None:
        raise HttpError(404, f"no result for subject {subject!r}")
    return fn, found


@router.get(FN + "/results/<subject>", summary="A subject's result (latest version unless ?version=)", tags=["results"])
def get_result(org: str, fid: str, subject: str) -> Response[dict]:
    _fn, found = _stored(org, fid, subject, access.READ, "read results")
    return json_response(200, result_view(found))


@router.put(FN + "/results/<subject>", summary="Edit or verify a result (the original never changes)", tags=["results"])
def put_result(org: str, fid: str, subject: str) -> Response[dict]:
    who = caller(router)
    fn, found = _stored(org, fid, subject, access.WRITE, "edit results")
    body = json_body(router, required=True)
    changes: dict[str, Any] = {"updated_by": who.key_id, "updated_at": m.now_iso()}
    actions = []
    if "updated_result" in body:
        if len(json.dumps(body["updated_result"])) > 256 * 1024:
            raise HttpError(413, "updated_result is limited to 256 KB")
        changes["updated_result"] = body["updated_result"]
        changes["is_edited"] = body["updated_result"] != found["original_result"]
        actions.append("result.edit")
    if "is_verified" in body:
        if not isinstance(body["is_verified"], bool):
            raise BadRequestError("is_verified must be true or false")
        changes["is_verified"] = body["is_verified"]
        changes["verified_by"] = who.key_id if body["is_verified"] else None
        changes["verified_at"] = changes["updated_at"] if body["is_verified"] else None
        actions.append("result.verify" if body["is_verified"] else "result.unverify")
    if not actions:
        raise BadRequestError("give updated_result and/or is_verified")
    entry = audit_entry(who, "+".join(actions), f"{fn['id']}/{found['subject']}", version=found["version"])
    try:
        updated = results().edit(found, changes, entry)
    except Conflict as exc:
        raise HttpError(409, str(exc)) from None
    return json_response(200, result_view(updated))


@router.delete(FN + "/results/<subject>", summary="Delete a result", tags=["results"])
def delete_result(org: str, fid: str, subject: str) -> Response[dict]:
    who = caller(router)
    fn, found = _stored(org, fid, subject, access.WRITE, "delete results")
    results().remove(
        found, audit_entry(who, "result.delete", f"{fn['id']}/{found['subject']}", version=found["version"])
    )
    return json_response(200, {"deleted": True, "subject": found["subject"], "version": found["version"]})


# --- the organization -------------------------------------------------------------------------------------
def _whole_org(org: str, needed: str, action: str) -> None:
    """Org-wide reads are for keys of the whole org, not keys limited to one function."""
    who = caller(router)
    check(who, org, needed, action=action)
    if who.function:
        raise HttpError(403, f"a key limited to one function cannot {action}")


@router.get(ORG + "/audit", summary="Every change in the organization, newest first (admin)", tags=["org"])
def audit_log(org: str) -> Response[dict]:
    _whole_org(org, access.RELEASE, "read the audit log")
    cursor = router.current_event.get_query_string_value("cursor")
    try:
        entries, next_cursor = audit.list_entries(settings().table, org, page_limit(router), cursor)
    except BadCursor as exc:
        raise BadRequestError(str(exc)) from None
    return json_response(200, {"entries": entries, "next_cursor": next_cursor})


@router.get(ORG + "/usage", summary="Usage against the organization's quotas", tags=["org"])
def usage(org: str) -> Response[dict]:
    check(caller(router), org, access.READ, action="read usage")
    return json_response(200, svc.usage().view(org, store().count(org)))


@router.get(
    ORG + "/webhook-secret", summary="The key that signs this organization's callback_url POSTs (admin)", tags=["org"]
)
def webhook_secret(org: str) -> Response[dict]:
    _whole_org(org, access.RELEASE, "read the webhook key")
    return json_response(
        200,
        {
            "key": callbacks.webhook_key(org),
            "header": callbacks.SIGNATURE_HEADER,
            "format": "t={unix seconds},v1={hex HMAC-SHA256 of '{t}.{raw body}' with bytes.fromhex(key)}",
        },
    )
