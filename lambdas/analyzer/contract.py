"""What every analysis provider shares: the result, the errors, and the one exchange with a model
(a forced tool call, validated, with one retry on invalid output). Providers only say how to
send a conversation and how to read a reply; this module imports no SDK."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Protocol

from lambdas.analyzer.schema import PROMPT_VERSION, validate_analysis
from lambdas.collections.pipeline import RetryableError


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


_RETRYABLE_STATUS = {408, 409, 429}


def call_sdk(sdk: Any, provider: str, call: Callable[[], Any]) -> Any:
    """`call()` with the SDK's errors sorted: throttling, conflict, timeout, 5xx and lost
    connections raise RetryableError (naming retry-after when given), so Lambda's retries do the
    backing off; other status errors propagate, as a retry cannot fix them. Anthropic's and
    OpenAI's SDKs share these exception names and shapes (`status_code`, `response.headers`)."""
    try:
        return call()
    except sdk.APIStatusError as exc:
        if exc.status_code not in _RETRYABLE_STATUS and exc.status_code < 500:
            raise
        retry_after = exc.response.headers.get("retry-after")
        suffix = f" (retry-after {retry_after}s)" if retry_after else ""
        raise RetryableError(f"{provider} {exc.status_code}{suffix}") from exc
    except (sdk.APITimeoutError, sdk.APIConnectionError) as exc:
        raise RetryableError(f"{provider}: {type(exc).__name__}") from exc


@dataclass(frozen=True)
class Reply:
    """One model reply as a provider reads it.

    `problems` are what is wrong with the reply itself (stop reason, no call, arguments that are
    not JSON); `has_arguments` says the forced call's `arguments` were read, and they are then
    validated here. `correct(problems)` is the conversation that tells the model what was wrong,
    or None where the reply cannot be answered (the same conversation is sent again)."""

    input_tokens: int
    output_tokens: int
    refused: bool = False
    problems: list[str] = field(default_factory=list)
    has_arguments: bool = False
    arguments: Any = None
    correct: Callable[[str], list[dict[str, Any]]] | None = None


def analyze_with_one_retry(
    analyzer: Analyzer, messages: list[dict[str, Any]], exchange: Callable[[list[dict[str, Any]]], Reply]
) -> Analysis:
    """Send `messages` through `exchange` until the forced call is valid, at most twice; tokens
    are summed over both attempts. Refused and InvalidOutput as their docstrings say."""
    tokens_in = tokens_out = 0
    problems: list[str] = []
    for _attempt in range(2):  # one retry on invalid output
        reply = exchange(messages)
        tokens_in += reply.input_tokens
        tokens_out += reply.output_tokens
        if reply.refused:
            raise Refused("model refused to analyze the image")
        problems = reply.problems + (validate_analysis(reply.arguments) if reply.has_arguments else [])
        if not problems:
            return Analysis(reply.arguments, analyzer.provider, analyzer.model, PROMPT_VERSION, tokens_in, tokens_out)
        if reply.correct is not None:
            messages = reply.correct("; ".join(problems))
    raise InvalidOutput("; ".join(problems))
