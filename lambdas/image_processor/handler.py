"""S3 ObjectCreated on the images bucket -> thumbnail + analysis copy -> `items` -> ImageProcessed.

Originals are `{user_id}/{filename}` in the images bucket. Outputs go to the separate derived
bucket (`thumbnails/{item_id}.jpg`, `analysis/{item_id}.jpg`), which has no notification, so the
processor can never trigger itself; it cannot even write to the images bucket.

Refused objects (not an image, empty, too large, decompression bomb, corrupt) are recorded as
`failed` with their reason, reported to the failure queue and not retried: another attempt would
fail the same way. A key that names no user (`nouser.png`, `carol//x.png`) gets no `items` row:
an item belongs to a user and every read is bound to one, so such a row could never be read; it
is reported to the failure queue and logged with its key (`invalid_key`). Everything else (S3,
database, EventBridge errors) raises so Lambda retries
and the on-failure destination keeps what is left. The work is idempotent: a redelivered event
rewrites the same objects and the same row. The row carries the hash of the analysis copy
(`image_sha256`): new bytes clear the item's current analysis and embeddings (store.py), so what
is stored never describes content the object no longer has.

This module wires I/O, logs and metrics; the rules are in logic.py, the SQL in store.py.
"""

from __future__ import annotations

import json
from typing import Any

from aws_lambda_powertools import Logger, Metrics
from aws_lambda_powertools.metrics import MetricUnit

from lambdas.collections import pg
from lambdas.collections.names import (
    IMAGE_PROCESSED,
    PROCESSOR_SOURCE,
    SCHEMA_VERSION,
)
from lambdas.collections.pipeline import publish
from lambdas.collections.settings import settings as collections_settings
from lambdas.common.aws import client
from lambdas.common.containers import per_container
from lambdas.common.entry import entry
from lambdas.common.settings import env_int
from lambdas.common.tracing import tracer
from lambdas.image_processor.logic import Original, Outside, Settings, Upload
from lambdas.image_processor.logic import process as process_upload
from lambdas.image_processor.store import item_id_for, upsert_item

logger = Logger()
metrics = Metrics()


@per_container
def settings() -> Settings:
    return Settings(
        derived_bucket=collections_settings().derived_bucket(),
        max_bytes=env_int("MAX_IMAGE_BYTES", 50 * 1024 * 1024),
        max_pixels=env_int("MAX_IMAGE_PIXELS", 64_000_000),
        failure_queue_url=collections_settings().failure_queue_url,
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


def _outside(cfg: Settings) -> Outside:
    """The processor's I/O on S3, the database and EventBridge (clients and connection reused)."""
    s3 = client("s3")
    conn = pg.connection()

    def get_original(bucket: str, key: str) -> Original | None:
        try:
            obj = s3.get_object(Bucket=bucket, Key=key)
        except s3.exceptions.NoSuchKey:
            return None
        return Original(etag=obj["ETag"].strip('"'), length=obj["ContentLength"], read=obj["Body"].read)

    def put_derived(key: str, body: bytes, item_id: str) -> None:
        s3.put_object(
            Bucket=cfg.derived_bucket, Key=key, Body=body, ContentType="image/jpeg", Metadata={"item-id": item_id}
        )

    def publish_processed(fields: dict[str, Any]) -> None:
        detail = {**fields, "derived_bucket": cfg.derived_bucket, "schema_version": SCHEMA_VERSION}
        publish(PROCESSOR_SOURCE, IMAGE_PROCESSED, detail)

    return Outside(get_original, put_derived, lambda **fields: upsert_item(conn, **fields), publish_processed)


@tracer.capture_method
def process(record: dict[str, Any]) -> None:
    upload = Upload.from_record(record)
    user_id = upload.owner()
    if user_id is None:
        _report_failure(upload.bucket, upload.key, None, "invalid_key", "expected {user_id}/{filename}")
        return
    item_id = item_id_for(upload.bucket, upload.key)
    logger.append_keys(item_id=item_id, user_id=user_id, key=upload.key)
    cfg = settings()
    outcome = process_upload(upload, user_id, item_id, cfg, _outside(cfg))
    if outcome.refused is not None:
        _report_failure(upload.bucket, upload.key, item_id, outcome.refused.reason, outcome.refused.detail)
    elif outcome.rendered is None:
        logger.info("object deleted before processing; nothing to do")
    else:
        rendered = outcome.rendered
        logger.info(
            "image processed",
            extra={"width": rendered.width, "height": rendered.height, "content_type": rendered.content_type},
        )
        _count("ImagesProcessed")


@entry(logger, metrics, correlation_id_path='Records[0].responseElements."x-amz-request-id"')
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
