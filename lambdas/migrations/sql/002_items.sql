-- One row per original upload. item_id is derived from bucket + key by the processor, so a
-- redelivered S3 event updates the same row instead of adding one.
CREATE TABLE items (
    item_id        uuid PRIMARY KEY,
    user_id        text NOT NULL,
    bucket         text NOT NULL,
    original_key   text NOT NULL,
    status         text NOT NULL CHECK (status IN ('processed', 'failed')),
    failure_reason text,
    content_type   text,
    width          integer,
    height         integer,
    size_bytes     bigint,
    etag           text,
    thumbnail_key  text,
    analysis_key   text,
    created_at     timestamptz NOT NULL DEFAULT now(),
    updated_at     timestamptz NOT NULL DEFAULT now(),
    UNIQUE (bucket, original_key)
);
CREATE INDEX items_user_id_idx ON items (user_id, created_at DESC);
