"""Functions HTTP API (`functions-api-{env}`): one resolver, routes in modules by subject.

Every route under `/v1/orgs/{org}` is behind the REQUEST authorizer; each route checks that the
key belongs to `{org}` (404 otherwise), its role, and its function scope. `/v1/callback/...`
routes take a per-invocation callback token instead of a key. `/v1/openapi.json` is public.

The registry's routes (functions, code, versions, the live alias) load with this module. The
others (invoking, invocations, results, usage, audit, callbacks), with the services behind them
(quotas, idempotency, the Lambda client, callback signing), load on the first request that no
loaded route matches: a cold start that reads the registry does not wait for them.
"""

from __future__ import annotations

from typing import Any

from aws_lambda_powertools import Logger, Metrics
from aws_lambda_powertools.event_handler import Response
from aws_lambda_powertools.utilities.typing import LambdaContext

from lambdas.common.entry import entry
from lambdas.common.http import error_response, make_resolver
from lambdas.functions import functions_routes, openapi

logger = Logger()
metrics = Metrics()
app = make_resolver(logger)
app.include_router(functions_routes.router)
_state = {"all_routes": False, "no_route": False}


def include_all_routes() -> bool:
    """Include the routers not loaded yet (the OpenAPI generator needs them all); False when
    they already were. A router's own exception handlers come with it."""
    if _state["all_routes"]:
        return False
    from lambdas.functions import callback_routes, invoke_routes, org_routes

    for module in (invoke_routes, org_routes, callback_routes):
        app.include_router(module.router)
    _state["all_routes"] = True
    return True


@app.not_found
def _not_found(_exc: Exception) -> Response[str]:
    _state["no_route"] = True  # no loaded route matched this request
    return error_response(404, "Not Found")


@app.get("/v1/openapi.json", summary="This API's OpenAPI document", tags=["meta"])
def openapi_document() -> Response[str]:
    return Response[str](
        status_code=200,
        content_type="application/json",
        body=openapi.document(),
        headers={"Cache-Control": "max-age=300"},
    )


def resolve(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    """The answer of the route that matches; if no loaded route does, of the one that does once
    every route is loaded (a route that ran and answered 404 is never run twice)."""
    _state["no_route"] = False
    answer = app.resolve(event, context)
    if _state["no_route"] and include_all_routes():
        answer = app.resolve(event, context)
    return answer


@entry(logger, metrics, correlation_id_path="requestContext.requestId")
def handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    return resolve(event, context)
