"""Property test: every request an outside client can send to the QR-upload HTTP API and the
desktop's WebSocket $connect gets a 2xx-4xx answer with no internals in it."""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from moto import mock_aws

from tests.lambdas.http_fuzz import (
    BODIES,
    assert_safe_response,
    build_event,
    header_strategy,
    query_strategy,
    request_line_strategy,
)

from .helpers import FakeContext, call_events, connect_event, create_resources, create_session, load_event

SESSION = "3f0c9b3e-8a6e-4d53-9a8e-2a4f6f1c7b21"
ROUTES = [
    ("GET", "/"),
    ("GET", "/upload"),
    ("POST", "/sessions"),
    ("GET", f"/sessions/{SESSION}"),
    ("GET", "/upload-url"),
    ("GET", "/upload-status"),
]
QUERY_NAMES = ["sessionId", "contentType", "uploadKey", "qr"]
HEADERS = ["authorization", "content-type", "x-forwarded-proto", "host", "cookie", "content-length"]

_template = load_event("http_upload_url.json")


@pytest.fixture(scope="module")
def moto_module() -> Any:
    with mock_aws():
        create_resources()
        yield


@given(
    line=request_line_strategy(ROUTES),
    query=query_strategy(QUERY_NAMES),
    headers=header_strategy(HEADERS),
    body=BODIES,
    cookies=st.one_of(st.none(), st.lists(st.text(max_size=20), max_size=2)),
    use_live_session=st.booleans(),
)
@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
def test_no_request_gets_a_5xx_or_internals(
    moto_module: None, line, query, headers, body, cookies, use_live_session
) -> None:
    from lambdas.qr_upload import http_api

    method, path = line
    if use_live_session:
        # The same request shapes against a session that exists, so the deeper branches run.
        live = create_session()["sessionId"]
        path = path.replace(SESSION, live)
        query = query.replace(SESSION, live)
        query = f"sessionId={live}&{query}" if "sessionId" not in query else query
    event = build_event(_template, method=method, path=path, query=query, headers=headers, body=body, cookies=cookies)
    assert_safe_response(http_api.handler(event, FakeContext()))


@given(
    params=st.dictionaries(
        st.sampled_from(["sessionId", "token", "x"]), st.text(max_size=60) | st.just(SESSION), max_size=3
    )
)
@settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
def test_websocket_connect_refuses_any_query_without_a_5xx(moto_module: None, params: dict[str, str]) -> None:
    event = connect_event(None, None, "fuzz-conn=")
    event["queryStringParameters"] = params or None
    response = call_events(event)
    assert 200 <= response["statusCode"] < 500
    assert_safe_response(response)
    if response["statusCode"] == 200:
        pytest.fail(f"a socket was accepted without a valid session and token: {params}")
