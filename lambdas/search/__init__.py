"""SearchLambda: the collections HTTP API (semantic search, item details)."""
