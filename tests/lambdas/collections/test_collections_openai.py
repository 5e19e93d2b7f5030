"""The OpenAI analysis provider (used only when its key exists and Anthropic's does not), through
the real openai SDK against a local server."""

from __future__ import annotations

import json
from typing import Any

import pytest
from collections_images import jpeg
from conftest import processed_event, put_parameter
from fake_apis import CHAT_COMPLETIONS, MESSAGES, VALID_ANALYSIS, openai_call, tool_use

from lambdas.analyzer import handler as analyzer
from lambdas.analyzer.schema import TOOL_NAME
from lambdas.collections.pipeline import RetryableError


def stored(db: Any) -> list[tuple[Any, ...]]:
    return db.execute("SELECT provider, model, category, input_tokens, output_tokens FROM analyses").fetchall()


@pytest.fixture
def openai_key(aws_env: Any) -> None:
    put_parameter("OPENAI_API_KEY", "sk-openai-test")


def test_forced_strict_function_call(aws_env, db, context, fake_apis, openai_key) -> None:
    event = processed_event(aws_env, "u1/tart.jpg", jpeg(), context)
    fake_apis.queue(CHAT_COMPLETIONS, openai_call(json.dumps(VALID_ANALYSIS)))
    analyzer.handler(event, context)
    assert stored(db) == [("openai", "gpt-4.1", "food", 1200, 180)]
    [(_, headers, body)] = fake_apis.requests
    assert headers["authorization"] == "Bearer sk-openai-test"
    assert body["tool_choice"] == {"type": "function", "function": {"name": TOOL_NAME}}
    [tool] = body["tools"]
    assert tool["function"]["strict"] is True and tool["function"]["parameters"]["additionalProperties"] is False
    image = body["messages"][1]["content"][1]
    assert image["type"] == "image_url" and image["image_url"]["url"].startswith("data:image/jpeg;base64,")
    assert aws_env.events()[0]["detail"]["provider"] == "openai"


def test_invalid_arguments_then_valid_retry(aws_env, db, context, fake_apis, openai_key) -> None:
    event = processed_event(aws_env, "u1/tart.jpg", jpeg(), context)
    fake_apis.queue(
        CHAT_COMPLETIONS,
        openai_call('{"category": "food"', prompt_tokens=10, completion_tokens=1),
        openai_call(json.dumps(VALID_ANALYSIS), prompt_tokens=20, completion_tokens=2),
    )
    analyzer.handler(event, context)
    assert stored(db) == [("openai", "gpt-4.1", "food", 30, 3)]
    retry = fake_apis.bodies(CHAT_COMPLETIONS)[1]["messages"]
    assert retry[-1]["role"] == "tool" and "not JSON" in retry[-1]["content"]


def test_truncated_reply_counts_as_invalid(aws_env, db, context, fake_apis, openai_key) -> None:
    from lambdas.analyzer.providers import InvalidOutput

    event = processed_event(aws_env, "u1/tart.jpg", jpeg(), context)
    fake_apis.queue(CHAT_COMPLETIONS, *[openai_call(json.dumps(VALID_ANALYSIS), finish_reason="length")] * 2)
    with pytest.raises(InvalidOutput, match="finish_reason is length"):
        analyzer.handler(event, context)


def test_throttling_is_retryable(aws_env, db, context, fake_apis, openai_key) -> None:
    event = processed_event(aws_env, "u1/tart.jpg", jpeg(), context)
    fake_apis.queue(
        CHAT_COMPLETIONS, (429, {"error": {"message": "slow down", "type": "rate_limit"}}, {"retry-after": "5"})
    )
    with pytest.raises(RetryableError, match=r"openai 429 \(retry-after 5s\)"):
        analyzer.handler(event, context)
    assert stored(db) == []


def test_anthropic_key_takes_precedence(aws_env, db, context, fake_apis, openai_key) -> None:
    put_parameter("ANTHROPIC_API_KEY", "sk-ant-test")
    event = processed_event(aws_env, "u1/tart.jpg", jpeg(), context)
    fake_apis.queue(MESSAGES, tool_use(VALID_ANALYSIS))
    analyzer.handler(event, context)
    assert [p for p, _, _ in fake_apis.requests] == [MESSAGES] and stored(db)[0][0] == "anthropic"
