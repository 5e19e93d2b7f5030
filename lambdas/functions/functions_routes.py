"""Function registry routes: create, list, read, change and delete functions; code uploads;
immutable versions; the live alias with its canary and rollback.

Changes are recorded in DynamoDB (each with its audit row, in the same transaction) and applied
by the deployer through the FIFO queue; nothing here calls Lambda's control plane.
"""

from __future__ import annotations

import contextlib
import uuid
from typing import Any

from aws_lambda_powertools import Logger
from aws_lambda_powertools.event_handler import Response
from aws_lambda_powertools.event_handler.api_gateway import Router
from aws_lambda_powertools.event_handler.exceptions import BadRequestError

from lambdas.common.aws import client
from lambdas.common.http import HttpError, json_body, json_response
from lambdas.common.settings import need
from lambdas.functions import access, names
from lambdas.functions import model as m
from lambdas.functions.access import Caller, check
from lambdas.functions.code import MAX_UPLOAD_BYTES, CodeError, check_source, digest, zip_source
from lambdas.functions.route_support import FN, ORG, audit, caller, load, page_limit, queue, store
from lambdas.functions.settings import settings
from lambdas.functions.store import BadCursor, Conflict, NameTaken

logger = Logger(child=True)
router = Router()
UPLOAD_URL_SECONDS = 900
# Settings the platform keeps for itself: changing them does not redeploy the draft.
PLATFORM_ONLY_FIELDS = {"description", "tags", "input_schema", "store_payloads"}
MAX_HISTORY = 20


def _secret_name(org: str, fid: str, name: str) -> str:
    prefix = need(settings().secret_prefix, names.ENV_SECRET_PREFIX)
    return f"{prefix}/{org}/{fid}/{name}"


def _store_secrets(org: str, fid: str, values: dict[str, str | None], current: dict[str, int]) -> dict[str, int]:
    """Write-only secret variables: SecureString parameters; returns name -> parameter version."""
    ssm = client("ssm")
    versions = dict(current)
    for name, value in values.items():
        if value is None:
            with contextlib.suppress(ssm.exceptions.ParameterNotFound):
                ssm.delete_parameter(Name=_secret_name(org, fid, name))
            versions.pop(name, None)
        else:
            put = ssm.put_parameter(Name=_secret_name(org, fid, name), Value=value, Type="SecureString", Overwrite=True)
            versions[name] = int(put["Version"])
    return versions


def _put_code(org: str, fid: str, body: dict[str, Any], handler: str) -> dict[str, Any]:
    """Inline source -> a zip in the code bucket; the draft's code fields for the function item."""
    source = body["source"]
    try:
        check_source(source, handler)
    except CodeError as exc:
        raise BadRequestError(str(exc)) from None
    data = zip_source(source, handler)
    code = digest(data)
    key = names.code_key(org, fid, code.sha256_hex)
    client("s3").put_object(Bucket=settings().code_bucket, Key=key, Body=data, ContentType="application/zip")
    return {"pending_code_key": key, "code_sha256": code.sha256_hex, "code_size": code.size}


def _check_environment(fn: dict[str, Any], secrets: dict[str, str | None] | None) -> None:
    secret_names = set(fn.get("secret_names", []))
    sizes = 0
    for name, value in (secrets or {}).items():
        if value is None:
            secret_names.discard(name)
        else:
            secret_names.add(name)
            sizes += len(value)
    try:
        m.check_env_size(fn.get("environment", {}), sorted(secret_names), sizes)
    except m.Invalid as exc:
        raise BadRequestError(str(exc)) from None


def _config(body: dict[str, Any], creating: bool) -> dict[str, Any]:
    s = settings()
    try:
        return m.parse_config(body, s.max_memory_mb, s.max_timeout_seconds, creating)
    except m.Invalid as exc:
        raise BadRequestError(str(exc)) from None


