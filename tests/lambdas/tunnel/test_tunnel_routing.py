"""Pure routing and polling logic of the forwarder (no AWS needed)."""

from __future__ import annotations

import itertools

import pytest

from lambdas.tunnel.forward import FIXED_100MS, PollSchedule, resolve


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
