"""The analysis contract: versioned prompt, the forced tool's strict JSON schema, and a validator.

The schema is sent with `strict: true`, but the reply is still validated here: the provider
could be a proxy, an older model, or the local provider, and bad rows are worse than a retry.
Changing the prompt or the schema means bumping PROMPT_VERSION, which re-analyzes items on
their next ImageProcessed event.
"""

from __future__ import annotations

from typing import Any

from lambdas.collections.pipeline import CATEGORIES

PROMPT_VERSION = "2026-11-23.1"
TOOL_NAME = "record_image_analysis"
MEDIA_TYPES = ("photo", "screenshot", "illustration", "document", "other")
ORIENTATIONS = ("landscape", "portrait", "square")
QUALITIES = ("low", "medium", "high")

SYSTEM_PROMPT = (
    "You catalogue images saved by a user into their personal collections. Describe what is "
    "actually visible; never guess identities of people. Always answer by calling the "
    f"{TOOL_NAME} tool exactly once. Choose the single best category from the allowed list, up to "
    "five short lower-case subcategories, a headline of at most 12 words, and a summary of two or "
    "three sentences that would help the user find this image again by searching words."
)
USER_PROMPT = "Analyze this image and record the analysis."


def _strings(description: str) -> dict[str, Any]:
    return {"type": "array", "items": {"type": "string"}, "description": description}


def _object(properties: dict[str, Any]) -> dict[str, Any]:
    return {"type": "object", "properties": properties, "required": list(properties), "additionalProperties": False}


INPUT_SCHEMA = _object(
    {
        "category": {"type": "string", "enum": list(CATEGORIES)},
        "subcategories": _strings("up to 5 short lower-case refinements of the category"),
        "headline": {"type": "string", "description": "at most 12 words"},
        "summary": {"type": "string", "description": "two or three sentences"},
        "image_details": _object(
            {
                "objects": _strings("main visible objects or subjects"),
                "colors": _strings("dominant colour names"),
                "setting": {"type": "string", "description": "where the scene is, or empty"},
                "text": {"type": "string", "description": "legible text in the image, or empty"},
                "mood": {"type": "string", "description": "one or two words"},
            }
        ),
        "media_metadata": _object(
            {
                "media_type": {"type": "string", "enum": list(MEDIA_TYPES)},
                "orientation": {"type": "string", "enum": list(ORIENTATIONS)},
                "quality": {"type": "string", "enum": list(QUALITIES)},
            }
        ),
    }
)

TOOL: dict[str, Any] = {
    "name": TOOL_NAME,
    "description": "Record the structured analysis of the image.",
    "input_schema": INPUT_SCHEMA,
    "strict": True,
}

_LIMITS = {"headline": 200, "summary": 2000}


def validate(value: Any, schema: dict[str, Any] = INPUT_SCHEMA, path: str = "$") -> list[str]:
    """Problems with `value` against the (small) subset of JSON Schema used above."""
    kind = schema["type"]
    if kind == "object":
        if not isinstance(value, dict):
            return [f"{path} must be an object"]
        problems = [f"{path}.{k} is missing" for k in schema["required"] if k not in value]
        problems += [f"{path}.{k} is not allowed" for k in value if k not in schema["properties"]]
        for key, sub in schema["properties"].items():
            if key in value:
                problems += validate(value[key], sub, f"{path}.{key}")
        return problems
    if kind == "array":
        if not isinstance(value, list):
            return [f"{path} must be an array"]
        return [p for i, v in enumerate(value) for p in validate(v, schema["items"], f"{path}[{i}]")]
    if not isinstance(value, str):
        return [f"{path} must be a string"]
    if "enum" in schema and value not in schema["enum"]:
        return [f"{path} must be one of {', '.join(schema['enum'])}"]
    limit = _LIMITS.get(path.removeprefix("$."))
    if limit and (not value.strip() or len(value) > limit):
        return [f"{path} must be 1..{limit} characters"]
    return []


def validate_analysis(value: Any) -> list[str]:
    problems = validate(value)
    if not problems and len(value["subcategories"]) > 5:
        problems.append("$.subcategories must have at most 5 entries")
    return problems