# --- functions ------------------------------------------------------------------------------------
@router.post(f"{ORG}/functions", summary="Create a function", tags=["functions"])
def create_function(org: str) -> Response[dict]:
    who = caller(router)
    check(who, org, access.WRITE, action="create functions")
    if who.function:
        raise HttpError(403, "this key is limited to one function and cannot create others")
    body = json_body(router, required=True)
    try:
        name = m.check_name(body.get("name"))
    except m.Invalid as exc:
        raise BadRequestError(str(exc)) from None
    config = _config(body, creating=True)
    if "code_upload_id" in body:
        raise BadRequestError(
            "code_upload_id applies to an existing function: create it, POST .../code-upload, upload, then PATCH"
        )
    fid, at = m.new_function_id(), m.now_iso()
    fn: dict[str, Any] = {
        "id": fid,
        "org": org,
        "name": name,
        "description": "",
        "handler": m.DEFAULT_HANDLER,
        "memory_mb": m.DEFAULT_MEMORY_MB,
        "timeout_seconds": min(m.DEFAULT_TIMEOUT_SECONDS, settings().max_timeout_seconds),
        "environment": {},
        "tags": [],
        "lambda_function": names.user_function_name(settings().env, org, fid),
        "status": "draft",
        "revision": 0,
        "version_counter": 0,
        "alias_seq": 0,
        "lambda_versions": {},
        "created_at": at,
        "created_by": who.key_id,
        "updated_at": at,
        "updated_by": who.key_id,
    }
    secrets = config.pop("secret_environment", None)
    fn.update(config)
    _check_environment(fn, secrets)
    if store().fid_for_name(org, name):
        raise HttpError(409, f"a function named {name!r} already exists")
    limit = settings().quotas.max_functions
    if store().count(org) >= limit:
        raise HttpError(429, f"quota reached: an organization may have at most {limit} functions")
    if "source" in body:
        fn.update(_put_code(org, fid, body, fn["handler"]))
        fn.update(status="deploying", revision=1)
    if secrets:
        fn["secret_versions"] = _store_secrets(org, fid, secrets, {})
        fn["secret_names"] = sorted(fn["secret_versions"])
    try:
        store().create(fn, audit(who, "function.create", fid, name=name, code="source" in body))
    except NameTaken:
        raise HttpError(409, f"a function named {name!r} already exists") from None
    if fn["status"] == "deploying":
        queue("deploy", fn, fn["revision"])
    logger.info("function created", extra={"org": org, "fid": fid, "function_name": name})
    return json_response(201, m.function_view(fn))


@router.get(
    f"{ORG}/functions", summary="List functions, paged with an opaque cursor; ?tag= filters", tags=["functions"]
)
def list_functions(org: str) -> Response[dict]:
    who = caller(router)
    check(who, org, access.READ, action="list functions")
    tag = router.current_event.get_query_string_value("tag")
    cursor = router.current_event.get_query_string_value("cursor")
    try:
        items, next_cursor = store().list_functions(org, page_limit(router), cursor, tag=tag, only=who.function)
    except BadCursor as exc:
        raise BadRequestError(str(exc)) from None
    return json_response(200, {"functions": [m.function_view(i) for i in items], "next_cursor": next_cursor})


@router.get(FN, summary="Show a function (by id or name) with its deployment status", tags=["functions"])
def get_function(org: str, fid: str) -> Response[dict]:
    return json_response(200, m.function_view(load(org, fid, caller(router), access.READ, "read functions")))


@router.patch(FN, summary="Change a function's code or configuration (redeploys the draft)", tags=["functions"])
def update_function(org: str, fid: str) -> Response[dict]:
    who = caller(router)
    fn = load(org, fid, who, access.WRITE, "change functions")
    body = json_body(router, required=True)
    if "name" in body and body["name"] != fn["name"]:
        raise BadRequestError("a function cannot be renamed")
    if "source" in body and "code_upload_id" in body:
        raise BadRequestError("give either source or code_upload_id, not both")
    config = _config(body, creating=False)
    secrets = config.pop("secret_environment", None)
    changes: dict[str, Any] = {k: v for k, v in config.items() if fn.get(k) != v}
    _check_environment({**fn, **changes}, secrets)
    handler = changes.get("handler", fn["handler"])
    if "source" in body:
        changes.update(_put_code(org, fn["id"], body, handler))
    elif "code_upload_id" in body:
        changes.update(_uploaded_code(org, fn["id"], body["code_upload_id"]))
    if secrets:
        versions = _store_secrets(org, fn["id"], secrets, fn.get("secret_versions", {}))
        changes.update(secret_versions=versions, secret_names=sorted(versions))
    if not changes or changes.keys() <= PLATFORM_ONLY_FIELDS:
        if changes:
            fn = store().update(
                org,
                fn["id"],
                {**changes, "updated_at": m.now_iso(), "updated_by": who.key_id},
                audit=audit(who, "function.update", fn["id"], fields=sorted(changes)),
            )
        return json_response(200, m.function_view(fn))
    has_code = bool(fn.get("pending_code_key") or changes.get("pending_code_key"))
    changes.update(
        revision=int(fn.get("revision", 0)) + 1,
        status="deploying" if has_code else "draft",
        updated_at=m.now_iso(),
        updated_by=who.key_id,
    )
    try:
        fn = store().update(
            org,
            fn["id"],
            changes,
            revision=int(fn.get("revision", 0)),
            remove=("error",),
            audit=audit(
                who, "function.update", fn["id"], fields=sorted(k for k in changes if not k.startswith("updated_"))
            ),
        )
    except Conflict:
        raise HttpError(409, "the function changed at the same time; read it again and retry") from None
    if has_code:
        queue("deploy", fn, fn["revision"])
    return json_response(200, m.function_view(fn))


