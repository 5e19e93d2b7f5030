"""Names shared by the collections stacks (`CollectionsDataStack-{env}`,
`CollectionsComputeStack-{env}`), the collections handlers and scripts/put_parameters.py.

Light on purpose (standard library only): the stacks import it without loading boto3. It lives in
lambdas/collections, which only the collections function groups' assets hold
(infrastructure/constructs/bundling.py).
"""

from __future__ import annotations

# --- events on the collections bus ---------------------------------------------------------------
PROCESSOR_SOURCE = "collections.imageprocessor"
IMAGE_PROCESSED = "ImageProcessed"
ANALYZER_SOURCE = "collections.analyzer"
ANALYSIS_COMPLETE = "AnalysisComplete"
SCHEMA_VERSION = 1  # of every event's detail
# What an ImageProcessed detail says of its item (besides `derived_bucket` and `schema_version`),
# each the `items` column of the same name: the processor publishes them, and the analyzer publishes
# a deferred item's again from its row.
IMAGE_PROCESSED_FIELDS = (
    "item_id",
    "user_id",
    "bucket",
    "original_key",
    "thumbnail_key",
    "analysis_key",
    "content_type",
    "width",
    "height",
    "etag",
    "image_sha256",
)

# --- the derived bucket: what the processor writes, the analyzer and search read ----------------
THUMBNAILS_PREFIX = "thumbnails/"
ANALYSIS_PREFIX = "analysis/"


def thumbnail_key(item_id: str) -> str:
    return f"{THUMBNAILS_PREFIX}{item_id}.jpg"


def analysis_key(item_id: str) -> str:
    return f"{ANALYSIS_PREFIX}{item_id}.jpg"


# --- the database ----------------------------------------------------------------------------------
DB_NAME = "collections"
DB_PORT = 5432

# --- SSM SecureString names under `{parameter_prefix}/collections/` (scripts/put_parameters.py) ---
ANTHROPIC_API_KEY = "ANTHROPIC_API_KEY"
VOYAGE_API_KEY = "VOYAGE_API_KEY"
OPENAI_API_KEY = "OPENAI_API_KEY"
LANGSMITH_API_KEY = "LANGSMITH_API_KEY"
PARAMETER_NAMES = (ANTHROPIC_API_KEY, VOYAGE_API_KEY, OPENAI_API_KEY, LANGSMITH_API_KEY)

# --- environment variables of the collections functions -------------------------------------------
# Where and how to connect (lambdas/collections/pg.py); DB_SECRET_ARN is each function's own role secret.
ENV_DB_HOST = "DB_HOST"
ENV_DB_PORT = "DB_PORT"
ENV_DB_VIA_PROXY = "DB_VIA_PROXY"
ENV_DB_NAME = "DB_NAME"
ENV_DB_SECRET_ARN = "DB_SECRET_ARN"  # noqa: S105 - the secret's ARN, not a secret
ENV_DB_STATEMENT_TIMEOUT_MS = "DB_STATEMENT_TIMEOUT_MS"
ENV_PARAMETER_PREFIX = "COLLECTIONS_PARAMETER_PREFIX"
ENV_ALLOW_LOCAL_PROVIDERS = "ALLOW_LOCAL_PROVIDERS"
ENV_EVENT_BUS_NAME = "EVENT_BUS_NAME"
ENV_DERIVED_BUCKET = "DERIVED_BUCKET"
ENV_EMBEDDING_MODEL = "EMBEDDING_MODEL"
ENV_EMBEDDING_DIMENSIONS = "EMBEDDING_DIMENSIONS"
ENV_ANALYSIS_MODEL = "ANALYSIS_MODEL"
ENV_OPENAI_ANALYSIS_MODEL = "OPENAI_ANALYSIS_MODEL"
ENV_ANALYSIS_DAILY_BUDGET = "ANALYSIS_DAILY_BUDGET"
ENV_FAILURE_QUEUE_URL = "FAILURE_QUEUE_URL"
ENV_CROSS_USER_PRINCIPALS = "CROSS_USER_PRINCIPALS"
