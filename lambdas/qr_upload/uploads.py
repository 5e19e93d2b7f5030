"""S3 side of an upload: the presigned POST a phone uses and the check of what actually arrived
(its first bytes, not its declared type). The desktop's link is photo_links.py's.

A presigned POST (not PUT) is used because only a POST policy can cap the size
(`content-length-range`) and pin the Content-Type (an exact `eq` condition on one of the
accepted photo types); the key is exact, not a prefix.

The bucket is versioned: a second POST with the same grant makes a new version, and the session
keeps the version it completed with, so what the desktop was shown never changes.
"""

from __future__ import annotations

import re
import uuid
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

from botocore.exceptions import ClientError

from lambdas.common.aws import client
from lambdas.common.image_types import sniff
from lambdas.common.s3 import presign_client
from lambdas.qr_upload.names import RENDITION_PREFIX, UPLOAD_PREFIX
from lambdas.qr_upload.sessions import is_valid_session_id

_KEY = re.compile(rf"^{re.escape(UPLOAD_PREFIX)}(?P<session>[^/]+)/image-(?P<suffix>[0-9a-f]{{32}})$")
DEFAULT_CONTENT_TYPE = "image/jpeg"
RENDITION_LONG_EDGE = 2048

# The accepted photo types (what phones send), each with the format its bytes must have.
ACCEPTED_TYPES = {
    "image/jpeg": "JPEG",
    "image/png": "PNG",
    "image/webp": "WEBP",
    "image/gif": "GIF",
    "image/heic": "HEIF",
    "image/heif": "HEIF",
}
# Formats a browser cannot display: the desktop gets a JPEG rendition of these.
NEEDS_RENDITION = {"HEIF"}
ACCEPTED_WORDS = "a JPEG, PNG, WebP, GIF or HEIC photo"


def new_upload_key(session_id: str) -> str:
    # A uuid rather than a timestamp: two requests in the same second still get distinct keys.
    return f"{UPLOAD_PREFIX}{session_id}/image-{uuid.uuid4().hex}"


def parse_key(key: str) -> tuple[str, str] | None:
    """(session id, upload id) of an upload key, or None if the key is not one this system issues."""
    match = _KEY.match(key)
    if not match or not is_valid_session_id(match.group("session")):
        return None
    return match.group("session"), match.group("suffix")


def session_id_from_key(key: str) -> str | None:
    parsed = parse_key(key)
    return parsed[0] if parsed else None


def is_accepted_content_type(value: str | None) -> bool:
    return bool(value) and str(value).lower() in ACCEPTED_TYPES


def rendition_key(session_id: str, upload_id: str) -> str:
    # Outside UPLOAD_PREFIX: the bucket's notification does not fire for it.
    return f"{RENDITION_PREFIX}{session_id}/{upload_id}.jpg"


def presigned_post(bucket: str, key: str, content_type: str, max_bytes: int, expires_in: int) -> dict[str, Any]:
    """`{"url", "fields"}`; the form must send every field before the file part."""
    post: dict[str, Any] = presign_client().generate_presigned_post(
        Bucket=bucket,
        Key=key,
        Fields={"Content-Type": content_type},
        Conditions=[
            ["content-length-range", 1, max_bytes],
            {"Content-Type": content_type},
        ],
        ExpiresIn=expires_in,
    )
    return post


def s3_origin(bucket: str) -> str:
    """Origin the phone's browser posts to for this bucket (for the phone page's CSP).

    Derived from a presigned URL because the SDK decides virtual-host vs path style and the
    regional host (or the local endpoint); signing is local, no request is made.
    """
    url = presign_client().generate_presigned_url(
        "get_object", Params={"Bucket": bucket, "Key": "origin-probe"}, ExpiresIn=60
    )
    parts = urlsplit(str(url))
    return f"{parts.scheme}://{parts.netloc}"


@dataclass(frozen=True)
class StoredObject:
    size: int
    content_type: str
    version_id: str | None
    head: bytes  # the first bytes, enough for the magic numbers


def _missing(exc: ClientError) -> bool:
    return exc.response.get("Error", {}).get("Code") in ("404", "NoSuchKey", "NotFound", "NoSuchVersion")


def read_head(bucket: str, key: str, version_id: str | None) -> StoredObject | None:
    """Size, declared type, version and first 64 bytes of an upload (one ranged GET of that
    version); None if it no longer exists. Other errors propagate."""
    params: dict[str, Any] = {"Bucket": bucket, "Key": key, "Range": "bytes=0-63"}
    if version_id:
        params["VersionId"] = version_id
    try:
        obj = client("s3").get_object(**params)
    except ClientError as exc:
        if _missing(exc):
            return None
        if exc.response.get("Error", {}).get("Code") == "InvalidRange":  # an empty object
            return StoredObject(0, "", version_id, b"")
        raise
    content_range = str(obj.get("ContentRange", ""))  # "bytes 0-63/12345"
    size = int(content_range.rsplit("/", 1)[1]) if "/" in content_range else int(obj.get("ContentLength", 0))
    return StoredObject(
        size=size,
        content_type=str(obj.get("ContentType", "")),
        version_id=str(obj.get("VersionId")) if obj.get("VersionId") not in (None, "null") else version_id,
        head=obj["Body"].read(),
    )


def rejection_reason(obj: StoredObject, max_bytes: int) -> tuple[str | None, str | None]:
    """(format read from the bytes, None) for an accepted photo, else (None, why not) in words
    the phone can show."""
    if obj.size <= 0:
        return None, "The file is empty."
    if obj.size > max_bytes:
        return None, f"The photo is larger than {max_bytes / 1048576:g} MB."
    fmt = sniff(obj.head)
    if fmt is None:
        return None, f"That file is not a photo. Send {ACCEPTED_WORDS}."
    # The bytes decide, not the declared type (a phone names a PNG saved as .jpg image/jpeg).
    return fmt, None


def content_type_of(fmt: str) -> str:
    return next(t for t, f in ACCEPTED_TYPES.items() if f == fmt)


def make_rendition(bucket: str, key: str, version_id: str | None, out_key: str) -> bool:
    """Decode the upload and store a JPEG the desktop's browser can show; False if the bytes
    cannot be decoded as a photo. Pillow and pi-heif are imported only here."""
    import io

    import pi_heif  # pillow-heif's decode-only build: no HEVC encoder (11 MB) in the asset
    from PIL import Image, ImageOps

    params: dict[str, Any] = {"Bucket": bucket, "Key": key}
    if version_id:
        params["VersionId"] = version_id
    data = client("s3").get_object(**params)["Body"].read()
    pi_heif.register_heif_opener()
    try:
        with Image.open(io.BytesIO(data)) as img:
            img.thumbnail((RENDITION_LONG_EDGE, RENDITION_LONG_EDGE))
            rgb = ImageOps.exif_transpose(img).convert("RGB")
    except Exception:  # any decoder error means: not a photo we can show
        return False
    out = io.BytesIO()
    rgb.save(out, format="JPEG", quality=85)
    client("s3").put_object(Bucket=bucket, Key=out_key, Body=out.getvalue(), ContentType="image/jpeg")
    return True
