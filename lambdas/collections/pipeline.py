"""Contract of the collections pipeline, shared by its functions: user ids, categories, and the
two small AWS helpers they all need (events, API keys). The names the stacks spell too (event
sources and detail-types, prefixes, parameter names, environment keys) are in names.py.

Pipeline: S3 ObjectCreated -> ImageProcessorLambda -> `ImageProcessed` -> AnalyzerLambda ->
`AnalysisComplete` -> EmbedderLambda; SearchLambda reads what they wrote.
"""

from __future__ import annotations

import json
from typing import Any

from lambdas.collections.settings import settings
from lambdas.common.aws import client
from lambdas.common.containers import per_container

# A user id is the first segment of an image key (`{user_id}/{filename}`) and the `user_id` every
# search names: one pattern for both, so search can refuse what no item can have (NUL included).
USER_ID_PATTERN = r"[A-Za-z0-9][A-Za-z0-9._@+=-]{0,127}"

# The fixed category list the analysis tool schema enforces and search filters accept.
CATEGORIES = (
    "food",
    "travel",
    "home",
    "fashion",
    "beauty",
    "jewelry",
    "art",
    "nature",
    "pets",
    "people",
    "technology",
    "vehicles",
    "documents",
    "screenshots",
    "other",
)


class RetryableError(RuntimeError):
    """A provider failure worth retrying later (throttling, 5xx, timeout, connection): handlers
    let it propagate so Lambda retries and the on-failure queue keeps what still fails."""


class PublishError(RuntimeError):
    """EventBridge did not accept the event (retryable: the handler lets Lambda retry)."""


def publish(source: str, detail_type: str, detail: dict[str, Any]) -> None:
    response = client("events").put_events(
        Entries=[
            {
                "EventBusName": settings().event_bus(),
                "Source": source,
                "DetailType": detail_type,
                "Detail": json.dumps(detail, separators=(",", ":")),
            }
        ]
    )
    if response.get("FailedEntryCount"):
        entry = response["Entries"][0]
        raise PublishError(f"put_events failed: {entry.get('ErrorCode')} {entry.get('ErrorMessage')}")


@per_container
def api_key(name: str) -> str | None:
    """The decrypted SecureString `{COLLECTIONS_PARAMETER_PREFIX}/{name}`, or None if it is not set.

    Fetched once per container. A missing parameter is a normal state (local runs use the local
    providers); any other error propagates so the invocation is retried.
    """
    prefix = settings().parameter_prefix()
    ssm = client("ssm")
    try:
        value = ssm.get_parameter(Name=f"{prefix}/{name}", WithDecryption=True)["Parameter"]["Value"]
    except ssm.exceptions.ParameterNotFound:
        value = None
    return value.strip() or None if value else None


def local_providers_allowed() -> bool:
    """Whether a missing API key may fall back to the offline `local` providers (never in prod)."""
    return settings().allow_local_providers
