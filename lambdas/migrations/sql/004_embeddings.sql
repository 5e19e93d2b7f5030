-- One embedding per (item, model). user_id and category are copied from the item and the
-- embedded analysis so filtered searches need no join before the index scan.
-- The dimension is fixed by the column type (an HNSW index needs one); a different
-- EMBEDDING_DIMENSIONS needs a new migration.
CREATE TABLE embeddings (
    item_id          uuid NOT NULL REFERENCES items (item_id) ON DELETE CASCADE,
    model            text NOT NULL,
    dimensions       integer NOT NULL CHECK (dimensions = 1024),
    embedding        vector(1024) NOT NULL,
    source_sha256    text NOT NULL,
    analysis_version integer NOT NULL,
    user_id          text NOT NULL,
    category         text NOT NULL,
    created_at       timestamptz NOT NULL DEFAULT now(),
    updated_at       timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (item_id, model)
);
-- Cosine distance (<=>) is what search orders by. m/ef_construction are pgvector's defaults
-- made explicit; bench_collections measures recall with them.
CREATE INDEX embeddings_hnsw_cosine_idx ON embeddings
    USING hnsw (embedding vector_cosine_ops) WITH (m = 16, ef_construction = 64);
CREATE INDEX embeddings_user_category_idx ON embeddings (model, user_id, category);
