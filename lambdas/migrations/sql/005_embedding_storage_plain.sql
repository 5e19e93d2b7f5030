-- Keep each 1024-d vector (4 KB) inline in the heap instead of TOAST. With TOAST the heap looks
-- tiny, the planner prices a sequential scan far below its real cost (every row is detoasted)
-- and picks it over the HNSW index for unfiltered searches: at 100,000 rows that was 0.5 s per
-- query instead of a few ms (scripts/bench/bench_collections.py). Applies to rows written from
-- now on; the table is new, so that is all of them.
ALTER TABLE embeddings ALTER COLUMN embedding SET STORAGE PLAIN;
