"""Keys and roles: every route with every role, a foreign organization's key, a function-scoped key,
and the authorizer in front of them."""

from __future__ import annotations

import copy
from typing import Any

import pytest

from lambdas.functions import authorizer
from lambdas.functions.keys import KeyStore, parse_key
from tests.lambdas.functions.conftest import TABLE, FakeContext, Platform, load_event

SOURCE = "def handler(event, context):\n    return 1\n"
BASE = "/v1/orgs/acme/functions"

# (method, path, body, the least role that may do it)
ROUTES: list[tuple[str, str, Any, str]] = [
    ("GET", BASE, None, "invoker"),
    ("GET", f"{BASE}/hello", None, "invoker"),
    ("GET", f"{BASE}/hello/versions", None, "invoker"),
    ("GET", f"{BASE}/hello/versions/1", None, "invoker"),
    ("GET", f"{BASE}/hello/aliases/live", None, "invoker"),
    ("POST", BASE, {"name": "another"}, "developer"),
    ("PATCH", f"{BASE}/hello", {"description": "changed"}, "developer"),
    ("POST", f"{BASE}/hello/code-upload", None, "developer"),
    ("POST", f"{BASE}/hello/versions", {}, "developer"),
    ("POST", f"{BASE}/hello/invoke", {"mode": "dryrun", "payload": {}}, "invoker"),
    ("POST", f"{BASE}/hello/invoke", {"mode": "async", "payload": {}}, "invoker"),
    ("POST", f"{BASE}/hello/batch", {"payloads": [{}, {}]}, "invoker"),
    ("GET", f"{BASE}/hello/invocations", None, "invoker"),
    ("GET", "/v1/orgs/acme/usage", None, "invoker"),
    ("GET", "/v1/orgs/acme/audit", None, "admin"),
    ("GET", "/v1/orgs/acme/webhook-secret", None, "admin"),
    ("PUT", f"{BASE}/hello/aliases/live", {"version": 1}, "admin"),
    ("POST", f"{BASE}/hello/rollback", None, "admin"),
    ("DELETE", f"{BASE}/hello", None, "developer"),
]
RANK = {"invoker": 0, "developer": 1, "admin": 2}


@pytest.fixture
def released(platform: Platform) -> Platform:
    """`hello` with version 1 live (so every route has something to act on)."""
    assert platform.call("POST", BASE, {"name": "hello", "source": SOURCE}).status == 201
    platform.drain()
    platform.call("POST", f"{BASE}/hello/versions", {})
    platform.drain()
    platform.call("PUT", f"{BASE}/hello/aliases/live", {"version": 1})
    platform.drain()
    platform.call("PATCH", f"{BASE}/hello", {"source": SOURCE.replace("1", "2")})
    platform.drain()
    return platform


@pytest.mark.parametrize("role", ["invoker", "developer", "admin"])
def test_every_route_with_every_role(released: Platform, role: str) -> None:
    for method, path, body, needed in ROUTES:
        answer = released.call(method, path, body, role=role)
        if RANK[role] >= RANK[needed]:
            assert answer.status < 400, (method, path, role, answer.body)
        else:
            assert answer.status == 403, (method, path, role, answer.body)
            assert f"a {role} key cannot" in answer.body["error"]
        released.drain()
        if method == "DELETE" and answer.status == 202:
            break  # nothing left to act on


def test_a_key_of_another_org_gets_404_on_every_route(released: Platform) -> None:
    for method, path, body, _needed in ROUTES:
        answer = released.call(method, path, body, org="globex", role="admin")
        assert answer.status == 404, (method, path, answer.body)
        assert answer.body == {"error": "organization 'acme' not found"}
    # ...the same answer as for an organization that does not exist at all.
    assert released.call("GET", "/v1/orgs/nobody/functions", org="globex").body == {
        "error": "organization 'nobody' not found"
    }
    assert released.call("GET", f"{BASE}/hello").body["description"] == ""  # nothing changed


def test_a_function_scoped_key_sees_only_its_function(released: Platform) -> None:
    hello = released.call("GET", f"{BASE}/hello").body["id"]
    assert released.call("POST", BASE, {"name": "other", "source": SOURCE}).status == 201
    listed = released.call("GET", BASE, function=hello, role="developer").body["functions"]
    assert [f["name"] for f in listed] == ["hello"]
    assert released.call("GET", f"{BASE}/other", function=hello).status == 404
    assert released.call("PATCH", f"{BASE}/hello", {"description": "x"}, function=hello, role="developer").status == 200
    assert released.call("POST", BASE, {"name": "third"}, function=hello, role="admin").status == 403
    assert released.call("GET", "/v1/orgs/acme/audit", function=hello, role="admin").status == 403
    assert released.call("GET", "/v1/orgs/acme/webhook-secret", function=hello, role="admin").status == 403


def test_a_route_without_the_authorizer_verdict_is_refused(platform: Platform) -> None:
    from lambdas.functions import api

    event = copy.deepcopy(load_event("http_api_authorized.json"))
    del event["requestContext"]["authorizer"]
    assert api.handler(event, FakeContext())["statusCode"] == 401


def authorize(header: str | None) -> dict[str, Any]:
    event = copy.deepcopy(load_event("authorizer_request.json"))
    event["identitySource"] = [header] if header is not None else []
    event["headers"]["authorization"] = header or ""
    return authorizer.handler(event, FakeContext(function_name="functions-authorizer-test"))


def test_authorizer_accepts_a_stored_key_and_passes_org_role_and_id(platform: Platform) -> None:
    keys = KeyStore(TABLE)
    record, key = keys.create("acme", "developer", label="ci")
    assert authorize(f"Bearer {key}") == {
        "isAuthorized": True,
        "context": {"org": "acme", "role": "developer", "key_id": record.key_id, "function": ""},
    }
    _scoped, scoped_key = keys.create("acme", "invoker", function="fn-abcdefghijkl")
    assert authorize(scoped_key)["context"]["function"] == "fn-abcdefghijkl"


def test_authorizer_refuses_wrong_missing_malformed_and_revoked_keys(platform: Platform) -> None:
    keys = KeyStore(TABLE)
    record, key = keys.create("acme", "admin")
    key_id, secret = parse_key(key)  # type: ignore[misc]
    assert authorize(f"Bearer {key_id}.{'x' * len(secret)}") == {"isAuthorized": False}
    assert authorize(None) == {"isAuthorized": False}
    assert authorize("Basic dXNlcjpwYXNz") == {"isAuthorized": False}
    assert authorize("Bearer fkzzzzzzzzzz." + "a" * 43) == {"isAuthorized": False}  # unknown id
    assert keys.revoke(record.key_id) is not None
    assert authorize(f"Bearer {key}") == {"isAuthorized": False}
    assert keys.revoke(record.key_id) is None


def test_keys_are_stored_hashed_and_listed_per_org(platform: Platform) -> None:
    keys = KeyStore(TABLE)
    a, key_a = keys.create("acme", "admin", label="ops")
    b, _ = keys.create("globex", "invoker")
    item = platform.ddb_item(f"KEY#{a.key_id}", "KEY")
    assert key_a.split(".", 1)[1] not in str(item)
    assert [k.key_id for k in keys.list("acme")] == [a.key_id]
    assert {k.key_id for k in keys.list()} == {a.key_id, b.key_id}
    with pytest.raises(ValueError, match="role must be one of"):
        keys.create("acme", "root")
