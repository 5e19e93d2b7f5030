"""OpenAI as the analysis provider when the OPENAI_API_KEY parameter exists and no Anthropic key
does. Same contract as the Anthropic path (lambdas/analyzer/contract.py): the image, the versioned
prompt, a forced function call with the same strict schema, validation, one retry on invalid
output, finish_reason checked.
The SDK is imported and the client built only when this provider is selected.
OPENAI_BASE_URL (read by the SDK) is how tests point it at a local server.
"""

from __future__ import annotations

import base64
import json
from typing import Any

from lambdas.analyzer.contract import Analysis, Reply, analyze_with_one_retry, call_sdk
from lambdas.analyzer.schema import INPUT_SCHEMA, SYSTEM_PROMPT, TOOL_NAME, USER_PROMPT
from lambdas.common.settings import env_int

FUNCTION = {
    "type": "function",
    "function": {
        "name": TOOL_NAME,
        "description": "Record the structured analysis of the image.",
        "parameters": INPUT_SCHEMA,
        "strict": True,
    },
}


class OpenAIAnalyzer:
    provider = "openai"

    def __init__(self, key: str, model: str) -> None:
        import openai

        # max_retries=0 for the same reason as the Anthropic client: Lambda retries, not sleeps.
        self._client = openai.OpenAI(api_key=key, max_retries=0, timeout=float(env_int("OPENAI_TIMEOUT_SECONDS", 60)))
        self.model = model
        self.max_tokens = env_int("OPENAI_MAX_TOKENS", 2048)

    def _create(self, messages: list[dict[str, Any]]) -> Any:
        import openai

        request: dict[str, Any] = {
            "model": self.model,
            "messages": messages,
            "tools": [FUNCTION],
            "tool_choice": {"type": "function", "function": {"name": TOOL_NAME}},
            "max_completion_tokens": self.max_tokens,
        }
        return call_sdk(openai, self.provider, lambda: self._client.chat.completions.create(**request))

    def _exchange(self, messages: list[dict[str, Any]]) -> Reply:
        reply = self._create(messages)
        choice = reply.choices[0]
        message = choice.message
        # A forced function call finishes with "stop" (or "tool_calls"); "length" is truncated.
        problems = (
            [] if choice.finish_reason in ("stop", "tool_calls") else [f"finish_reason is {choice.finish_reason}"]
        )
        call = next((c for c in message.tool_calls or [] if c.function.name == TOOL_NAME), None)
        arguments: Any = None
        parsed = False
        if call is None:
            problems.append("no function call")
        else:
            try:
                arguments, parsed = json.loads(call.function.arguments), True
            except ValueError:
                problems.append("function arguments are not JSON")

        def correct(what_was_wrong: str) -> list[dict[str, Any]]:
            assert call is not None
            return [
                *messages[:2],
                message.model_dump(exclude_none=True),
                {"role": "tool", "tool_call_id": call.id, "content": "Invalid: " + what_was_wrong},
            ]

        return Reply(
            input_tokens=reply.usage.prompt_tokens if reply.usage else 0,
            output_tokens=reply.usage.completion_tokens if reply.usage else 0,
            refused=choice.finish_reason == "content_filter" or bool(getattr(message, "refusal", None)),
            problems=problems,
            has_arguments=parsed,
            arguments=arguments,
            correct=correct if call is not None else None,
        )

    def analyze(self, image_jpeg: bytes) -> Analysis:
        data_url = "data:image/jpeg;base64," + base64.b64encode(image_jpeg).decode()
        messages: list[dict[str, Any]] = [
            {"role": "system", "content": SYSTEM_PROMPT},
            {
                "role": "user",
                "content": [
                    {"type": "text", "text": USER_PROMPT},
                    {"type": "image_url", "image_url": {"url": data_url}},
                ],
            },
        ]
        return analyze_with_one_retry(self, messages, self._exchange)
