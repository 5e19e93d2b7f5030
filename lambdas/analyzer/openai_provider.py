"""OpenAI as the analysis provider when the OPENAI_API_KEY parameter exists and no Anthropic key
does. Same contract as the Anthropic path: the image, the versioned prompt, a forced function
call with the same strict schema, validation, one retry on invalid output, finish_reason checked.
The SDK is imported and the client built only when this provider is selected.
OPENAI_BASE_URL (read by the SDK) is how tests point it at a local server.
"""

from __future__ import annotations

import base64
import json
from typing import Any

from lambdas.analyzer.providers import Analysis, InvalidOutput, Refused, retryable_status
from lambdas.analyzer.schema import (
    INPUT_SCHEMA,
    PROMPT_VERSION,
    SYSTEM_PROMPT,
    TOOL_NAME,
    USER_PROMPT,
    validate_analysis,
)
from lambdas.common.collections import RetryableError
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
        try:
            return self._client.chat.completions.create(**request)
        except openai.APIStatusError as exc:
            retryable = retryable_status("openai", exc)
            if retryable:
                raise retryable from exc
            raise
        except (openai.APITimeoutError, openai.APIConnectionError) as exc:
            raise RetryableError(f"openai: {type(exc).__name__}") from exc

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
        tokens_in = tokens_out = 0
        problems: list[str] = []
        for _attempt in range(2):  # one retry on invalid output
            reply = self._create(messages)
            if reply.usage:
                tokens_in += reply.usage.prompt_tokens
                tokens_out += reply.usage.completion_tokens
            choice = reply.choices[0]
            message = choice.message
            if choice.finish_reason == "content_filter" or getattr(message, "refusal", None):
                raise Refused("model refused to analyze the image")
            # A forced function call finishes with "stop" (or "tool_calls"); "length" is truncated.
            problems = (
                [] if choice.finish_reason in ("stop", "tool_calls") else [f"finish_reason is {choice.finish_reason}"]
            )
            call = next((c for c in message.tool_calls or [] if c.function.name == TOOL_NAME), None)
            value: Any = None
            if call is None:
                problems.append("no function call")
            else:
                try:
                    value = json.loads(call.function.arguments)
                except ValueError:
                    problems.append("function arguments are not JSON")
                else:
                    problems += validate_analysis(value)
            if not problems:
                return Analysis(value, self.provider, self.model, PROMPT_VERSION, tokens_in, tokens_out)
            if call is not None:
                messages = [
                    *messages[:2],
                    message.model_dump(exclude_none=True),
                    {"role": "tool", "tool_call_id": call.id, "content": "Invalid: " + "; ".join(problems)},
                ]
        raise InvalidOutput("; ".join(problems))
