"""ImageProcessorLambda on generated images, with moto S3/EventBridge/SQS and real PostgreSQL."""

from __future__ import annotations

import io
import json
import logging
import sys
from typing import Any
from urllib.parse import quote_plus

import boto3
import pytest
from collections_images import encode, jpeg, png_alpha, png_bomb
from conftest import DERIVED_BUCKET, IMAGES_BUCKET, load_event
from PIL import Image

from lambdas.collections.names import IMAGE_PROCESSED_FIELDS
from lambdas.common import containers
from lambdas.common.image_types import sniff
from lambdas.image_processor import handler as processor
from lambdas.image_processor.imaging import ANALYSIS_MAX_PIXELS, Refused, render
from lambdas.image_processor.store import item_id_for


def upload(key: str, body: bytes) -> dict[str, Any]:
    boto3.client("s3").put_object(Bucket=IMAGES_BUCKET, Key=key, Body=body)
    event = load_event("s3_object_created.json")
    obj = event["Records"][0]["s3"]["object"]
    obj["key"] = quote_plus(key, safe="/")
    obj["size"] = len(body)
    event["Records"][0]["s3"]["bucket"]["name"] = IMAGES_BUCKET
    return event


def derived(key: str) -> Any:
    body = boto3.client("s3").get_object(Bucket=DERIVED_BUCKET, Key=key)["Body"].read()
    return Image.open(io.BytesIO(body))


def item_row(db: Any, key: str) -> tuple[Any, ...]:
    return db.execute(
        "SELECT status, failure_reason, content_type, width, height, thumbnail_key FROM items WHERE item_id = %s",
        (item_id_for(IMAGES_BUCKET, key),),
    ).fetchone()


def test_jpeg_with_exif_orientation_6_is_rotated_and_published(aws_env, db, context) -> None:
    key = "user-1/Holiday photo (1).JPG"  # space, parentheses, upper-case extension
    processor.handler(upload(key, jpeg(1200, 800, orientation=6)), context)

    item_id = item_id_for(IMAGES_BUCKET, key)
    assert item_row(db, key) == ("processed", None, "image/jpeg", 800, 1200, f"thumbnails/{item_id}.jpg")
    thumb = derived(f"thumbnails/{item_id}.jpg")
    assert thumb.format == "JPEG" and thumb.size == (533, 800)  # portrait after rotation
    # Orientation 6 = rotate 90 clockwise to display: the blue top-left quadrant ends top-right.
    assert thumb.getpixel((thumb.width - 20, 20))[2] > 150
    assert thumb.getpixel((20, 20))[0] > 150
    [event] = aws_env.events()
    assert event["source"] == "collections.imageprocessor" and event["detail-type"] == "ImageProcessed"
    detail = event["detail"]
    assert set(detail) >= {*IMAGE_PROCESSED_FIELDS, "schema_version"}
    assert (detail["item_id"], detail["user_id"], detail["original_key"]) == (item_id, "user-1", key)
    assert (detail["width"], detail["height"], detail["schema_version"]) == (800, 1200, 1)


def test_analysis_copy_limits_for_a_large_photo() -> None:
    rendered = render(jpeg(4000, 3000), 64_000_000)
    w, h = rendered.analysis_size
    assert max(w, h) <= 1568 and w * h <= ANALYSIS_MAX_PIXELS and w * h > 0.95 * ANALYSIS_MAX_PIXELS
    assert max(rendered.thumbnail_size) == 800
    assert Image.open(io.BytesIO(rendered.analysis)).size == (w, h)
    assert (rendered.width, rendered.height) == (4000, 3000)


def test_small_image_is_not_upscaled() -> None:
    rendered = render(jpeg(300, 200), 64_000_000)
    assert rendered.thumbnail_size == (300, 200) and rendered.analysis_size == (300, 200)


def test_png_alpha_is_flattened_on_white(aws_env, db, context) -> None:
    key = "user-1/logo.png"
    processor.handler(upload(key, png_alpha()), context)
    thumb = derived(f"thumbnails/{item_id_for(IMAGES_BUCKET, key)}.jpg").convert("RGB")
    assert thumb.getpixel((thumb.width - 10, 10)) >= (245, 245, 245)  # transparent -> white
    assert thumb.getpixel((10, 10))[1] > 130  # opaque green kept
    assert item_row(db, key)[2] == "image/png"


