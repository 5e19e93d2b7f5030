"""Names shared by the `Functions-{env}` stack, its handlers, the CLIs and the local runtime.

Light on purpose (standard library only): the stack, the scripts and every handler import it.
"""

from __future__ import annotations

import re

from lambdas.common import naming

STACK_BASE = "Functions"
_SYSTEM = "functions"

# --- the platform's own Lambda functions (`functions-{short}-{env}`) ------------------------------
API = "api"
DEPLOYER = "deployer"
AUTHORIZER = "authorizer"


def platform_function_name(short: str, env: str) -> str:
    return naming.function_name(_SYSTEM, short, env)


def api_name(env: str) -> str:
    return naming.env_scoped(_SYSTEM, env)


# --- user functions -----------------------------------------------------------------------------
# Every user function is the Lambda function `ufn-{env}-{org}-{fid}`; the deployer's IAM policy is
# scoped to `ufn-{env}-*`, so nothing else in the account can be touched through it.
USER_FUNCTION_PREFIX = "ufn"
LIVE_ALIAS = "live"
USER_RUNTIME = "python3.12"
USER_ARCHITECTURE = "arm64"
MANAGED_BY_TAG = "managed-by"
MANAGED_BY_VALUE = "platform-functions"
ENV_TAG = "env"
ORG_TAG = "org"
FUNCTION_ID_TAG = "function-id"

ORG_PATTERN = re.compile(r"^[a-z0-9](?:[a-z0-9-]{0,22}[a-z0-9])?$")  # at most 24 characters
FUNCTION_ID_PATTERN = re.compile(r"^fn-[a-z0-9]{12}$")
FUNCTION_NAME_PATTERN = re.compile(r"^[A-Za-z][A-Za-z0-9_-]{0,63}$")
LAMBDA_NAME_LIMIT = 64


def user_function_prefix(env: str) -> str:
    return f"{USER_FUNCTION_PREFIX}-{env}-"


def user_function_name(env: str, org: str, fid: str) -> str:
    """`ufn-{env}-{org}-{fid}`: `fid` is `fn-` + 12 characters, `org` at most 24, so a name stays
    within Lambda's 64 characters for any environment name of up to 19."""
    name = f"{user_function_prefix(env)}{org}-{fid}"
    if len(name) > LAMBDA_NAME_LIMIT:
        raise ValueError(f"user function name {name!r} exceeds {LAMBDA_NAME_LIMIT} characters")
    return name


def user_log_group(function_name: str) -> str:
    return f"/aws/lambda/{function_name}"


# --- S3 keys in the code bucket ------------------------------------------------------------------
UPLOADS_PREFIX = "uploads/"  # presigned POST targets, expire after a day
CODE_PREFIX = "code/"  # validated zips, one per code SHA-256, kept while a version uses them


def upload_key(org: str, fid: str, upload_id: str) -> str:
    return f"{UPLOADS_PREFIX}{org}/{fid}/{upload_id}.zip"


def code_key(org: str, fid: str, sha256_hex: str) -> str:
    return f"{CODE_PREFIX}{org}/{fid}/{sha256_hex}.zip"


def code_prefix(org: str, fid: str) -> str:
    return f"{CODE_PREFIX}{org}/{fid}/"


# --- environment variables of the platform's functions -----------------------------------------
ENV_TABLE = "FUNCTIONS_TABLE_NAME"
ENV_CODE_BUCKET = "CODE_BUCKET_NAME"
ENV_DEPLOY_QUEUE_URL = "DEPLOY_QUEUE_URL"
ENV_PLATFORM_ENV = "PLATFORM_ENV"
ENV_EXECUTION_ROLE_ARN = "USER_FUNCTION_ROLE_ARN"
ENV_SECRET_PREFIX = "USER_SECRET_PARAMETER_PREFIX"  # noqa: S105 - SSM SecureString names of users' secret variables
ENV_MAX_MEMORY_MB = "USER_MAX_MEMORY_MB"
ENV_MAX_TIMEOUT_SECONDS = "USER_MAX_TIMEOUT_SECONDS"
ENV_RESERVED_CONCURRENCY = "USER_RESERVED_CONCURRENCY"  # empty: unreserved
ENV_ALLOWED_LAYERS = "USER_ALLOWED_LAYERS"  # comma-separated ARNs; empty by default
ENV_LOG_RETENTION_DAYS = "USER_LOG_RETENTION_DAYS"

# --- stack outputs -------------------------------------------------------------------------------
OUTPUT_API_URL = "FunctionsApiUrl"
OUTPUT_TABLE = "FunctionsTableName"
OUTPUT_CODE_BUCKET = "FunctionsCodeBucketName"

# --- DynamoDB (one table, pk/sk strings, one generic GSI) ---------------------------------------
GSI1 = "gsi1"
GSI1_PK = "gsi1pk"
GSI1_SK = "gsi1sk"
TTL_ATTRIBUTE = "ttl"

# --- invoking (Functions 2 of 2) ------------------------------------------------------------------
RECORDER = "recorder"
BATCH = "batch"
INPUTS_PREFIX = "inputs/"  # async payloads over Lambda's 256 KB Event limit, by reference
RESULTS_PREFIX = "results/"  # invocation results over 256 KB


def input_key(org: str, iid: str) -> str:
    return f"{INPUTS_PREFIX}{org}/{iid}.json"


def result_key(org: str, iid: str) -> str:
    return f"{RESULTS_PREFIX}{org}/{iid}.json"


ENV_RESULTS_QUEUE_URL = "RESULTS_QUEUE_URL"
ENV_RESULTS_QUEUE_ARN = "RESULTS_QUEUE_ARN"  # the deployer sets it as every user function's destination
ENV_BATCH_QUEUE_URL = "BATCH_QUEUE_URL"
ENV_IDEMPOTENCY_TABLE = "IDEMPOTENCY_TABLE_NAME"
ENV_CALLBACK_KEY_SECRET_ARN = "CALLBACK_KEY_SECRET_ARN"  # noqa: S105 - the secret's ARN, not a secret
ENV_PUBLIC_API_URL = "PUBLIC_API_URL"
ENV_INVOCATION_RETENTION_DAYS = "INVOCATION_RETENTION_DAYS"
ENV_ASYNC_RETRY_ATTEMPTS = "ASYNC_RETRY_ATTEMPTS"
ENV_ASYNC_MAX_EVENT_AGE_SECONDS = "ASYNC_MAX_EVENT_AGE_SECONDS"
ENV_QUOTA_MAX_FUNCTIONS = "QUOTA_MAX_FUNCTIONS"
ENV_QUOTA_VERSIONS_KEPT = "QUOTA_VERSIONS_KEPT"
ENV_QUOTA_INVOCATIONS_PER_MINUTE = "QUOTA_INVOCATIONS_PER_MINUTE"
ENV_QUOTA_MONTHLY_GB_SECONDS = "QUOTA_MONTHLY_GB_SECONDS"
# Not set by the stack (its default is the platform's); tests and the local e2e shorten it.
ENV_WEBHOOK_RETRY_BASE_SECONDS = "WEBHOOK_RETRY_BASE_SECONDS"
