"""S3 side of an upload: the presigned POST a phone uses, the short-lived GET the desktop shows,
and the HEAD check of what actually arrived.

A presigned POST (not PUT) is used because only a POST policy can cap the size
(`content-length-range`) and constrain the Content-Type; the key is exact, not a prefix.
"""

from __future__ import annotations

import re
import uuid
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

from botocore.exceptions import ClientError

from lambdas.common.aws import client
from lambdas.common.s3 import presign_client
from lambdas.qr_upload.config import UPLOAD_PREFIX
from lambdas.qr_upload.sessions import is_valid_session_id

_KEY = re.compile(r"^session-uploads/(?P<session>[^/]+)/image-(?P<suffix>[0-9a-f]{32})$")
_CONTENT_TYPE = re.compile(r"^image/[a-z0-9][a-z0-9.+-]{0,63}$")
DEFAULT_CONTENT_TYPE = "image/jpeg"


def new_upload_key(session_id: str) -> str:
    # A uuid rather than a timestamp: two requests in the same second still get distinct keys.
    return f"{UPLOAD_PREFIX}{session_id}/image-{uuid.uuid4().hex}"


def session_id_from_key(key: str) -> str | None:
    """The session id in an upload key, or None if the key is not one this system issues."""
    match = _KEY.match(key)
    if not match or not is_valid_session_id(match.group("session")):
        return None
    return match.group("session")


def is_image_content_type(value: str | None) -> bool:
    return bool(value) and bool(_CONTENT_TYPE.match(str(value).lower()))


def presigned_post(bucket: str, key: str, content_type: str, max_bytes: int, expires_in: int) -> dict[str, Any]:
    """`{"url", "fields"}`; the form must send every field before the file part."""
    post: dict[str, Any] = presign_client().generate_presigned_post(
        Bucket=bucket,
        Key=key,
        Fields={"Content-Type": content_type},
        Conditions=[
            ["content-length-range", 1, max_bytes],
            ["starts-with", "$Content-Type", "image/"],
        ],
        ExpiresIn=expires_in,
    )
    return post


def presigned_get(bucket: str, key: str, expires_in: int) -> str:
    url: str = presign_client().generate_presigned_url(
        "get_object", Params={"Bucket": bucket, "Key": key}, ExpiresIn=expires_in
    )
    return url


def s3_origin(bucket: str) -> str:
    """Origin the browser talks to for this bucket (for the pages' CSP).

    Derived from a presigned URL because the SDK decides virtual-host vs path style and the
    regional host (or the local endpoint); signing is local, no request is made.
    """
    parts = urlsplit(presigned_get(bucket, "origin-probe", 60))
    return f"{parts.scheme}://{parts.netloc}"


@dataclass(frozen=True)
class StoredObject:
    size: int
    content_type: str


def head(bucket: str, key: str) -> StoredObject | None:
    """Size and type of an uploaded object; None if it no longer exists. Other errors propagate."""
    try:
        meta = client("s3").head_object(Bucket=bucket, Key=key)
    except ClientError as exc:
        if exc.response.get("Error", {}).get("Code") in ("404", "NoSuchKey", "NotFound"):
            return None
        raise
    return StoredObject(size=int(meta.get("ContentLength", 0)), content_type=str(meta.get("ContentType", "")))


def rejection_reason(obj: StoredObject, max_bytes: int) -> str | None:
    """Why an object must not complete a session (the POST policy should already have refused it)."""
    if obj.size <= 0:
        return "empty object"
    if obj.size > max_bytes:
        return f"object is {obj.size} bytes, limit {max_bytes}"
    if not is_image_content_type(obj.content_type):
        return f"content type {obj.content_type or 'missing'} is not an image"
    return None
