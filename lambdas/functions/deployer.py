"""Deployer (`functions-deployer-{env}`): the only code that calls Lambda's control plane.

Fed by the FIFO deploy queue (one message group per function, so a function's changes apply in
order). Each message names what to apply (`deploy` a draft revision, `publish` a version, move
the `alias`, `delete`) and the revision/version/sequence it was sent for, so a redelivered or
superseded message changes nothing. Problems with the user's code or configuration end as
`failed` with a reason a person understands; throttling and conflicts are raised so the message is
retried (SQS visibility timeout, then the DLQ after three receives).
"""

from __future__ import annotations

import contextlib
import tempfile
from typing import Any

from aws_lambda_powertools import Logger, Metrics
from aws_lambda_powertools.utilities.batch import SqsFifoPartialProcessor, process_partial_response
from aws_lambda_powertools.utilities.data_classes.sqs_event import SQSRecord
from aws_lambda_powertools.utilities.typing import LambdaContext
from botocore.exceptions import BotoCoreError, ClientError

from lambdas.common.aws import client
from lambdas.common.entry import entry
from lambdas.common.settings import need
from lambdas.functions import names
from lambdas.functions.code import CodeError, digest, validate_zip
from lambdas.functions.deploy_queue import DeployMessage
from lambdas.functions.lambda_control import AsyncConfig, LambdaControl, UserFunctionSpec
from lambdas.functions.settings import settings
from lambdas.functions.store import Conflict, FunctionStore

logger = Logger()
metrics = Metrics()
# One function's failing change holds back only that function's later changes (its message group),
# not other functions' in the same batch.
processor = SqsFifoPartialProcessor(skip_group_on_error=True)
# A batch that failed entirely is reported like a partial one (the queue redelivers it) rather than
# as a function error: retryable throttling is not an error of the deployer's.
processor.raise_on_entire_batch_failure = False

RETRYABLE_CODES = {
    "TooManyRequestsException",
    "ThrottlingException",
    "ResourceConflictException",
    "ServiceException",
    "ServiceUnavailableException",
    "InternalFailure",
    "RequestLimitExceeded",
    "ProvisionedThroughputExceededException",
    "TransactionConflictException",
    "SlowDown",
}


class Retry(RuntimeError):
    """A failure worth retrying: the message goes back to the queue."""


def store() -> FunctionStore:
    return FunctionStore(settings().table)


def control() -> LambdaControl:
    s = settings()
    return LambdaControl(
        env=s.env,
        role_arn=need(s.execution_role_arn, names.ENV_EXECUTION_ROLE_ARN),
        reserved_concurrency=s.reserved_concurrency,
        log_retention_days=s.log_retention_days,
        async_config=AsyncConfig(s.async_retry_attempts, s.async_max_event_age_seconds, s.results_queue_arn)
        if s.results_queue_arn
        else None,
    )


def _reason(exc: ClientError) -> str:
    error = exc.response.get("Error", {})
    return f"{error.get('Code', 'Error')}: {error.get('Message', str(exc))}"