def _uploaded_code(org: str, fid: str, upload_id: Any) -> dict[str, Any]:
    if not isinstance(upload_id, str) or not upload_id.isalnum() or len(upload_id) != 32:
        raise BadRequestError("code_upload_id is not a valid upload id")
    key = names.upload_key(org, fid, upload_id)
    s3 = client("s3")
    try:
        head = s3.head_object(Bucket=settings().code_bucket, Key=key)
    except s3.exceptions.ClientError as exc:
        if exc.response.get("Error", {}).get("Code") in ("404", "NoSuchKey", "NotFound"):
            raise HttpError(409, "nothing was uploaded for this upload id (or it expired)") from None
        raise
    if int(head["ContentLength"]) > MAX_UPLOAD_BYTES:
        raise HttpError(413, f"the uploaded zip exceeds {MAX_UPLOAD_BYTES} bytes (50 MB)")
    # The deployer validates the zip and computes its SHA-256 before anything is created.
    return {"pending_code_key": key, "code_sha256": None, "code_size": int(head["ContentLength"])}


@router.delete(FN, summary="Delete a function, its versions, aliases, Lambda function and code", tags=["functions"])
def delete_function(org: str, fid: str) -> Response[dict]:
    who = caller(router)
    fn = load(org, fid, who, access.WRITE, "delete functions")
    try:
        fn = store().update(
            org,
            fn["id"],
            {"status": "deleting", "updated_by": who.key_id, "updated_at": m.now_iso()},
            audit=audit(who, "function.delete", fn["id"], name=fn["name"]),
        )
    except Conflict:
        raise HttpError(409, "the function is already being deleted") from None
    queue("delete", fn, int(fn.get("revision", 0)))
    return json_response(202, {"id": fn["id"], "name": fn["name"], "status": "deleting"})


@router.post(FN + "/code-upload", summary="A presigned POST for a zip of up to 50 MB", tags=["code"])
def code_upload(org: str, fid: str) -> Response[dict]:
    fn = load(org, fid, caller(router), access.WRITE, "upload code")
    from lambdas.common.s3 import presign_client

    upload_id = uuid.uuid4().hex
    key = names.upload_key(org, fn["id"], upload_id)
    post = presign_client().generate_presigned_post(
        Bucket=settings().code_bucket,
        Key=key,
        Fields={"Content-Type": "application/zip"},
        Conditions=[
            {"key": key},
            {"Content-Type": "application/zip"},
            ["content-length-range", 1, MAX_UPLOAD_BYTES],
        ],
        ExpiresIn=UPLOAD_URL_SECONDS,
    )
    return json_response(
        201,
        {
            "upload_id": upload_id,
            "url": post["url"],
            "fields": post["fields"],
            "max_bytes": MAX_UPLOAD_BYTES,
            "expires_in": UPLOAD_URL_SECONDS,
            "then": f'PATCH {ORG.replace("<org>", org)}/functions/{fn["id"]} {{"code_upload_id": "{upload_id}"}}',
        },
    )


# --- versions ---------------------------------------------------------------------------------------
@router.post(FN + "/versions", summary="Publish the draft as an immutable version", tags=["versions"])
def publish(org: str, fid: str) -> Response[dict]:
    who = caller(router)
    fn = load(org, fid, who, access.WRITE, "publish versions")
    body = json_body(router)
    description = body.get("description", "")
    if not isinstance(description, str) or len(description) > m.MAX_DESCRIPTION:
        raise BadRequestError(f"description must be text of at most {m.MAX_DESCRIPTION} characters")
    for _attempt in range(5):
        if fn["status"] != "deployed":
            raise HttpError(409, f"the draft is {fn['status']}; publish once it is deployed")
        wanted = m.config_hash(fn)
        if fn.get("published_hash") == wanted and fn.get("latest_version"):
            existing = store().get_version(org, fn["id"], int(fn["latest_version"]))
            # A version that failed to publish is no answer: publishing again makes a new one.
            if existing is not None and existing["status"] != "failed":
                return json_response(200, {**m.version_view(existing), "unchanged": True})
        number = int(fn.get("version_counter", 0)) + 1
        version = {
            "version": number,
            "org": org,
            "fid": fn["id"],
            "config": m.config_snapshot(fn),
            "config_hash": wanted,
            "revision": fn["revision"],
            "status": "publishing",
            "description": description,
            "created_at": m.now_iso(),
            "created_by": who.key_id,
        }
        try:
            store().add_version(fn, version, audit(who, "version.publish", fn["id"], version=number))
        except Conflict:
            fn = load(org, fn["id"], who, access.WRITE, "publish versions")
            continue
        queue("publish", fn, number)
        return json_response(201, m.version_view(version))
    raise HttpError(409, "the function kept changing while publishing; try again")


