-- pgvector for embeddings. RDS PostgreSQL 16+ ships it; the master user may create it.
CREATE EXTENSION IF NOT EXISTS vector;
