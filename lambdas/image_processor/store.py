"""The processor's writes to `items`: one upsert keyed by the deterministic item_id.

`image_sha256` is the hash of the analysis copy rendered from the object's current bytes. When it
changes (an overwrite with other bytes), the item's current analysis is cleared and its
embeddings are deleted in the same transaction: nothing stored may describe bytes the object no
longer has. The analyzer then points the item at the analysis of the new bytes (an old one when
the bytes came back, A -> B -> A). A redelivery (same bytes) keeps both, and keeps `deferred`.
"""

from __future__ import annotations

import uuid
from typing import Any

# Fixed namespace: item ids must never change between deployments.
_NAMESPACE = uuid.UUID("6f0d3c1e-2a43-4c59-9a5e-4b7e0c1d2f10")

_UPSERT = """
INSERT INTO items (item_id, user_id, bucket, original_key, status, failure_reason, content_type,
                   width, height, size_bytes, etag, thumbnail_key, analysis_key, image_sha256)
VALUES (%(item_id)s, %(user_id)s, %(bucket)s, %(original_key)s, %(status)s, %(failure_reason)s,
        %(content_type)s, %(width)s, %(height)s, %(size_bytes)s, %(etag)s, %(thumbnail_key)s,
        %(analysis_key)s, %(image_sha256)s)
ON CONFLICT (item_id) DO UPDATE SET
    -- Every expression reads the row as it was before this update.
    status = CASE WHEN items.status = 'deferred' AND EXCLUDED.status = 'processed'
                       AND items.image_sha256 IS NOT DISTINCT FROM EXCLUDED.image_sha256
                  THEN items.status ELSE EXCLUDED.status END,
    analysis_version = CASE WHEN EXCLUDED.image_sha256 IS NOT NULL
                                 AND items.image_sha256 IS NOT DISTINCT FROM EXCLUDED.image_sha256
                            THEN items.analysis_version END,
    image_sha256 = EXCLUDED.image_sha256, failure_reason = EXCLUDED.failure_reason,
    content_type = EXCLUDED.content_type, width = EXCLUDED.width, height = EXCLUDED.height,
    size_bytes = EXCLUDED.size_bytes, etag = EXCLUDED.etag, thumbnail_key = EXCLUDED.thumbnail_key,
    analysis_key = EXCLUDED.analysis_key, updated_at = now()
"""

# Vectors that no longer describe the item's current analysis (none, after new bytes) go.
_DROP_STALE_EMBEDDINGS = """
DELETE FROM embeddings e USING items i
WHERE e.item_id = i.item_id AND i.item_id = %(item_id)s
  AND e.analysis_version IS DISTINCT FROM i.analysis_version
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
        "image_sha256": None,
        **fields,
    }
    with conn.transaction():
        conn.execute(_UPSERT, row)
        conn.execute(_DROP_STALE_EMBEDDINGS, row)
