-- What the item's stored analysis and embedding describe is its *current* content, not its latest
-- analysis: an overwrite A -> B -> A must show A's analysis again, which is an older version.
-- image_sha256: SHA-256 of the analysis copy the processor rendered from the current bytes
-- (the same hash analyses.image_sha256 holds); analysis_version: the analysis that describes
-- those bytes, NULL while none does (the processor clears it when the bytes change).
ALTER TABLE items ADD COLUMN image_sha256 text;
ALTER TABLE items ADD COLUMN analysis_version integer;
ALTER TABLE items ADD CONSTRAINT items_current_analysis_fkey
    FOREIGN KEY (item_id, analysis_version) REFERENCES analyses (item_id, version);
-- Rows analyzed before this migration: their latest analysis is the best guess of the current one.
UPDATE items i SET analysis_version = a.version, image_sha256 = a.image_sha256
FROM (SELECT DISTINCT ON (item_id) item_id, version, image_sha256 FROM analyses
      ORDER BY item_id, version DESC) a
WHERE a.item_id = i.item_id;
-- Vectors by (model, source text hash): text embedded once is never embedded again, whichever
-- item (or the same item, after A -> B -> A) needs it. The text is the model's analysis of
-- identical image bytes, so sharing a vector reveals nothing about whose item it came from.
CREATE TABLE embedding_cache (
    model         text NOT NULL,
    source_sha256 text NOT NULL,
    dimensions    integer NOT NULL CHECK (dimensions = 1024),
    embedding     vector(1024) NOT NULL,
    created_at    timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (model, source_sha256)
);
ALTER TABLE embedding_cache ALTER COLUMN embedding SET STORAGE PLAIN;
INSERT INTO embedding_cache (model, source_sha256, dimensions, embedding)
SELECT DISTINCT ON (model, source_sha256) model, source_sha256, dimensions, embedding FROM embeddings
ORDER BY model, source_sha256, updated_at DESC
ON CONFLICT DO NOTHING;
