"""Property test: every request a key holder (or anyone, on the callback routes) can send to the
Functions API gets a 2xx-4xx answer with no internals in it (moto behind the handler)."""

from __future__ import annotations

from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from lambdas.functions import api
from tests.lambdas.functions.conftest import FakeContext, Platform, load_event
from tests.lambdas.http_fuzz import (
    BODIES,
    assert_safe_response,
    build_event,
    header_strategy,
    query_strategy,
    request_line_strategy,
)

BASE = "/v1/orgs/acme/functions"
ROUTES = [
    ("POST", BASE),
    ("GET", BASE),
    ("GET", f"{BASE}/hello"),
    ("PATCH", f"{BASE}/hello"),
    ("DELETE", f"{BASE}/nothing"),
    ("POST", f"{BASE}/hello/code-upload"),
    ("POST", f"{BASE}/hello/versions"),
    ("GET", f"{BASE}/hello/versions/1"),
    ("PUT", f"{BASE}/hello/aliases/live"),
    ("POST", f"{BASE}/hello/rollback"),
    ("POST", f"{BASE}/hello/invoke"),
    ("POST", f"{BASE}/hello/batch"),
    ("POST", f"{BASE}/hello/run"),
    ("GET", f"{BASE}/hello/results/doc-1"),
    ("PUT", f"{BASE}/hello/results/doc-1"),
    ("GET", f"{BASE}/hello/invocations"),
    ("GET", "/v1/orgs/acme/invocations/iv0000000000000000000000000/logs"),
    ("GET", "/v1/orgs/acme/audit"),
    ("GET", "/v1/orgs/acme/usage"),
    ("GET", "/v1/callback/invocations/iv0000000000000000000000000/input"),
    ("POST", "/v1/callback/invocations/iv0000000000000000000000000/result"),
    ("GET", "/v1/openapi.json"),
]
QUERY_NAMES = ["limit", "cursor", "tag", "subject", "version", "force", "qualifier"]
JSON_BODIES = st.sampled_from(
    [
        '{"name": "x", "source": "def handler(e, c):\\n    return 1\\n"}',
        '{"name": "x", "memory_mb": 1e309}',
        '{"name": "x", "environment": {"A": null}}',
        '{"version": "1", "canary": {"version": 2, "weight": "0.1"}}',
        '{"mode": "dryrun", "payload": [1, {"a": null}]}',
        '{"mode": "async", "callback_url": "file:///etc/passwd"}',
        '{"payloads": {"a": 1}}',
        '{"qualifier": -1}',
        '{"updated_result": 1, "is_verified": "yes"}',
        '{"input_schema": {"type": "object", "pattern": "(a+)+$"}}',
        '{"code_upload_id": "../../x"}',
        '{"result": 1}',
    ]
).map(lambda text: (text, False))


@given(
    line=request_line_strategy(ROUTES),
    query=query_strategy(QUERY_NAMES),
    headers=header_strategy(["authorization", "idempotency-key", "content-type", "x-forwarded-proto"]),
    body=st.one_of(BODIES, JSON_BODIES),
    role=st.sampled_from(["invoker", "developer", "admin"]),
)
@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
# Found by this test: a base64 body that is not UTF-8, on the route that measures the body first.
@example(line=("POST", f"{BASE}/hello/invoke"), query="", headers={}, body=(b"\x80", True), role="invoker")
def test_no_request_gets_a_5xx_or_internals(platform: Platform, line, query, headers, body, role) -> None:
    if platform.call("GET", f"{BASE}/hello").status == 404:
        assert platform.call("POST", BASE, {"name": "hello"}).status == 201
    method, path = line
    event = build_event(
        load_event("http_api_authorized.json"), method=method, path=path, query=query, headers=headers, body=body
    )
    event["requestContext"]["authorizer"]["lambda"]["role"] = role
    assert_safe_response(api.handler(event, FakeContext()))
