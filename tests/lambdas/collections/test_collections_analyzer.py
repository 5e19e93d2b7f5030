"""AnalyzerLambda: the real Anthropic SDK against a local server, and the offline local provider."""

from __future__ import annotations

import json
import subprocess
import sys
from typing import Any

import pytest
from collections_images import jpeg
from conftest import processed_event, put_parameter
from fake_apis import LANGSMITH_RUNS, MESSAGES, VALID_ANALYSIS, anthropic_error, tool_use

from lambdas.analyzer import handler as analyzer
from lambdas.analyzer.providers import InvalidOutput
from lambdas.analyzer.schema import PROMPT_VERSION, TOOL_NAME, validate_analysis
from lambdas.collections.pipeline import RetryableError


def rows(db: Any) -> list[tuple[Any, ...]]:
    return db.execute(
        "SELECT version, category, provider, model, prompt_version, input_tokens, output_tokens, raw"
        " FROM analyses ORDER BY version"
    ).fetchall()


@pytest.fixture
def with_key(aws_env: Any) -> None:
    put_parameter("ANTHROPIC_API_KEY", "sk-ant-test-key")


def test_local_provider_without_key(aws_env, db, context) -> None:
    event = processed_event(aws_env, "u1/red.jpg", jpeg(color=(220, 20, 20)), context)
    assert analyzer.handler(event, context)["status"] == "analyzed"
    [(version, category, provider, model, prompt_version, tin, tout, raw)] = rows(db)
    assert (version, category, provider, model, prompt_version) == (
        1,
        "other",
        "local",
        "local-pixels-v1",
        PROMPT_VERSION,
    )
    assert (tin, tout) == (0, 0) and "red" in raw["image_details"]["colors"] and "blue" in raw["subcategories"]
    assert validate_analysis(raw) == []
    [done] = aws_env.events()
    assert done["source"] == "collections.analyzer" and done["detail-type"] == "AnalysisComplete"
    assert done["detail"]["item_id"] == event["detail"]["item_id"] and done["detail"]["provider"] == "local"
    assert done["detail"]["analysis_version"] == 1


def test_anthropic_forced_strict_tool_call(aws_env, db, context, fake_apis, with_key) -> None:
    event = processed_event(aws_env, "u1/tart.jpg", jpeg(), context)
    fake_apis.queue(MESSAGES, tool_use(VALID_ANALYSIS, input_tokens=1600, output_tokens=210))
    analyzer.handler(event, context)
    [(_, category, provider, model, _, tin, tout, raw)] = rows(db)
    assert (category, provider, model, tin, tout) == ("food", "anthropic", "claude-sonnet-4-5", 1600, 210)
    assert raw == VALID_ANALYSIS
    [(_path, headers, body)] = fake_apis.requests
    # The key fetched from SSM authenticates the call (this SDK version sends it as a bearer token).
    assert "sk-ant-test-key" in (headers.get("x-api-key"), headers.get("authorization", "").removeprefix("Bearer "))
    assert body["tool_choice"] == {"type": "tool", "name": TOOL_NAME}
    [tool] = body["tools"]
    assert tool["strict"] is True and tool["input_schema"]["additionalProperties"] is False
    assert "food" in tool["input_schema"]["properties"]["category"]["enum"]
    image = body["messages"][0]["content"][0]
    assert image["type"] == "image" and image["source"]["media_type"] == "image/jpeg"
    assert aws_env.events()[0]["detail"]["category"] == "food"


def test_invalid_output_then_valid_retry(aws_env, db, context, fake_apis, with_key) -> None:
    event = processed_event(aws_env, "u1/tart.jpg", jpeg(), context)
    fake_apis.queue(
        MESSAGES,
        tool_use({**VALID_ANALYSIS, "category": "spaceships"}, input_tokens=10, output_tokens=5),
        tool_use(VALID_ANALYSIS, input_tokens=20, output_tokens=7),
    )
    analyzer.handler(event, context)
    [(_, category, _, _, _, tin, tout, _)] = rows(db)
    assert (category, tin, tout) == ("food", 30, 12)  # usage of both calls is recorded
    retry = fake_apis.bodies(MESSAGES)[1]["messages"]
    feedback = retry[-1]["content"][0]
    assert feedback["type"] == "tool_result" and feedback["is_error"] is True
    assert "category" in feedback["content"]


def test_truncated_reply_is_retried_then_fails(aws_env, db, context, fake_apis, with_key) -> None:
    event = processed_event(aws_env, "u1/tart.jpg", jpeg(), context)
    fake_apis.queue(MESSAGES, tool_use(VALID_ANALYSIS, stop_reason="max_tokens"), tool_use({"category": "food"}))
    with pytest.raises(InvalidOutput, match="missing"):
        analyzer.handler(event, context)
    assert rows(db) == [] and aws_env.events() == []
    assert len(fake_apis.requests) == 2


