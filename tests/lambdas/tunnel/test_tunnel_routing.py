"""Pure routing and polling logic of the forwarder (no AWS needed)."""

from __future__ import annotations

import itertools

import pytest

from lambdas.tunnel import settings
from lambdas.tunnel.forwarding import FIXED_100MS, PollSchedule
from lambdas.tunnel.gateway import resolve, scoped_cookie, scoped_location


@pytest.mark.parametrize(
    ("host", "path", "domain", "expected"),
    [
        ("demo.t.example.com", "/a/b", "t.example.com", ("demo", "/a/b", "")),
        ("DEMO.t.example.com:443", "/", "t.example.com", ("demo", "/", "")),
        ("x.demo.t.example.com", "/t/demo", "t.example.com", ("demo", "/", "/t/demo")),
        ("api.example.com", "/t/demo", "", ("demo", "/", "/t/demo")),
        ("api.example.com", "/t/demo/x%2Fy?", "", ("demo", "/x%2Fy?", "/t/demo")),
        ("api.example.com", "/other", "", None),
        ("api.example.com", "/t/", "", None),
        ("demo.localhost:3000", "/x", "localhost", ("demo", "/x", "")),
        ("127.0.0.1:3000", "/t/demo/x", "localhost", ("demo", "/x", "/t/demo")),
    ],
)
def test_resolve(host, path, domain, expected) -> None:
    route = resolve(host, path, domain)
    assert (route and (route.subdomain, route.path, route.prefix)) == expected


def test_poll_schedule_starts_fast_and_caps_at_100ms() -> None:
    delays = PollSchedule().delays()
    first = [next(delays) for _ in range(60)]
    assert first[0] == 0.010
    assert sum(d for d in first if d == 0.010) >= 0.3
    assert max(first) == pytest.approx(0.100) and first[-1] == pytest.approx(0.100)
    assert all(b >= a for a, b in itertools.pairwise(first))
    fixed = FIXED_100MS.delays()
    assert [next(fixed) for _ in range(3)] == [0.1, 0.1, 0.1]


@pytest.mark.parametrize(
    ("location", "expected"),
    [
        ("/login", "/t/demo/login"),
        ("/", "/t/demo/"),
        ("/t/demo/already", "/t/demo/already"),
        ("/t/demox", "/t/demo/t/demox"),
        ("relative/page", "relative/page"),
        ("//api.example.com/x", "//api.example.com/t/demo/x"),
        ("https://api.example.com/login?next=%2F#top", "https://api.example.com/t/demo/login?next=%2F#top"),
        ("http://API.example.com", "http://API.example.com/t/demo/"),
        ("https://other.example.org/login", "https://other.example.org/login"),
        ("//other.example.org/x", "//other.example.org/x"),
    ],
)
def test_path_tunnel_locations_stay_inside_the_prefix(location, expected) -> None:
    assert scoped_location(location, "/t/demo", "api.example.com") == expected


@pytest.mark.parametrize(
    ("cookie", "expected"),
    [
        ("a=1; Path=/", "a=1; Path=/t/demo"),
        ("a=1; path=/admin; Secure", "a=1; Path=/t/demo/admin; Secure"),
        ("a=1; Domain=api.example.com; Path=/; HttpOnly", "a=1; Path=/t/demo; HttpOnly"),
        ("a=1; HttpOnly", "a=1; HttpOnly"),  # no Path: the browser's default is already under the prefix
        ("a=1; Path=odd", "a=1; Path=/t/demo"),
        ("a=b=c; Max-Age=5", "a=b=c; Max-Age=5"),
    ],
)
def test_path_tunnel_cookies_lose_domain_and_get_the_prefix(cookie, expected) -> None:
    assert scoped_cookie(cookie, "/t/demo") == expected


@pytest.mark.parametrize(
    ("endpoint", "domain", "url", "host_domain"),
    [
        (
            "https://p9.execute-api.eu-west-1.amazonaws.com",
            "",
            "https://p9.execute-api.eu-west-1.amazonaws.com/t/demo",
            "",
        ),
        (
            "https://p9.execute-api.eu-west-1.amazonaws.com",
            "t.example.com",
            "https://demo.t.example.com",
            "t.example.com",
        ),
        ("http://127.0.0.1:26000", "", "http://demo.localhost:26000", "localhost"),
    ],
)
def test_public_url_is_a_host_wherever_host_routing_exists(monkeypatch, endpoint, domain, url, host_domain) -> None:
    monkeypatch.setenv("PUBLIC_HTTP_URL", endpoint)
    monkeypatch.setenv("DOMAIN_NAME", domain)
    assert settings.Settings.from_env().public_url("demo") == url
    assert settings.Settings.from_env().host_domain() == host_domain
