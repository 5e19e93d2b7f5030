"""S3 ObjectCreated on the images bucket -> thumbnail + analysis copy -> `items` -> ImageProcessed.

Originals are `{user_id}/{filename}` in the images bucket. Outputs go to the separate derived
bucket (`thumbnails/{item_id}.jpg`, `analysis/{item_id}.jpg`), which has no notification, so the
processor can never trigger itself; it cannot even write to the images bucket.

Refused objects (not an image, empty, too large, decompression bomb, corrupt) are recorded as
`failed` with their reason, reported to the failure queue and not retried: another attempt would
fail the same way. A key that names no user (`nouser.png`, `carol//x.png`) gets no `items` row:
an item belongs to a user and every read is bound to one, so such a row could never be read; it
is reported to the failure queue and logged with its key (`invalid_key`). Everything else (S3, database, EventBridge errors) raises so Lambda retries
and the on-failure destination keeps what is left. The work is idempotent: a redelivered event
rewrites the same objects and the same row. The row carries the hash of the analysis copy
(`image_sha256`): new bytes clear the item's current analysis and embeddings (store.py), so what
is stored never describes content the object no longer has.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
from dataclasses import dataclass
from functools import cache
from typing import Any
from urllib.parse import unquote_plus

from aws_lambda_powertools import Logger, Metrics
from aws_lambda_powertools.metrics import MetricUnit

from lambdas.common import pg
from lambdas.common.aws import client
from lambdas.common.collections import IMAGE_PROCESSED, PROCESSOR_SOURCE, SCHEMA_VERSION, USER_ID_PATTERN, publish
from lambdas.common.settings import env_int, require_env
from lambdas.common.tracing import tracer
from lambdas.image_processor.imaging import Refused, render
from lambdas.image_processor.store import item_id_for, upsert_item

logger = Logger()
metrics = Metrics()

# A user id is one path segment; `derived`-style prefixes are not special here because outputs
# live in another bucket.
_KEY = re.compile(rf"^(?P<user_id>{USER_ID_PATTERN})/(?P<filename>[^/].*)$")


@dataclass(frozen=True)
class Settings:
    derived_bucket: str
    max_bytes: int
    max_pixels: int
    failure_queue_url: str | None


@cache
def settings() -> Settings:
    return Settings(
        derived_bucket=require_env("DERIVED_BUCKET"),
        max_bytes=env_int("MAX_IMAGE_BYTES", 50 * 1024 * 1024),
        max_pixels=env_int("MAX_IMAGE_PIXELS", 64_000_000),
        failure_queue_url=os.environ.get("FAILURE_QUEUE_URL") or None,
    )


def _count(name: str, reason: str | None = None) -> None:
    if reason is None:
        metrics.add_metric(name=name, unit=MetricUnit.Count, value=1)
    else:
        # One metric per reason: failures by reason are what an operator looks at.
        metrics.add_metric(name=f"{name}_{reason}", unit=MetricUnit.Count, value=1)


def _report_failure(bucket: str, key: str, item_id: str | None, reason: str, detail: str) -> None:
    # The key is named here too: for a key without a user no item_id/user_id keys were appended.
    logger.warning("image refused", extra={"reason": reason, "detail": detail, "bucket": bucket, "key": key})
    _count("ImagesFailed", reason)
    url = settings().failure_queue_url
    if url:
        body = {
            "source": PROCESSOR_SOURCE,
            "item_id": item_id,
            "bucket": bucket,
            "key": key,
            "reason": reason,
            "detail": detail,
        }
        client("sqs").send_message(QueueUrl=url, MessageBody=json.dumps(body))


@tracer.capture_method
def process(record: dict[str, Any]) -> None:
    s3_info = record["s3"]
    bucket = s3_info["bucket"]["name"]
    key = unquote_plus(s3_info["object"]["key"])  # S3 events URL-encode keys (space -> '+')
    match = _KEY.match(key)
    if match is None:
        _report_failure(bucket, key, None, "invalid_key", "expected {user_id}/{filename}")
        return
    user_id = match.group("user_id")
    item_id = item_id_for(bucket, key)
    logger.append_keys(item_id=item_id, user_id=user_id, key=key)
    cfg = settings()
    conn = pg.connection()

    def refuse(exc: Refused, **fields: Any) -> None:
        upsert_item(
            conn,
            item_id=item_id,
            user_id=user_id,
            bucket=bucket,
            original_key=key,
            status="failed",
            failure_reason=f"{exc.reason}: {exc.detail}",
            **fields,
        )
        _report_failure(bucket, key, item_id, exc.reason, exc.detail)

    size = s3_info["object"].get("size")
    if size == 0:
        return refuse(Refused("empty", "zero-byte object"), size_bytes=0)
    if size is not None and size > cfg.max_bytes:
        return refuse(Refused("too_large", f"{size} bytes > {cfg.max_bytes}"), size_bytes=size)
    s3 = client("s3")
    try:
        obj = s3.get_object(Bucket=bucket, Key=key)
    except s3.exceptions.NoSuchKey:
        logger.info("object deleted before processing; nothing to do")
        return None
    etag = obj["ETag"].strip('"')
    if obj["ContentLength"] > cfg.max_bytes:
        return refuse(
            Refused("too_large", f"{obj['ContentLength']} bytes > {cfg.max_bytes}"),
            size_bytes=obj["ContentLength"],
            etag=etag,
        )
    data = obj["Body"].read()
    if not data:
        return refuse(Refused("empty", "zero-byte object"), size_bytes=0, etag=etag)
    try:
        rendered = render(data, cfg.max_pixels)
    except Refused as exc:
        return refuse(exc, size_bytes=len(data), etag=etag)

    thumbnail_key = f"thumbnails/{item_id}.jpg"
    analysis_key = f"analysis/{item_id}.jpg"
    for out_key, body in ((thumbnail_key, rendered.thumbnail), (analysis_key, rendered.analysis)):
        s3.put_object(
            Bucket=cfg.derived_bucket, Key=out_key, Body=body, ContentType="image/jpeg", Metadata={"item-id": item_id}
        )
    fields = {
        "item_id": item_id,
        "user_id": user_id,
        "bucket": bucket,
        "original_key": key,
        "thumbnail_key": thumbnail_key,
        "analysis_key": analysis_key,
        "content_type": rendered.content_type,
        "width": rendered.width,
        "height": rendered.height,
        "etag": etag,
        # What the analyzer will see: identical bytes render to an identical copy.
        "image_sha256": hashlib.sha256(rendered.analysis).hexdigest(),
    }
    upsert_item(conn, status="processed", size_bytes=len(data), **fields)
    publish(
        PROCESSOR_SOURCE,
        IMAGE_PROCESSED,
        {**fields, "derived_bucket": cfg.derived_bucket, "schema_version": SCHEMA_VERSION},
    )
    logger.info(
        "image processed",
        extra={"width": rendered.width, "height": rendered.height, "content_type": rendered.content_type},
    )
    _count("ImagesProcessed")
    return None


@logger.inject_lambda_context(correlation_id_path='Records[0].responseElements."x-amz-request-id"')
@metrics.log_metrics
@tracer.capture_lambda_handler
def handler(event: dict[str, Any], context: Any) -> None:
    # S3 sends one record per event in practice; if several arrive, all are attempted and the
    # first retryable error is raised at the end (the work already done is idempotent).
    errors: list[Exception] = []
    for record in event.get("Records", []):
        try:
            process(record)
        except Exception as exc:
            logger.exception("processing failed; will be retried")
            _count("ImagesFailed", "retryable")
            errors.append(exc)
        finally:
            logger.remove_keys(["item_id", "user_id", "key"])
    if errors:
        raise errors[0]
