"""Collections HTTP API (IAM-authorized HTTP API, payload v2).

GET /search?q=&user_id=&category=&limit=   semantic search over one user's items' analyses
GET /items/{item_id}?user_id=              the item, its current analysis, a short-lived thumbnail URL

Trust model: the API is for trusted backends that sign with IAM (the route's authorizer), acting
for one end user at a time. Every read names that user (`user_id`, required); another user's item
is 404. Searching across all users (`all_users=true` instead of `user_id`) is allowed only to the
IAM principals listed in config (`CROSS_USER_PRINCIPALS`, the callers' `userArn`); others get 403.

The query is embedded by the same provider and model as the stored vectors
(`input_type="query"`), and results are ranked by cosine similarity (score = 1 - distance).
"""

from __future__ import annotations

import os
import re
import uuid
from typing import Any

from aws_lambda_powertools import Logger, Metrics
from aws_lambda_powertools.event_handler import Response
from aws_lambda_powertools.event_handler.exceptions import BadRequestError
from aws_lambda_powertools.metrics import MetricUnit

from lambdas.collections import embeddings, pg
from lambdas.collections.pipeline import CATEGORIES, USER_ID_PATTERN, RetryableError
from lambdas.collections.settings import settings
from lambdas.common.entry import entry
from lambdas.common.http import HttpError, json_response, make_resolver
from lambdas.common.s3 import presign_client
from lambdas.common.settings import env_int
from lambdas.common.tracing import tracer
from lambdas.search import queries

logger = Logger()
metrics = Metrics()
app = make_resolver(logger)

MAX_QUERY_CHARS = 500
MAX_LIMIT = 50
# ASCII digits only: str.isdigit() is true for "²" and "٣", which int() refuses or reads.
_LIMIT = re.compile(r"[0-9]{1,3}")
_USER_ID = re.compile(USER_ID_PATTERN)
_CONTROL = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f]")


def _param(name: str) -> str | None:
    value = app.current_event.get_query_string_value(name, "")
    value = value.strip() if value else ""
    return value or None


def _user_id() -> str | None:
    """The user this read is for; None only for a cross-user read by an allowed principal."""
    user_id = _param("user_id")
    all_users = (_param("all_users") or "").lower() == "true"
    if all_users:
        if user_id is not None:
            raise BadRequestError("give user_id or all_users=true, not both")
        caller = ((app.current_event.raw_event.get("requestContext") or {}).get("authorizer") or {}).get("iam") or {}
        if caller.get("userArn") not in settings().cross_user_principals:
            raise HttpError(403, "reading across all users is allowed only to the principals listed in config")
        return None
    if user_id is None:
        raise BadRequestError("user_id is required (the user this read is for)")
    if not _USER_ID.fullmatch(user_id):
        raise BadRequestError("user_id is not a valid user id")
    return user_id


def _thumbnail_url(key: str | None) -> str | None:
    if not key:
        return None
    return presign_client().generate_presigned_url(
        "get_object",
        Params={"Bucket": settings().derived_bucket(), "Key": key},
        ExpiresIn=env_int("THUMBNAIL_URL_TTL_SECONDS", 300),
    )


@app.get("/search")
@tracer.capture_method
def search() -> Response:
    q = _param("q")
    if q is None or len(q) > MAX_QUERY_CHARS:
        raise BadRequestError(f"q is required (1..{MAX_QUERY_CHARS} characters)")
    if _CONTROL.search(q):
        raise BadRequestError("q must not contain control characters")
    category = _param("category")
    if category is not None and category not in CATEGORIES:
        raise BadRequestError(f"category must be one of: {', '.join(CATEGORIES)}")
    raw_limit = _param("limit") or "10"
    if not _LIMIT.fullmatch(raw_limit) or not 1 <= int(raw_limit) <= MAX_LIMIT:
        raise BadRequestError(f"limit must be an integer from 1 to {MAX_LIMIT}")
    user_id = _user_id()
    embedder = embeddings.embedder()
    try:
        [vector] = embedder.embed([q], "query")
    except RetryableError as exc:
        logger.warning("embedding provider unavailable", extra={"error": str(exc)})
        raise HttpError(503, "search is temporarily unavailable") from None
    results = queries.search(
        pg.connection(), vector, embedder.model, user_id=user_id, category=category, limit=int(raw_limit)
    )
    metrics.add_metric(name="Searches", unit=MetricUnit.Count, value=1)
    return json_response(
        200,
        {
            "query": q,
            "model": embedder.model,
            "count": len(results),
            "results": [
                {
                    "item_id": str(r["item_id"]),
                    "score": round(float(r["score"]), 6),
                    "user_id": r["user_id"],
                    "category": r["category"],
                    "subcategories": r["subcategories"],
                    "headline": r["headline"],
                    "summary": r["summary"],
                    "thumbnail_url": _thumbnail_url(r["thumbnail_key"]),
                }
                for r in results
            ],
        },
    )


@app.get("/items/<item_id>")
@tracer.capture_method
def get_item(item_id: str) -> Response:
    try:
        item_id = str(uuid.UUID(item_id))
    except ValueError:
        raise HttpError(404, "item not found") from None
    user_id = _user_id()
    found = queries.item(pg.connection(), item_id)
    if found is None or (user_id is not None and found["user_id"] != user_id):
        raise HttpError(404, "item not found")
    found["thumbnail_url"] = _thumbnail_url(found.pop("thumbnail_key"))
    found["thumbnail_url_expires_in"] = env_int("THUMBNAIL_URL_TTL_SECONDS", 300) if found["thumbnail_url"] else None
    return json_response(200, found)


@entry(logger, metrics, correlation_id_path="requestContext.requestId")
def handler(event: dict[str, Any], context: Any) -> dict[str, Any]:
    logger.debug("request", extra={"path": event.get("rawPath"), "region": os.environ.get("AWS_REGION")})
    return app.resolve(event, context)
