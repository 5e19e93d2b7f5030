"""HTTP API helpers: one resolver shape for every HTTP handler, every error as JSON.

Handlers raise Powertools' `ServiceError` subclasses (BadRequestError, NotFoundError, ...) or
`HttpError` for statuses Powertools has no class for; the handlers installed here turn each into
`{"error": "..."}` with its status. Anything unexpected is logged with its traceback and answered
with a generic 500, so a caller never sees internals.

Input validation is explicit code in each handler rather than Powertools' pydantic validation:
pydantic would add to every cold start for a handful of fields.
"""

from __future__ import annotations

import json
from typing import Any

from aws_lambda_powertools import Logger
from aws_lambda_powertools.event_handler import APIGatewayHttpResolver, Response
from aws_lambda_powertools.event_handler.api_gateway import Router
from aws_lambda_powertools.event_handler.exceptions import BadRequestError, ServiceError

from lambdas.common.responses import JSON, NO_STORE


class HttpError(ServiceError):
    """A ServiceError for any status code (e.g. 409, 410, 413)."""


def json_response(status: int, payload: Any, headers: dict[str, str] | None = None) -> Response:
    return Response(
        status_code=status,
        content_type=JSON,
        body=json.dumps(payload, separators=(",", ":")),
        headers={"Cache-Control": NO_STORE, **(headers or {})},
    )


def error_response(status: int, message: str) -> Response:
    return json_response(status, {"error": message})


def make_resolver(logger: Logger) -> APIGatewayHttpResolver:
    app = APIGatewayHttpResolver()

    @app.exception_handler(ServiceError)
    def _service_error(exc: ServiceError) -> Response:
        message = exc.msg if isinstance(exc.msg, str) else json.dumps(exc.msg)
        if exc.status_code >= 500:
            logger.error("request failed", extra={"status": exc.status_code, "error": message})
        return error_response(exc.status_code, message)

    @app.not_found
    def _not_found(_exc: Exception) -> Response:
        return error_response(404, "Not Found")

    @app.exception_handler(Exception)
    def _unexpected(exc: Exception) -> Response:
        logger.exception("unhandled error")
        return error_response(500, "Internal Server Error")

    return app


def json_body(app: APIGatewayHttpResolver | Router, *, required: bool = False) -> dict[str, Any]:
    """The request body as a JSON object; an empty body is `{}` unless `required`. A body that is
    not UTF-8 (or, flagged base64, is not base64) is a 400 like any other malformed body."""
    try:
        raw = app.current_event.decoded_body
    except (ValueError, UnicodeDecodeError):  # binascii.Error is a ValueError
        raise BadRequestError("request body is not valid JSON") from None
    if not raw or not raw.strip():
        if required:
            raise BadRequestError("request body is required")
        return {}
    try:
        parsed = json.loads(raw)
    except (ValueError, UnicodeDecodeError):
        raise BadRequestError("request body is not valid JSON") from None
    if not isinstance(parsed, dict):
        raise BadRequestError("request body must be a JSON object")
    return parsed
