"""What the processor decides for one uploaded object, with its I/O passed in (`Outside`): the
limits it enforces, what it records for a refused object, the derived objects and the `items` row
and event of a processed one. No AWS client, connection or logger here; the handler wires them."""

from __future__ import annotations

import hashlib
import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any
from urllib.parse import unquote_plus

from lambdas.collections.names import analysis_key, thumbnail_key
from lambdas.collections.pipeline import USER_ID_PATTERN
from lambdas.image_processor.imaging import Refused, Rendered, render

# A user id is one path segment; `derived`-style prefixes are not special here because outputs
# live in another bucket.
_KEY = re.compile(rf"^(?P<user_id>{USER_ID_PATTERN})/(?P<filename>[^/].*)$")


@dataclass(frozen=True)
class Settings:
    derived_bucket: str
    max_bytes: int
    max_pixels: int
    failure_queue_url: str | None


@dataclass(frozen=True)
class Upload:
    """The object an S3 ObjectCreated record names."""

    bucket: str
    key: str
    size: int | None  # as the event states it; the object's own length is checked again

    @classmethod
    def from_record(cls, record: dict[str, Any]) -> Upload:
        s3_info = record["s3"]
        # S3 events URL-encode keys (space -> '+').
        return cls(s3_info["bucket"]["name"], unquote_plus(s3_info["object"]["key"]), s3_info["object"].get("size"))

    def owner(self) -> str | None:
        """The user the key names (`{user_id}/{filename}`), None where it names none."""
        match = _KEY.match(self.key)
        return None if match is None else match.group("user_id")


@dataclass(frozen=True)
class Original:
    etag: str
    length: int
    read: Callable[[], bytes]  # the body, read only once the length is known to be acceptable


@dataclass(frozen=True)
class Outside:
    """The processor's I/O. `get_original` returns None for an object deleted before processing."""

    get_original: Callable[[str, str], Original | None]  # bucket, key
    put_derived: Callable[[str, bytes, str], None]  # key in the derived bucket, JPEG bytes, item_id
    save_item: Callable[..., None]  # the `items` row's columns (store.upsert_item)
    publish_processed: Callable[[dict[str, Any]], None]  # the ImageProcessed detail


@dataclass(frozen=True)
class Outcome:
    """`refused` is set for a refused object, `rendered` for a processed one; neither when the
    object was deleted before it could be read."""

    refused: Refused | None = None
    rendered: Rendered | None = None


def process(upload: Upload, user_id: str, item_id: str, settings: Settings, outside: Outside) -> Outcome:
    def refuse(exc: Refused, **fields: Any) -> Outcome:
        outside.save_item(
            item_id=item_id,
            user_id=user_id,
            bucket=upload.bucket,
            original_key=upload.key,
            status="failed",
            failure_reason=f"{exc.reason}: {exc.detail}",
            **fields,
        )
        return Outcome(refused=exc)

    max_bytes = settings.max_bytes
    if upload.size == 0:
        return refuse(Refused("empty", "zero-byte object"), size_bytes=0)
    if upload.size is not None and upload.size > max_bytes:
        return refuse(Refused("too_large", f"{upload.size} bytes > {max_bytes}"), size_bytes=upload.size)
    original = outside.get_original(upload.bucket, upload.key)
    if original is None:
        return Outcome()
    if original.length > max_bytes:
        too_large = Refused("too_large", f"{original.length} bytes > {max_bytes}")
        return refuse(too_large, size_bytes=original.length, etag=original.etag)
    data = original.read()
    if not data:
        return refuse(Refused("empty", "zero-byte object"), size_bytes=0, etag=original.etag)
    try:
        rendered = render(data, settings.max_pixels)
    except Refused as exc:
        return refuse(exc, size_bytes=len(data), etag=original.etag)

    thumbnail, analysis = thumbnail_key(item_id), analysis_key(item_id)
    outside.put_derived(thumbnail, rendered.thumbnail, item_id)
    outside.put_derived(analysis, rendered.analysis, item_id)
    fields = {
        "item_id": item_id,
        "user_id": user_id,
        "bucket": upload.bucket,
        "original_key": upload.key,
        "thumbnail_key": thumbnail,
        "analysis_key": analysis,
        "content_type": rendered.content_type,
        "width": rendered.width,
        "height": rendered.height,
        "etag": original.etag,
        # What the analyzer will see: identical bytes render to an identical copy.
        "image_sha256": hashlib.sha256(rendered.analysis).hexdigest(),
    }
    outside.save_item(status="processed", size_bytes=len(data), **fields)
    outside.publish_processed(fields)
    return Outcome(rendered=rendered)