@pytest.mark.parametrize(
    ("status", "kind", "headers", "message"),
    [
        (429, "rate_limit_error", {"retry-after": "17"}, "429 (retry-after 17s)"),
        (500, "api_error", {}, "500"),
        (529, "overloaded_error", {}, "529"),
    ],
)
def test_retryable_errors_raise_without_sdk_retries(
    aws_env, db, context, fake_apis, with_key, status, kind, headers, message
) -> None:
    event = processed_event(aws_env, "u1/tart.jpg", jpeg(), context)
    fake_apis.queue(MESSAGES, anthropic_error(status, kind, headers))
    with pytest.raises(RetryableError, match=message.replace("(", r"\(").replace(")", r"\)")):
        analyzer.handler(event, context)
    assert len(fake_apis.requests) == 1 and rows(db) == [] and aws_env.events() == []


def test_bad_request_is_not_labelled_retryable(aws_env, db, context, fake_apis, with_key) -> None:
    import anthropic

    event = processed_event(aws_env, "u1/tart.jpg", jpeg(), context)
    fake_apis.queue(MESSAGES, anthropic_error(400, "invalid_request_error"))
    with pytest.raises(anthropic.BadRequestError):
        analyzer.handler(event, context)


def test_refusal_is_not_retried(aws_env, db, context, fake_apis, with_key) -> None:
    event = processed_event(aws_env, "u1/tart.jpg", jpeg(), context)
    fake_apis.queue(MESSAGES, tool_use(VALID_ANALYSIS, stop_reason="refusal"))
    assert analyzer.handler(event, context)["status"] == "refused"
    assert rows(db) == [] and len(fake_apis.requests) == 1


def test_duplicate_delivery_reuses_the_analysis(aws_env, db, context, fake_apis, with_key) -> None:
    event = processed_event(aws_env, "u1/tart.jpg", jpeg(), context)
    fake_apis.queue(MESSAGES, tool_use(VALID_ANALYSIS))
    analyzer.handler(event, context)
    analyzer.handler(event, context)  # nothing queued: a second model call would fail
    assert len(fake_apis.requests) == 1 and len(rows(db)) == 1
    assert [e["detail"]["analysis_version"] for e in aws_env.events()] == [1, 1]


def test_changed_image_gets_a_new_version(aws_env, db, context) -> None:
    analyzer.handler(processed_event(aws_env, "u1/a.jpg", jpeg(color=(10, 200, 10)), context), context)
    analyzer.handler(processed_event(aws_env, "u1/a.jpg", jpeg(color=(200, 200, 10)), context), context)
    assert [(r[0], r[2]) for r in rows(db)] == [(1, "local"), (2, "local")]


def test_langsmith_run_recorded_only_with_its_key(aws_env, db, context, fake_apis, with_key) -> None:
    first = processed_event(aws_env, "u1/a.jpg", jpeg(), context)
    fake_apis.queue(MESSAGES, tool_use(VALID_ANALYSIS))
    analyzer.handler(first, context)
    assert [p for p, _, _ in fake_apis.requests] == [MESSAGES]  # no key: nothing traced

    put_parameter("LANGSMITH_API_KEY", "lsv2-test-key")
    second = processed_event(aws_env, "u1/b.jpg", jpeg(color=(10, 10, 200)), context)
    fake_apis.queue(MESSAGES, tool_use(VALID_ANALYSIS, input_tokens=900, output_tokens=100))
    fake_apis.queue(LANGSMITH_RUNS, (200, {}, {}))
    analyzer.handler(second, context)
    [(_, headers, run)] = [r for r in fake_apis.requests if r[0] == LANGSMITH_RUNS]
    assert headers["x-api-key"] == "lsv2-test-key" and run["run_type"] == "llm"
    assert run["inputs"]["item_id"] == second["detail"]["item_id"] and run["inputs"]["prompt_version"] == PROMPT_VERSION
    assert run["outputs"]["usage"] == {"input_tokens": 900, "output_tokens": 100}
    assert "data" not in json.dumps(run["inputs"])  # never the image


def test_tracing_failure_never_fails_the_analysis(aws_env, db, context, fake_apis, with_key) -> None:
    put_parameter("LANGSMITH_API_KEY", "lsv2-test-key")
    event = processed_event(aws_env, "u1/a.jpg", jpeg(), context)
    fake_apis.queue(MESSAGES, tool_use(VALID_ANALYSIS))
    fake_apis.queue(LANGSMITH_RUNS, *[(400, {"detail": "bad"}, {})] * 3)
    assert analyzer.handler(event, context)["status"] == "analyzed"
    assert len(rows(db)) == 1


def test_import_does_not_load_sdks() -> None:
    code = (
        "import sys, lambdas.analyzer.handler, lambdas.embedder.handler, lambdas.search.handler; "
        "print(json.dumps(sorted(m for m in ('anthropic','voyageai','PIL','psycopg','langsmith','openai') if m in sys.modules)))"
    )
    out = subprocess.run(
        [sys.executable, "-c", "import json; " + code],
        capture_output=True,
        text=True,
        check=True,
        env={"POWERTOOLS_TRACE_DISABLED": "true", "PATH": ""},
    )
    assert json.loads(out.stdout) == []
