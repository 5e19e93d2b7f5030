"""Anthropic as the analysis provider when the ANTHROPIC_API_KEY parameter exists. The SDK is
imported and its client built only when this provider is selected.
ANTHROPIC_BASE_URL (read by the SDK) is how tests point it at a local server."""

from __future__ import annotations

import base64
from typing import Any

from lambdas.analyzer.contract import Analysis, Reply, analyze_with_one_retry, call_sdk
from lambdas.analyzer.schema import SYSTEM_PROMPT, TOOL, TOOL_NAME, USER_PROMPT
from lambdas.common.settings import env_int


class AnthropicAnalyzer:
    provider = "anthropic"

    def __init__(self, key: str, model: str) -> None:
        import anthropic

        # max_retries=0: throttling and 5xx raise at once and Lambda's async retries (minutes
        # apart) do the backing off, instead of sleeping inside a billed invocation.
        self._client = anthropic.Anthropic(
            api_key=key, max_retries=0, timeout=float(env_int("ANTHROPIC_TIMEOUT_SECONDS", 60))
        )
        self.model = model
        self.max_tokens = env_int("ANTHROPIC_MAX_TOKENS", 2048)

    def _create(self, messages: list[dict[str, Any]]) -> Any:
        import anthropic

        request: dict[str, Any] = {
            "model": self.model,
            "max_tokens": self.max_tokens,
            "system": SYSTEM_PROMPT,
            "tools": [TOOL],
            "tool_choice": {"type": "tool", "name": TOOL_NAME},
            "messages": messages,
        }
        return call_sdk(anthropic, self.provider, lambda: self._client.messages.create(**request))

    def _exchange(self, messages: list[dict[str, Any]]) -> Reply:
        reply = self._create(messages)
        block = next((b for b in reply.content if b.type == "tool_use" and b.name == TOOL_NAME), None)
        problems = [] if reply.stop_reason == "tool_use" else [f"stop_reason is {reply.stop_reason}"]
        if block is None:
            problems.append("no tool_use block")

        def correct(what_was_wrong: str) -> list[dict[str, Any]]:
            # Tell the model what was wrong; it answers with a corrected tool call.
            assert block is not None
            return [
                *messages[:1],
                {"role": "assistant", "content": [b.model_dump() for b in reply.content]},
                {
                    "role": "user",
                    "content": [
                        {"type": "tool_result", "tool_use_id": block.id, "is_error": True, "content": what_was_wrong}
                    ],
                },
            ]

        return Reply(
            input_tokens=reply.usage.input_tokens,
            output_tokens=reply.usage.output_tokens,
            refused=reply.stop_reason == "refusal",
            problems=problems,
            has_arguments=block is not None,
            arguments=None if block is None else block.input,
            correct=correct if block is not None and reply.stop_reason == "tool_use" else None,
        )

    def analyze(self, image_jpeg: bytes) -> Analysis:
        image = {"type": "base64", "media_type": "image/jpeg", "data": base64.b64encode(image_jpeg).decode()}
        messages: list[dict[str, Any]] = [
            {
                "role": "user",
                "content": [{"type": "image", "source": image}, {"type": "text", "text": USER_PROMPT}],
            }
        ]
        return analyze_with_one_retry(self, messages, self._exchange)
