-- One login role per collections function, with only the privileges its own queries need; the
-- master user is left to the migration Trigger. The Trigger also sets each role's password from
-- that function's own secret (lambdas/migrations/roles.py), so no password is in this file.
-- Roles belong to the whole cluster, hence created only when missing (tests share one server).
-- A later migration that adds a table must grant on it too, or no function can use it.
DO $$
DECLARE
    role_name text;
BEGIN
    FOREACH role_name IN ARRAY ARRAY['collections_processor', 'collections_analyzer', 'collections_deferred',
                                     'collections_embedder', 'collections_search'] LOOP
        IF NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = role_name) THEN
            EXECUTE format('CREATE ROLE %I LOGIN', role_name);
        END IF;
        EXECUTE format('GRANT CONNECT ON DATABASE %I TO %I', current_database(), role_name);
        EXECUTE format('GRANT USAGE ON SCHEMA public TO %I', role_name);
        -- Timeouts as role defaults, not connection options: RDS Proxy refuses the `options`
        -- startup parameter, and a SET would pin each client to one database connection.
        EXECUTE format('ALTER ROLE %I IN DATABASE %I SET statement_timeout = %L', role_name, current_database(), '10s');
        EXECUTE format('ALTER ROLE %I IN DATABASE %I SET lock_timeout = %L', role_name, current_database(), '10s');
    END LOOP;
END $$;
-- Nobody but the owner creates objects (PostgreSQL 15+ already revokes this; older ones do not).
REVOKE CREATE ON SCHEMA public FROM PUBLIC;

-- Image processor (image_processor/store.py): upserts its item (ON CONFLICT DO UPDATE reads the
-- existing row) and deletes the vectors that no longer describe the item's current bytes.
GRANT SELECT, INSERT, UPDATE ON items TO collections_processor;
GRANT SELECT, DELETE ON embeddings TO collections_processor;

-- Analyzer (analyzer/store.py): reads items, points one at its current analysis (the columns
-- below; SELECT ... FOR UPDATE needs UPDATE on some column), writes analyses and budget charges.
GRANT SELECT ON items TO collections_analyzer;
GRANT UPDATE (analysis_version, image_sha256, status, updated_at) ON items TO collections_analyzer;
GRANT SELECT, INSERT ON analyses, analysis_charges TO collections_analyzer;

-- Deferred-analyses requeue (analyzer/deferred.py): lists deferred items, nothing else.
GRANT SELECT ON items TO collections_deferred;

-- Embedder (embedder/store.py): reads the current analysis and writes vectors and the vector
-- cache. Its `SELECT ... FOR SHARE` on the item (which keeps the processor from changing the bytes
-- between the check and the write) needs UPDATE on some column of items: updated_at, the one
-- whose change alters nothing that any reader trusts.
GRANT SELECT ON items, analyses TO collections_embedder;
GRANT UPDATE (updated_at) ON items TO collections_embedder;
GRANT SELECT, INSERT, UPDATE ON embeddings TO collections_embedder;
GRANT SELECT, INSERT ON embedding_cache TO collections_embedder;

-- Search and the item API (search/queries.py): read only.
GRANT SELECT ON items, analyses, embeddings TO collections_search;