def _retryable(exc: Exception) -> bool:
    if isinstance(exc, BotoCoreError):
        return True
    if isinstance(exc, ClientError):
        code = exc.response.get("Error", {}).get("Code", "")
        status = int(exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode", 0) or 0)
        return code in RETRYABLE_CODES or status >= 500
    return False


# --- deploy: the draft ($LATEST) ------------------------------------------------------------------
def _fetch_and_validate(fn: dict[str, Any]) -> tuple[str, str, int]:
    """(final code key, sha256 hex, size): the draft's zip validated and stored under `code/`."""
    bucket, key = settings().code_bucket, fn["pending_code_key"]
    s3 = client("s3")
    with tempfile.TemporaryFile(dir="/tmp") as spool:
        try:
            s3.download_fileobj(bucket, key, spool)
        except ClientError as exc:
            if exc.response.get("Error", {}).get("Code") in ("404", "NoSuchKey", "NotFound"):
                raise CodeError("the uploaded code is gone (uploads expire after a day): upload it again") from None
            raise
        spool.seek(0)
        data = spool.read()
        spool.seek(0)
        validate_zip(spool, fn["handler"])
    code = digest(data)
    final = names.code_key(fn["org"], fn["id"], code.sha256_hex)
    if final != key:
        s3.put_object(Bucket=bucket, Key=final, Body=data, ContentType="application/zip")
    return final, code.sha256_hex, code.size


def _secrets(fn: dict[str, Any]) -> dict[str, str]:
    wanted = list(fn.get("secret_names", []))
    if not wanted:
        return {}
    s = settings()
    by_name = {f"{s.secret_prefix}/{fn['org']}/{fn['id']}/{n}": n for n in wanted}
    values: dict[str, str] = {}
    ssm = client("ssm")
    names_ = list(by_name)
    for start in range(0, len(names_), 10):  # GetParameters takes ten names at a time
        found = ssm.get_parameters(Names=names_[start : start + 10], WithDecryption=True)
        if found.get("InvalidParameters"):
            raise CodeError(
                f"secret variables are missing: {', '.join(by_name[p] for p in found['InvalidParameters'])}"
            )
        values.update({by_name[p["Name"]]: p["Value"] for p in found["Parameters"]})
    return values


def deploy(message: DeployMessage) -> None:
    fn = store().get(message.org, message.fid)
    if fn is None or fn["status"] == "deleting":
        return
    if int(fn.get("revision", 0)) != message.number or int(fn.get("deployed_revision", 0)) >= message.number:
        logger.info("deploy message superseded or already applied", extra={"fid": message.fid})
        return
    try:
        code_key, sha, size = _fetch_and_validate(fn)
        spec = UserFunctionSpec(
            name=fn["lambda_function"],
            org=fn["org"],
            fid=fn["id"],
            handler=fn["handler"],
            memory_mb=min(int(fn["memory_mb"]), settings().max_memory_mb),
            timeout_seconds=min(int(fn["timeout_seconds"]), settings().max_timeout_seconds),
            environment={**fn.get("environment", {}), **_secrets(fn)},
            bucket=settings().code_bucket,
            key=code_key,
            sha256_hex=sha,
        )
        control().apply(spec)
    except CodeError as exc:
        _fail_draft(fn, str(exc))
        return
    except ClientError as exc:
        if _retryable(exc):
            raise
        _fail_draft(fn, _reason(exc))
        return
    if code_key != fn["pending_code_key"]:
        client("s3").delete_object(Bucket=settings().code_bucket, Key=fn["pending_code_key"])
    try:
        store().update(
            fn["org"],
            fn["id"],
            {
                "status": "deployed",
                "deployed_revision": message.number,
                "pending_code_key": code_key,
                "code_sha256": sha,
                "code_size": size,
            },
            revision=message.number,
            remove=("error",),
        )
    except Conflict:
        logger.info("draft changed while deploying; the newer revision's message follows")
    logger.info("draft deployed", extra={"fid": fn["id"], "revision": message.number})


def _fail_draft(fn: dict[str, Any], reason: str) -> None:
    logger.warning("deploy failed", extra={"fid": fn["id"], "reason": reason})
    with contextlib.suppress(Conflict):
        store().update(fn["org"], fn["id"], {"status": "failed", "error": reason}, revision=int(fn["revision"]))


# --- publish: an immutable version --------------------------------------------------------------------
def publish(message: DeployMessage) -> None:
    org, fid, number = message.org, message.fid, message.number
    version = store().get_version(org, fid, number)
    fn = store().get(org, fid)
    if version is None or fn is None or version["status"] != "publishing" or fn["status"] == "deleting":
        return
    try:
        lambda_version = control().publish(fn["lambda_function"], version["config"], f"v{number}")
    except CodeError as exc:
        store().update_version(org, fid, number, {"status": "failed", "error": str(exc)}, only_if_status="publishing")
        return
    except ClientError as exc:
        if _retryable(exc):
            raise
        store().update_version(
            org, fid, number, {"status": "failed", "error": _reason(exc)}, only_if_status="publishing"
        )
        return
    store().update_version(
        org, fid, number, {"status": "published", "lambda_version": lambda_version}, only_if_status="publishing"
    )
    store().record_lambda_version(org, fid, lambda_version, number)
    logger.info("version published", extra={"fid": fid, "version": number, "lambda_version": lambda_version})
    collect_versions(org, fid)


def collect_versions(org: str, fid: str) -> None:
    """Keep the newest `versions_kept` published versions, plus any that live, its canary or the
    rollback history point at; delete the Lambda versions of the rest (their records stay, marked
    `deleted`, so the history of what ran is not lost)."""
    fn = store().get(org, fid)
    if fn is None:
        return
    published = store().published_versions(org, fid)
    keep = settings().quotas.versions_kept
    referenced = set()
    for target in [fn.get("live"), *(fn.get("live_history") or [])]:
        if target:
            referenced.add(int(target["version"]))
            if target.get("canary"):
                referenced.add(int(target["canary"]["version"]))
    for version in published[: max(0, len(published) - keep)]:
        if version["version"] in referenced:
            continue
        control().delete_version(fn["lambda_function"], str(version["lambda_version"]))
        store().update_version(org, fid, version["version"], {"status": "deleted"}, only_if_status="published")
        logger.info("version garbage-collected", extra={"fid": fid, "version": version["version"]})


# --- alias: where live points -------------------------------------------------------------------------
def alias(message: DeployMessage) -> None:
    fn = store().get(message.org, message.fid)
    if fn is None or int(fn.get("alias_seq", 0)) != message.number or fn["status"] == "deleting":
        return
    live = fn["live"]
    try:
        primary = _lambda_version(fn, int(live["version"]))
        canary = None
        if live.get("canary"):
            canary = (_lambda_version(fn, int(live["canary"]["version"])), float(live["canary"]["weight"]))
        control().point_alias(fn["lambda_function"], names.LIVE_ALIAS, primary, canary)
    except CodeError as exc:
        store().alias_done(message.org, message.fid, message.number, str(exc))
        return
    except ClientError as exc:
        if _retryable(exc):
            raise
        store().alias_done(message.org, message.fid, message.number, _reason(exc))
        return
    store().alias_done(message.org, message.fid, message.number, None)


def _lambda_version(fn: dict[str, Any], number: int) -> str:
    version = store().get_version(fn["org"], fn["id"], number)
    if version is None or not version.get("lambda_version"):
        raise CodeError(f"version {number} is not published")
    return str(version["lambda_version"])


# --- delete ---------------------------------------------------------------------------------------------
def delete(message: DeployMessage) -> None:
    fn = store().get(message.org, message.fid)
    if fn is None or fn["status"] != "deleting":
        return
    control().delete(fn["lambda_function"])
    s3 = client("s3")
    bucket = settings().code_bucket
    for prefix in (names.code_prefix(fn["org"], fn["id"]), f"{names.UPLOADS_PREFIX}{fn['org']}/{fn['id']}/"):
        for page in s3.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=prefix):
            objects = [{"Key": o["Key"]} for o in page.get("Contents", [])]
            if objects:
                s3.delete_objects(Bucket=bucket, Delete={"Objects": objects, "Quiet": True})
    secrets = [f"{settings().secret_prefix}/{fn['org']}/{fn['id']}/{n}" for n in fn.get("secret_names", [])]
    for start in range(0, len(secrets), 10):
        client("ssm").delete_parameters(Names=secrets[start : start + 10])
    store().delete_everything(fn["org"], fn["id"], fn["name"])
    logger.info("function deleted", extra={"fid": fn["id"]})


ACTIONS = {"deploy": deploy, "publish": publish, "alias": alias, "delete": delete}


def record_handler(record: SQSRecord) -> None:
    try:
        message = DeployMessage.parse(record.body)
    except (ValueError, KeyError, TypeError):
        logger.error("dropping a message that is not a deploy message", extra={"message_id": record.message_id})
        return  # retrying cannot fix it
    logger.append_keys(fid=message.fid, org=message.org, action=message.action)
    ACTIONS[message.action](message)


@entry(logger, metrics)
def handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    return dict(
        process_partial_response(event=event, record_handler=record_handler, processor=processor, context=context)
    )
