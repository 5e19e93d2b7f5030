"""Hypothesis strategies for HTTP API (payload 2.0) events as an outside client can cause them:
any method, path, raw query string, headers, cookies and body (text or binary, base64-encoded
the way API Gateway sends bodies it does not treat as text), and the check that an answer leaks
nothing: no 5xx, a JSON error body for errors, and no traceback, file path or exception name.

API Gateway builds `queryStringParameters` from the raw query string (repeated keys joined with
commas) and lower-cases header names; the events here are built the same way.
"""

from __future__ import annotations

import base64
import copy
import json
import re
import string
from typing import Any
from urllib.parse import parse_qsl, quote

from hypothesis import strategies as st

METHODS = st.sampled_from(["GET", "POST", "PUT", "PATCH", "DELETE", "HEAD", "OPTIONS", "PROPFIND"])
_TOKEN = string.ascii_letters + string.digits + "!#$%&'*+-.^_`|~"
_any_text = st.text(max_size=24)
# Percent-encoded anything (NUL, surrogates are excluded by UTF-8; lone bytes via %FF), plus raw.
_encoded = st.one_of(
    _any_text.map(lambda s: quote(s, safe="")),
    st.binary(max_size=8).map(lambda b: "".join(f"%{x:02X}" for x in b)),
    st.sampled_from(["", "%00", "a%00b", "²", "٣", "-1", "0", "1e3", "99999999999999999999", "%", "%zz", "null"]),
)


def request_line_strategy(routes: list[tuple[str, str]]) -> st.SearchStrategy[tuple[str, str]]:
    """(method, path): half the time a known route as it is, else any method on any path."""
    return st.one_of(st.sampled_from(routes), st.tuples(METHODS, path_strategy([p for _, p in routes])))


def path_strategy(known: list[str]) -> st.SearchStrategy[str]:
    """Known routes with odd segments and suffixes, and arbitrary paths."""
    segment = st.one_of(_encoded, st.sampled_from(["..", ".", "%2F", "sessions", "items", "search"]))
    arbitrary = st.lists(segment, max_size=4).map(lambda segs: "/" + "/".join(segs))
    mutated = st.tuples(st.sampled_from(known), segment).map(lambda t: t[0].rstrip("/") + "/" + t[1])
    return st.one_of(st.sampled_from(known), mutated, arbitrary)


def query_strategy(names: list[str]) -> st.SearchStrategy[str]:
    name = st.one_of(st.sampled_from(names), _encoded)
    pair = st.tuples(name, _encoded).map(lambda kv: f"{kv[0]}={kv[1]}")
    return st.lists(st.one_of(pair, name), max_size=6).map("&".join)


def header_strategy(names: list[str]) -> st.SearchStrategy[dict[str, str]]:
    header_name = st.one_of(st.sampled_from(names), st.text(_TOKEN, min_size=1, max_size=16))
    value = st.one_of(
        st.text(st.characters(min_codepoint=0x20, max_codepoint=0x7E), max_size=60),
        st.text(max_size=30),
        st.sampled_from(["Bearer ", "Bearer", "bearer x y", "AWS4-HMAC-SHA256 garbage", "http,https", "gopher"]),
    )
    return st.dictionaries(header_name.map(str.lower), value, max_size=6)


BODIES = st.one_of(
    st.none(),
    st.binary(max_size=512).map(lambda b: (b, True)),
    st.text(max_size=200).map(lambda t: (t, False)),
    st.sampled_from([b"\xff\xfe\x00{", b'{"qr": true}', b"\x80", b'{"qr": "\xff"}']).map(lambda b: (b, True)),
    st.sampled_from(['{"qr": true}', '{"qr": 1}', "[]", "null", '{"qr": true', "\x00"]).map(lambda t: (t, False)),
)


def build_event(
    template: dict[str, Any],
    *,
    method: str,
    path: str,
    query: str,
    headers: dict[str, str],
    body: tuple[Any, bool] | None,
    cookies: list[str] | None = None,
) -> dict[str, Any]:
    event = copy.deepcopy(template)
    stage = event["requestContext"].get("stage", "$default")
    raw_path = path if stage == "$default" else f"/{stage}{path}"
    event["rawPath"] = raw_path
    event["requestContext"]["http"]["path"] = raw_path
    event["requestContext"]["http"]["method"] = method
    event["routeKey"] = event["requestContext"]["routeKey"] = "$default"
    event.pop("pathParameters", None)
    event["rawQueryString"] = query
    params: dict[str, str] = {}
    for key, value in parse_qsl(query, keep_blank_values=True):
        params[key] = f"{params[key]},{value}" if key in params else value
    if params:
        event["queryStringParameters"] = params
    else:
        event.pop("queryStringParameters", None)
    event["headers"] = {**event.get("headers", {}), **headers}
    if cookies:
        event["cookies"] = cookies
    if body is None:
        event.pop("body", None)
        event["isBase64Encoded"] = False
    else:
        raw, binary = body
        if binary:
            event["body"] = base64.b64encode(raw).decode()
            event["isBase64Encoded"] = True
        else:
            event["body"] = raw
            event["isBase64Encoded"] = False
    return event


_INTERNALS = re.compile(
    r"Traceback|File \"|\.py\b|Exception|Error:|psycopg|botocore|boto3|lambdas\.|site-packages|"
    r"line \d+|KeyError|ValueError|TypeError|UnicodeDecodeError"
)


def assert_safe_response(response: dict[str, Any]) -> None:
    """No 5xx; errors are JSON `{"error": ...}`; no internals anywhere in the answer."""
    status = response["statusCode"]
    assert status < 500, response
    body = response.get("body") or ""
    if response.get("isBase64Encoded"):
        body = base64.b64decode(body).decode("utf-8", "replace")
    if status >= 400:
        content_type = next((v for k, v in (response.get("headers") or {}).items() if k.lower() == "content-type"), "")
        if content_type.startswith("application/json"):
            payload = json.loads(body)
            assert set(payload) == {"error"}, payload
    assert not _INTERNALS.search(body), body[:500]
    for value in (response.get("headers") or {}).values():
        assert not _INTERNALS.search(str(value)), value
