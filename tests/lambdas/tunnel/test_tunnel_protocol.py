"""Property tests: whatever the public client sends reaches the agent byte for byte, and back."""

from __future__ import annotations

import base64
import json
import string
from urllib.parse import quote

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from lambdas.tunnel import connect, forward, response
from lambdas.tunnel import protocol as p
from lambdas.tunnel.gateway import to_gateway_response
from tests.lambdas.tunnel.support import FakeAgent, connect_event, event, new_token, send

TOKEN_CHARS = string.ascii_letters + string.digits + "!#$%&'*+-.^_`|~"
header_names = st.text(TOKEN_CHARS, min_size=1, max_size=20)
header_values = st.text(st.characters(min_codepoint=0x20, max_codepoint=0x7E), max_size=40).map(str.strip)
header_pairs = st.lists(st.tuples(header_names, header_values), max_size=8).flatmap(
    # Repeat some pairs (same name, other value) so duplicates are always exercised.
    lambda pairs: st.just(pairs + [(n, v + "x") for n, v in pairs[:2]])
)
# Raw query strings: percent-encoded keys and values (any Unicode, reserved chars), repeated keys,
# empty values, bare keys; the tunnel must not normalise any of it.
query_part = st.text(max_size=12).map(lambda s: quote(s, safe=""))
raw_queries = st.lists(
    st.one_of(
        st.tuples(query_part, query_part).map(lambda kv: f"{kv[0]}={kv[1]}"),
        query_part,
    ),
    max_size=6,
).map(lambda parts: "&".join(parts + parts[:1]))
raw_paths = st.lists(st.text(max_size=8).map(lambda s: quote(s, safe="")), max_size=4).map(
    lambda segs: "/" + "/".join(segs)
)
# Small bodies of any bytes, and bodies past the inline limit (built from a random chunk so
# generation stays fast) to exercise the S3 path.
small_bodies = st.binary(max_size=2048)
large_bodies = st.tuples(st.binary(min_size=1, max_size=64), st.integers(130_000, 400_000)).map(
    lambda t: (t[0] * (t[1] // len(t[0]) + 1))[: t[1]]
)
bodies = st.one_of(small_bodies, small_bodies, large_bodies)


@given(
    method=st.sampled_from(["GET", "POST", "PUT", "PATCH", "DELETE", "OPTIONS", "PROPFIND"]),
    path=raw_paths,
    query=raw_queries,
    headers=header_pairs,
    body=small_bodies,
)
@settings(max_examples=150, deadline=None)
def test_http_request_round_trips(method, path, query, headers, body) -> None:
    request = p.HttpRequest("r1", method, path, query, headers, body, client_ip="198.51.100.1")
    decoded = p.decode(p.encode(request))
    assert decoded == request
    assert isinstance(decoded, p.HttpRequest)
    assert decoded.target == (f"{path}?{query}" if query else path)


# The response test adds its own Set-Cookie headers and counts them: random names must not be one.
non_cookie_pairs = header_pairs.map(lambda pairs: [(n, v) for n, v in pairs if n.lower() != "set-cookie"])


@given(status=st.integers(100, 599), headers=non_cookie_pairs, cookies=st.lists(header_values, max_size=5), body=bodies)
@settings(max_examples=60, deadline=None)
def test_http_response_round_trips_and_keeps_every_set_cookie(status, headers, cookies, body) -> None:
    pairs = headers + [("Set-Cookie", c) for c in cookies]
    message = p.HttpResponse("r1", status, pairs, body, processing_time_ms=3)
    assert p.decode(p.encode(message)) == message
    gateway = to_gateway_response(message)
    assert gateway.get("cookies", []) == cookies
    sent = base64.b64decode(gateway["body"]) if gateway["isBase64Encoded"] else gateway["body"].encode()
    assert sent == body


@given(text=st.text(st.characters(max_codepoint=0x7F), max_size=100_000))
@settings(max_examples=40, deadline=None)
def test_frames_respect_the_32k_limit_and_rejoin(text) -> None:
    chunks = p.frames(text)
    assert "".join(chunks) == text
    assert all(len(c.encode()) <= p.MAX_FRAME_BYTES for c in chunks)


def test_encoded_messages_are_ascii() -> None:
    message = p.HttpRequest("r", "GET", "/", "", [("x-name", "café ☕")])
    assert p.encode(message).isascii()
    assert p.decode(p.encode(message)) == message


def _through_forwarder(context, gateway, path, query, cookies, body) -> None:
    if not gateway.ready:
        assert connect.handler(connect_event("c1", new_token(), "prop"), context)["statusCode"] == 200
        send(response.handler, "c1", p.encode(p.Ready()), context)
        gateway.ready = True
    agent = FakeAgent(
        lambda req: p.HttpResponse(req.request_id, 200, [("set-cookie", c) for c in cookies], req.body), context
    )
    gateway.on_message = agent
    evt = event("http_api")
    evt.update(rawPath=f"/t/prop{path}", rawQueryString=query, isBase64Encoded=True)
    evt["body"] = base64.b64encode(body).decode()
    evt["cookies"] = cookies or None
    result = forward.handler(evt, context)
    assert not agent.errors
    [req] = agent.requests
    assert (req.path, req.query, req.body) == (path or "/", query, body)
    assert dict(req.headers).get("cookie") == ("; ".join(cookies) if cookies else None)
    assert result["statusCode"] == 200
    sent = base64.b64decode(result["body"]) if result["isBase64Encoded"] else result["body"].encode()
    assert sent == body
    assert result.get("cookies", []) == cookies


_SUPPRESS = [HealthCheck.function_scoped_fixture]
_cookies = st.lists(header_values.filter(bool), max_size=3)


@pytest.mark.usefixtures("tunnel_env")
@given(path=raw_paths, query=raw_queries, cookies=_cookies, body=small_bodies)
@settings(max_examples=25, deadline=None, suppress_health_check=_SUPPRESS)
def test_forwarder_delivers_exactly_what_was_received(context, gateway, path, query, cookies, body) -> None:
    _through_forwarder(context, gateway, path, query, cookies, body)


@pytest.mark.usefixtures("tunnel_env")
@given(path=raw_paths, query=raw_queries, cookies=_cookies, body=large_bodies)
@settings(max_examples=8, deadline=None, suppress_health_check=_SUPPRESS)
def test_forwarder_delivers_large_bodies_exactly_through_the_bucket(
    context, gateway, path, query, cookies, body
) -> None:
    assert len(body) > p.INLINE_MESSAGE_LIMIT
    _through_forwarder(context, gateway, path, query, cookies, body)


def test_the_response_upload_form_round_trips_and_must_be_strings() -> None:
    request = p.HttpRequest("r1", "GET", "/", response_upload_url="https://b.s3/", response_upload_fields={"key": "k"})
    assert p.decode(p.encode(request)) == request
    bad = json.loads(p.encode(request))
    bad["response_upload_fields"] = {"key": 1}
    with pytest.raises(p.ProtocolError, match="response_upload_fields"):
        p.decode(json.dumps(bad))
    bad["response_upload_fields"] = ["key"]
    with pytest.raises(p.ProtocolError, match="wrong type"):
        p.decode(json.dumps(bad))
