"""Which analysis provider a container uses, chosen once: Anthropic, OpenAI, or the offline local
one. Each SDK provider lives in a module of its own and imports its SDK only when it is built, so
the handler stays cheap to import and the local provider never pays for an SDK."""

from __future__ import annotations

import os

from lambdas.analyzer import local
from lambdas.analyzer.anthropic_provider import AnthropicAnalyzer
from lambdas.analyzer.contract import Analysis, Analyzer, InvalidOutput
from lambdas.analyzer.openai_provider import OpenAIAnalyzer
from lambdas.analyzer.schema import PROMPT_VERSION, validate_analysis
from lambdas.collections.names import (
    ANTHROPIC_API_KEY,
    ENV_ANALYSIS_MODEL,
    ENV_OPENAI_ANALYSIS_MODEL,
    OPENAI_API_KEY,
)
from lambdas.collections.pipeline import api_key, local_providers_allowed
from lambdas.common.containers import per_container
from lambdas.common.settings import MissingSetting


class LocalAnalyzer:
    provider = "local"
    model = local.MODEL

    def analyze(self, image_jpeg: bytes) -> Analysis:
        data = local.analyze_pixels(image_jpeg)
        problems = validate_analysis(data)
        if problems:  # a bug in the local provider, not the input
            raise InvalidOutput("; ".join(problems))
        return Analysis(data, self.provider, self.model, PROMPT_VERSION)


@per_container
def analyzer() -> Analyzer:
    """The configured provider, built once per container: Anthropic if its key exists, else OpenAI
    if its key exists, else (where allowed) the offline local provider."""
    key = api_key(ANTHROPIC_API_KEY)
    openai_key = None if key else api_key(OPENAI_API_KEY)
    if key:
        return AnthropicAnalyzer(key, os.environ.get(ENV_ANALYSIS_MODEL, "claude-sonnet-4-5"))
    if openai_key:
        return OpenAIAnalyzer(openai_key, os.environ.get(ENV_OPENAI_ANALYSIS_MODEL, "gpt-4.1"))
    if local_providers_allowed():
        return LocalAnalyzer()
    raise MissingSetting(f"{ANTHROPIC_API_KEY} parameter is not set and local providers are not allowed")
