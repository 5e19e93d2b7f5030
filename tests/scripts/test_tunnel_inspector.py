"""The inspector's record keeping and the agent's request line, without a tunnel: what is kept,
how bodies are previewed, and how a line reads for each outcome."""

from __future__ import annotations

import re

from lambdas.tunnel import protocol as p
from tunnel_agent.agent import Agent
from tunnel_agent.cli import parse_target
from tunnel_agent.inspector import PREVIEW_BYTES, REPLAY_BODY_BYTES, RequestLog, preview


def _request(target: str = "/x?a=1", body: bytes = b"") -> p.HttpRequest:
    path, _, query = target.partition("?")
    return p.HttpRequest("r1", "POST", path, query, [("host", "demo.localhost")], body)


def test_the_log_keeps_the_last_requests_newest_first() -> None:
    log = RequestLog(keep=3)
    for i in range(5):
        log.record(_request(f"/n{i}"), 0.0, p.HttpResponse("r1", 200), 200, 1)
    assert [e.target for e in log.recent()] == ["/n4", "/n3", "/n2"]
    assert log.get(1) is None and log.get(5) is not None and log.get(5).target == "/n4"


def test_previews_are_text_or_marked_binary_and_cut() -> None:
    assert preview(b"<b>hi</b>") == {"binary": False, "text": "<b>hi</b>", "truncated": False}
    assert preview(b"\x89PNG\r\n\x1a\n\x00\x00") == {"binary": True, "text": "", "truncated": False}
    assert preview(bytes(range(256)))["binary"] is True
    long_text = ("\u00e9" * PREVIEW_BYTES).encode()  # a two-byte character cut at the preview's end
    cut = preview(long_text)
    assert cut["binary"] is False and cut["truncated"] is True and set(cut["text"]) == {"\u00e9"}


def test_a_body_too_large_to_keep_cannot_be_replayed() -> None:
    log = RequestLog()
    small = log.record(_request(body=b"x" * 10), 0.0, p.HttpResponse("r1", 200), 200, 1)
    big = log.record(_request(body=b"x" * (REPLAY_BODY_BYTES + 1)), 0.0, p.HttpResponse("r1", 200), 200, 1)
    assert small.replayable and small.request_body == b"x" * 10
    assert not big.replayable and len(big.request_body) == PREVIEW_BYTES and big.request_size == REPLAY_BODY_BYTES + 1


LINE = r"\d\d:\d\d:\d\d  POST    /x\?a=1 +"


def test_request_lines_say_what_the_client_got() -> None:
    log = RequestLog()
    ok = log.record(_request(), 0.0, p.HttpResponse("r1", 201, body=b"y" * 3000), 201, 12)
    assert re.fullmatch(LINE + r"201 Created +2\.9 KB +12 ms", Agent._line(ok))
    late = log.record(_request(), 0.0, p.HttpResponse("r1", 200), 504, 26000)
    assert re.fullmatch(
        LINE + r"504 Gateway Timeout +0 B +26000 ms  \(app answered 200; too slow\)", Agent._line(late, "too slow")
    )
    failed = log.record(_request(), 0.0, p.Error("upstream_unreachable", "refused", "r1"), 502, 3)
    assert re.fullmatch(
        LINE + r"502 Bad Gateway +- +3 ms  \(upstream_unreachable\)", Agent._line(failed, "upstream_unreachable")
    )
    assert failed.error == "upstream_unreachable: refused"


def test_targets_of_the_short_form() -> None:
    assert parse_target("3000") == ("http", "127.0.0.1", 3000)
    assert parse_target("localhost:8080") == ("http", "localhost", 8080)
    assert parse_target("https://app.test") == ("https", "app.test", 443)
    for bad in ("ftp://x:1", "http://x:1/path", "x:notaport"):
        try:
            parse_target(bad)
        except ValueError:
            continue
        raise AssertionError(f"{bad!r} was accepted")