@pytest.mark.parametrize(
    ("fmt", "content_type", "key"),
    [
        ("WEBP", "image/webp", "user-2/a.webp"),
        ("GIF", "image/gif", "user-2/b.GIF"),
        ("HEIF", "image/heic", "user-2/c.HEIC"),
        ("PNG", "image/png", "user-2/named-like-a.jpg"),  # the bytes decide, not the name
    ],
)
def test_formats_detected_from_bytes(aws_env, db, context, fmt: str, content_type: str, key: str) -> None:
    processor.handler(upload(key, encode(fmt)), context)
    status, reason, ctype, width, height, _ = item_row(db, key)
    assert (status, reason, ctype, width, height) == ("processed", None, content_type, 640, 480)


@pytest.mark.parametrize(
    ("body", "reason"),
    [
        (png_bomb(), "decompression_bomb"),
        (b"%PDF-1.7 definitely not an image" * 10, "not_image"),
        (b"\xff\xd8\xff\xe0" + b"\x00" * 200, "corrupt"),
        (b"", "empty"),
    ],
)
def test_refused_objects_are_recorded_and_not_retried(aws_env, db, context, body: bytes, reason: str) -> None:
    key = "user-3/upload.jpg"
    processor.handler(upload(key, body), context)  # returns normally: no Lambda retry
    status, failure_reason, *_ = item_row(db, key)
    assert status == "failed" and failure_reason.startswith(reason)
    [failure] = aws_env.failures()
    assert failure["reason"] == reason and failure["key"] == key
    assert aws_env.events() == []
    assert boto3.client("s3").list_objects_v2(Bucket=DERIVED_BUCKET).get("KeyCount") == 0


def test_bomb_refused_from_header_before_decoding() -> None:
    with pytest.raises(Refused) as info:
        render(png_bomb(), 64_000_000)
    assert info.value.reason == "decompression_bomb"


def test_duplicate_event_does_the_same_work_to_the_same_row(aws_env, db, context) -> None:
    key = "user-4/dup.jpeg"
    event = upload(key, jpeg())
    processor.handler(event, context)
    processor.handler(event, context)
    assert db.execute("SELECT count(*) FROM items").fetchone()[0] == 1
    first, second = aws_env.events()
    assert first["detail"] == second["detail"]
    assert boto3.client("s3").list_objects_v2(Bucket=DERIVED_BUCKET)["KeyCount"] == 2


@pytest.mark.parametrize("key", ["loose.jpg", "nouser.png", "carol//x.png", "/x.png", "carol/", "ca rol/x.png"])
def test_key_without_a_user_gets_no_row_and_is_reported_and_logged_by_key(
    aws_env, db, context, capsys, monkeypatch, key
) -> None:
    for log_handler in processor.logger.handlers:  # Powertools keeps the stdout of its creation
        if isinstance(log_handler, logging.StreamHandler):
            monkeypatch.setattr(log_handler, "stream", sys.stdout)
    processor.handler(upload(key, jpeg()), context)
    assert db.execute("SELECT count(*) FROM items").fetchone()[0] == 0
    [failure] = aws_env.failures()
    assert (failure["reason"], failure["key"], failure["item_id"]) == ("invalid_key", key, None)
    logged = [json.loads(line) for line in capsys.readouterr().out.splitlines() if '"image refused"' in line]
    assert [(line["key"], line["reason"]) for line in logged] == [(key, "invalid_key")]


def test_database_failure_raises_for_lambda_retry(aws_env, db, context, monkeypatch) -> None:
    monkeypatch.setenv("DATABASE_URL", "postgresql://nobody@127.0.0.1:1/none?connect_timeout=1")
    containers.reset()
    with pytest.raises(Exception, match=r"connect|Connection"):
        processor.handler(upload("user-5/x.jpg", jpeg()), context)
    assert aws_env.events() == []


def test_sniff() -> None:
    assert sniff(jpeg()) == "JPEG" and sniff(encode("HEIF")) == "HEIF" and sniff(b"GIF89a....") == "GIF"
    assert sniff(b"<svg xmlns='http://www.w3.org/2000/svg'/>") is None
