"""Analysis providers. The Anthropic SDK is imported and its client built on first use, never
at import time: the handler module stays cheap to import, and the local provider never pays for it."""

from __future__ import annotations

import base64
import os
from dataclasses import dataclass
from typing import Any, Protocol

from lambdas.analyzer import local
from lambdas.analyzer.schema import PROMPT_VERSION, SYSTEM_PROMPT, TOOL, TOOL_NAME, USER_PROMPT, validate_analysis
from lambdas.common.collections import (
    ANTHROPIC_API_KEY,
    OPENAI_API_KEY,
    RetryableError,
    api_key,
    local_providers_allowed,
)
from lambdas.common.settings import MissingSetting, env_int


class InvalidOutput(RuntimeError):
    """The model's reply failed validation twice (raised so the event ends in the DLQ if it persists)."""


class Refused(RuntimeError):
    """The model declined (stop_reason `refusal`): retrying the same image will not help."""


@dataclass(frozen=True)
class Analysis:
    data: dict[str, Any]
    provider: str
    model: str
    prompt_version: str
    input_tokens: int = 0
    output_tokens: int = 0


class Analyzer(Protocol):
    provider: str
    model: str

    def analyze(self, image_jpeg: bytes) -> Analysis: ...


class LocalAnalyzer:
    provider = "local"
    model = local.MODEL

    def analyze(self, image_jpeg: bytes) -> Analysis:
        data = local.analyze_pixels(image_jpeg)
        problems = validate_analysis(data)
        if problems:  # a bug in the local provider, not the input
            raise InvalidOutput("; ".join(problems))
        return Analysis(data, self.provider, self.model, PROMPT_VERSION)


_RETRYABLE_STATUS = {408, 409, 429}


def retryable_status(provider: str, exc: Any) -> RetryableError | None:
    """A RetryableError for an SDK status error worth retrying (throttling, conflict, timeout,
    5xx), naming retry-after when given; None for errors a retry cannot fix. Anthropic's and
    OpenAI's SDKs raise the same shape (`status_code`, `response.headers`)."""
    if exc.status_code not in _RETRYABLE_STATUS and exc.status_code < 500:
        return None
    retry_after = exc.response.headers.get("retry-after")
    return RetryableError(f"{provider} {exc.status_code}" + (f" (retry-after {retry_after}s)" if retry_after else ""))


class AnthropicAnalyzer:
    provider = "anthropic"

    def __init__(self, key: str, model: str) -> None:
        import anthropic

        # max_retries=0: throttling and 5xx raise at once and Lambda's async retries (minutes
        # apart) do the backing off, instead of sleeping inside a billed invocation.
        # ANTHROPIC_BASE_URL (read by the SDK) is how tests point it at a local server.
        self._client = anthropic.Anthropic(
            api_key=key, max_retries=0, timeout=float(env_int("ANTHROPIC_TIMEOUT_SECONDS", 60))
        )
        self.model = model
        self.max_tokens = env_int("ANTHROPIC_MAX_TOKENS", 2048)

    def _create(self, messages: list[dict[str, Any]]) -> Any:
        import anthropic

        try:
            request: dict[str, Any] = {
                "model": self.model,
                "max_tokens": self.max_tokens,
                "system": SYSTEM_PROMPT,
                "tools": [TOOL],
                "tool_choice": {"type": "tool", "name": TOOL_NAME},
                "messages": messages,
            }
            return self._client.messages.create(**request)
        except anthropic.APIStatusError as exc:
            retryable = retryable_status("anthropic", exc)
            if retryable:
                raise retryable from exc
            raise
        except (anthropic.APITimeoutError, anthropic.APIConnectionError) as exc:
            raise RetryableError(f"anthropic: {type(exc).__name__}") from exc

    def analyze(self, image_jpeg: bytes) -> Analysis:
        messages: list[dict[str, Any]] = [
            {
                "role": "user",
                "content": [
                    {
                        "type": "image",
                        "source": {
                            "type": "base64",
                            "media_type": "image/jpeg",
                            "data": base64.b64encode(image_jpeg).decode(),
                        },
                    },
                    {"type": "text", "text": USER_PROMPT},
                ],
            }
        ]
        tokens_in = tokens_out = 0
        problems: list[str] = []
        for _attempt in range(2):  # one retry on invalid output
            reply = self._create(messages)
            tokens_in += reply.usage.input_tokens
            tokens_out += reply.usage.output_tokens
            if reply.stop_reason == "refusal":
                raise Refused("model refused to analyze the image")
            block = next((b for b in reply.content if b.type == "tool_use" and b.name == TOOL_NAME), None)
            problems = [] if reply.stop_reason == "tool_use" else [f"stop_reason is {reply.stop_reason}"]
            problems += ["no tool_use block"] if block is None else validate_analysis(block.input)
            if not problems and block is not None:
                return Analysis(block.input, self.provider, self.model, PROMPT_VERSION, tokens_in, tokens_out)
            if block is not None and reply.stop_reason == "tool_use":
                # Tell the model what was wrong; it answers with a corrected tool call.
                messages = [
                    *messages[:1],
                    {"role": "assistant", "content": [b.model_dump() for b in reply.content]},
                    {
                        "role": "user",
                        "content": [
                            {
                                "type": "tool_result",
                                "tool_use_id": block.id,
                                "is_error": True,
                                "content": "; ".join(problems),
                            }
                        ],
                    },
                ]
        raise InvalidOutput("; ".join(problems))


_analyzer: Analyzer | None = None


def analyzer() -> Analyzer:
    """The configured provider, built once per container: Anthropic if its key exists, else OpenAI
    if its key exists, else (where allowed) the offline local provider."""
    global _analyzer
    if _analyzer is None:
        key = api_key(ANTHROPIC_API_KEY)
        openai_key = None if key else api_key(OPENAI_API_KEY)
        if key:
            _analyzer = AnthropicAnalyzer(key, os.environ.get("ANALYSIS_MODEL", "claude-sonnet-4-5"))
        elif openai_key:
            from lambdas.analyzer.openai_provider import OpenAIAnalyzer

            _analyzer = OpenAIAnalyzer(openai_key, os.environ.get("OPENAI_ANALYSIS_MODEL", "gpt-4.1"))
        elif local_providers_allowed():
            _analyzer = LocalAnalyzer()
        else:
            raise MissingSetting("ANTHROPIC_API_KEY parameter is not set and local providers are not allowed")
    return _analyzer


def reset() -> None:
    global _analyzer
    _analyzer = None