@router.get(FN + "/versions", summary="List versions, newest first", tags=["versions"])
def list_versions(org: str, fid: str) -> Response[dict]:
    fn = load(org, fid, caller(router), access.READ, "read versions")
    cursor = router.current_event.get_query_string_value("cursor")
    try:
        items, next_cursor = store().list_versions(org, fn["id"], page_limit(router), cursor)
    except BadCursor as exc:
        raise BadRequestError(str(exc)) from None
    return json_response(200, {"versions": [m.version_view(v) for v in items], "next_cursor": next_cursor})


def _version_number(raw: Any, field: str = "version") -> int:
    if isinstance(raw, str) and raw.isdigit():
        raw = int(raw)
    if isinstance(raw, bool) or not isinstance(raw, int) or raw < 1:
        raise BadRequestError(f"{field} must be a version number (1, 2, ...)")
    return raw


def _published(fn: dict[str, Any], number: int) -> dict[str, Any]:
    version = store().get_version(fn["org"], fn["id"], number)
    if version is None:
        raise HttpError(404, f"version {number} not found")
    if version["status"] != "published":
        raise HttpError(409, f"version {number} is {version['status']}, not published")
    return version


@router.get(FN + "/versions/<number>", summary="Show one version", tags=["versions"])
def get_version(org: str, fid: str, number: str) -> Response[dict]:
    fn = load(org, fid, caller(router), access.READ, "read versions")
    version = store().get_version(org, fn["id"], _version_number(number))
    if version is None:
        raise HttpError(404, f"version {number} not found")
    return json_response(200, m.version_view(version))


# --- the live alias ---------------------------------------------------------------------------------
MAX_HISTORY = 20


@router.get(FN + "/aliases/live", summary="Where live points (and its canary)", tags=["aliases"])
def get_alias(org: str, fid: str) -> Response[dict]:
    fn = load(org, fid, caller(router), access.READ, "read aliases")
    view = m.alias_view(fn)
    if view is None:
        raise HttpError(404, "live does not point at any version yet")
    return json_response(200, view)


def _target(body: dict[str, Any]) -> dict[str, Any]:
    target: dict[str, Any] = {"version": _version_number(body.get("version"))}
    canary = body.get("canary")
    if canary is not None:
        if not isinstance(canary, dict):
            raise BadRequestError('canary must be {"version": N, "weight": 0 < w < 1}')
        weight = canary.get("weight")
        if isinstance(weight, bool) or not isinstance(weight, int | float) or not 0 < weight < 1:
            raise BadRequestError("canary.weight must be a number between 0 and 1 (exclusive)")
        number = _version_number(canary.get("version"), "canary.version")
        if number == target["version"]:
            raise BadRequestError("the canary version must differ from the live version")
        target["canary"] = {"version": number, "weight": round(float(weight), 4)}
    return target


@router.put(
    FN + "/aliases/live", summary="Point live at a version, optionally with a weighted canary", tags=["aliases"]
)
def put_alias(org: str, fid: str) -> Response[dict]:
    who = caller(router)
    fn = load(org, fid, who, access.RELEASE, "move the live alias")
    target = _target(json_body(router, required=True))
    _published(fn, target["version"])
    if "canary" in target:
        _published(fn, target["canary"]["version"])
    history = list(fn.get("live_history") or [])
    if fn.get("live"):
        history = ([*history, fn["live"]])[-MAX_HISTORY:]
    return _move(fn, target, history, who, "alias.move")


@router.post(FN + "/rollback", summary="Move live back to where it pointed before", tags=["aliases"])
def rollback(org: str, fid: str) -> Response[dict]:
    who = caller(router)
    fn = load(org, fid, who, access.RELEASE, "roll back")
    history = list(fn.get("live_history") or [])
    if not history:
        raise HttpError(409, "nothing to roll back to: live has not been moved before")
    return _move(fn, history[-1], history[:-1], who, "alias.rollback")


def _move(
    fn: dict[str, Any], target: dict[str, Any], history: list[dict[str, Any]], who: Caller, action: str
) -> Response[dict]:
    entry = audit(who, action, fn["id"], to=target, previous=fn.get("live"))
    try:
        fn = store().move_alias(fn, target, history, who.key_id, m.now_iso(), entry)
    except Conflict as exc:
        raise HttpError(409, str(exc)) from None
    queue("alias", fn, int(fn["alias_seq"]))
    return json_response(200, m.alias_view(fn))
