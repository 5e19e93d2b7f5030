"""Functions HTTP API (`functions-api-{env}`): one resolver, routes in modules by subject.

Every route under `/v1/orgs/{org}` is behind the REQUEST authorizer; each route checks that the
key belongs to `{org}` (404 otherwise), its role, and its function scope. `/v1/callback/...`
routes take a per-invocation callback token instead of a key. `/v1/openapi.json` is public.
"""

from __future__ import annotations

from typing import Any

from aws_lambda_powertools import Logger, Metrics
from aws_lambda_powertools.event_handler import Response
from aws_lambda_powertools.utilities.typing import LambdaContext

from lambdas.common.http import json_response, make_resolver
from lambdas.common.tracing import tracer
from lambdas.functions import callback_routes, functions_routes, invoke_routes, openapi, org_routes
from lambdas.functions.invoke_service import QuotaError

logger = Logger()
metrics = Metrics()
app = make_resolver(logger)
app.include_router(functions_routes.router)
app.include_router(invoke_routes.router)
app.include_router(org_routes.router)
app.include_router(callback_routes.router)


@app.exception_handler(QuotaError)
def _quota(exc: QuotaError) -> Response[dict]:
    """429 with `Retry-After` when waiting helps (the per-minute limit)."""
    return json_response(429, {"error": exc.msg}, headers=exc.headers)


@app.get("/v1/openapi.json", summary="This API's OpenAPI document", tags=["meta"])
def openapi_document() -> Response[str]:
    return Response[str](
        status_code=200,
        content_type="application/json",
        body=openapi.document(),
        headers={"Cache-Control": "max-age=300"},
    )


@logger.inject_lambda_context(correlation_id_path="requestContext.requestId")
@metrics.log_metrics
@tracer.capture_lambda_handler
def handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    return app.resolve(event, context)
