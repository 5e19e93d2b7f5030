"""Property test: every request a signed caller can send to the search API (real PostgreSQL,
local embedder) gets a 2xx-4xx answer with no internals in it."""

from __future__ import annotations

from typing import Any

from conftest import load_event
from hypothesis import HealthCheck, given, settings

from lambdas.search import handler as search_api
from tests.lambdas.http_fuzz import (
    BODIES,
    assert_safe_response,
    build_event,
    header_strategy,
    query_strategy,
    request_line_strategy,
)

ITEM = "0b5e1d1c-6a51-4a47-8d4e-6d8d7a7a9c11"
ROUTES = [("GET", "/search"), ("GET", f"/items/{ITEM}"), ("GET", "/items/"), ("GET", "/items/%00")]
QUERY_NAMES = ["q", "user_id", "category", "limit", "all_users"]


@given(
    line=request_line_strategy(ROUTES),
    query=query_strategy(QUERY_NAMES),
    headers=header_strategy(["authorization", "x-amz-date", "content-type"]),
    body=BODIES,
)
@settings(max_examples=250, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
def test_no_request_gets_a_5xx_or_internals(aws_env: Any, db: Any, context: Any, line, query, headers, body) -> None:
    method, path = line
    if "q=" not in query and path == "/search":
        query = f"q=tart&{query}"
    event = build_event(
        load_event("search_get.json"), method=method, path=path, query=query, headers=headers, body=body
    )
    assert_safe_response(search_api.handler(event, context))


def test_known_bad_inputs_are_400_or_404(aws_env: Any, db: Any, context: Any) -> None:
    template = load_event("search_get.json")
    for path, query in [
        ("/search", "q=tart&limit=%C2%B2"),  # "²".isdigit() is True, int("²") raises
        ("/search", "q=tart&limit=%D9%A3"),  # Arabic-Indic three
        ("/search", "q=tart&user_id=%00"),
        ("/search", "q=%00&user_id=alice"),
        ("/items/%00", "user_id=alice"),
        (f"/items/{ITEM}", "user_id=%00"),
    ]:
        event = build_event(template, method="GET", path=path, query=query, headers={}, body=None)
        response = search_api.handler(event, context)
        assert response["statusCode"] in (400, 404), (path, query, response)
        assert_safe_response(response)
