"""The processor's writes to `items`: one upsert keyed by the deterministic item_id."""

from __future__ import annotations

import uuid
from typing import Any

# Fixed namespace: item ids must never change between deployments.
_NAMESPACE = uuid.UUID("6f0d3c1e-2a43-4c59-9a5e-4b7e0c1d2f10")

_UPSERT = """
INSERT INTO items (item_id, user_id, bucket, original_key, status, failure_reason, content_type,
                   width, height, size_bytes, etag, thumbnail_key, analysis_key)
VALUES (%(item_id)s, %(user_id)s, %(bucket)s, %(original_key)s, %(status)s, %(failure_reason)s,
        %(content_type)s, %(width)s, %(height)s, %(size_bytes)s, %(etag)s, %(thumbnail_key)s,
        %(analysis_key)s)
ON CONFLICT (item_id) DO UPDATE SET
    status = EXCLUDED.status, failure_reason = EXCLUDED.failure_reason,
    content_type = EXCLUDED.content_type, width = EXCLUDED.width, height = EXCLUDED.height,
    size_bytes = EXCLUDED.size_bytes, etag = EXCLUDED.etag, thumbnail_key = EXCLUDED.thumbnail_key,
    analysis_key = EXCLUDED.analysis_key, updated_at = now()
"""


def item_id_for(bucket: str, key: str) -> str:
    """Deterministic: the same object always maps to the same item (idempotent redelivery)."""
    return str(uuid.uuid5(_NAMESPACE, f"s3://{bucket}/{key}"))


def upsert_item(conn: Any, **fields: Any) -> None:
    row = {
        "failure_reason": None,
        "content_type": None,
        "width": None,
        "height": None,
        "size_bytes": None,
        "etag": None,
        "thumbnail_key": None,
        "analysis_key": None,
        **fields,
    }
    conn.execute(_UPSERT, row)
