"""What a function's configuration may be, and how records look to API callers.

Validation raises `Invalid` with a message for the caller; views never include secret values
(only the names of secret variables) nor internal bookkeeping.
"""

from __future__ import annotations

import hashlib
import json
import re
import secrets
import string
from datetime import UTC, datetime
from typing import Any

from lambdas.functions import names
from lambdas.functions.code import CodeError, check_handler

DEFAULT_HANDLER = "main.handler"
DEFAULT_MEMORY_MB = 256
DEFAULT_TIMEOUT_SECONDS = 10  # fits a synchronous call (at most 25 s) with room to spare
MIN_MEMORY_MB = 128
MAX_DESCRIPTION = 256
MAX_TAGS = 20
TAG_PATTERN = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.:-]{0,63}$")
ENV_NAME_PATTERN = re.compile(r"^[A-Za-z][A-Za-z0-9_]*$")
# Lambda's own limit for all variables together (keys and values); secrets count too.
MAX_ENV_BYTES = 4 * 1024
# Set by the Lambda runtime; a function must not override them.
RESERVED_ENV = re.compile(
    r"^(AWS_.*|_HANDLER|_X_AMZN_TRACE_ID|LAMBDA_TASK_ROOT|LAMBDA_RUNTIME_DIR|TZ|PATH|LANG|LD_LIBRARY_PATH|PYTHONPATH)$"
)
_ID_ALPHABET = string.ascii_lowercase + string.digits


class Invalid(ValueError):
    pass


def now_iso() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds").replace("+00:00", "Z")


def new_function_id() -> str:
    return "fn-" + "".join(secrets.choice(_ID_ALPHABET) for _ in range(12))


def check_name(value: Any) -> str:
    if not isinstance(value, str) or not names.FUNCTION_NAME_PATTERN.match(value):
        raise Invalid("name must be 1-64 characters: a letter, then letters, digits, '-' or '_'")
    if names.FUNCTION_ID_PATTERN.match(value):
        raise Invalid("name must not look like a function id (fn-...)")
    return value


def _int_in(body: dict[str, Any], field: str, low: int, high: int) -> int | None:
    if field not in body:
        return None
    value = body[field]
    if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
        raise Invalid(f"{field} must be an integer from {low} to {high}")
    return value


def _env_map(body: dict[str, Any], field: str, allow_null: bool) -> dict[str, str | None] | None:
    if field not in body:
        return None
    value = body[field]
    if not isinstance(value, dict):
        raise Invalid(f"{field} must be an object of NAME: value")
    for key, item in value.items():
        if not ENV_NAME_PATTERN.match(key) or RESERVED_ENV.match(key):
            raise Invalid(f"{field}: {key!r} is not an allowed variable name")
        if not (isinstance(item, str) or (allow_null and item is None)):
            raise Invalid(f"{field}: {key} must be a string" + (" (or null to remove it)" if allow_null else ""))
    return value


def parse_config(body: dict[str, Any], max_memory: int, max_timeout: int, creating: bool) -> dict[str, Any]:
    """The configuration fields present in a create or update body, validated."""
    config: dict[str, Any] = {}
    if "description" in body:
        if not isinstance(body["description"], str) or len(body["description"]) > MAX_DESCRIPTION:
            raise Invalid(f"description must be text of at most {MAX_DESCRIPTION} characters")
        config["description"] = body["description"]
    if "handler" in body:
        try:
            config["handler"] = check_handler(body["handler"] if isinstance(body["handler"], str) else "")
        except CodeError as exc:
            raise Invalid(str(exc)) from None
    memory = _int_in(body, "memory_mb", MIN_MEMORY_MB, max_memory)
    if memory is not None:
        config["memory_mb"] = memory
    timeout = _int_in(body, "timeout_seconds", 1, max_timeout)
    if timeout is not None:
        config["timeout_seconds"] = timeout
    environment = _env_map(body, "environment", allow_null=False)
    if environment is not None:
        config["environment"] = environment
    secrets_ = _env_map(body, "secret_environment", allow_null=not creating)
    if secrets_ is not None:
        config["secret_environment"] = secrets_
    if "tags" in body:
        tags = body["tags"]
        if (
            not isinstance(tags, list)
            or len(tags) > MAX_TAGS
            or not all(isinstance(t, str) and TAG_PATTERN.match(t) for t in tags)
        ):
            raise Invalid(f"tags must be a list of at most {MAX_TAGS} short words (letters, digits, _.:-)")
        config["tags"] = sorted(set(tags))
    if "store_payloads" in body:
        if not isinstance(body["store_payloads"], bool):
            raise Invalid("store_payloads must be true or false")
        config["store_payloads"] = body["store_payloads"]
    if "input_schema" in body:
        config["input_schema"] = check_schema(body["input_schema"])
    for forbidden in ("vpc_config", "layers", "role", "runtime", "architecture"):
        if forbidden in body:
            raise Invalid(f"{forbidden} cannot be chosen: user functions run with the platform's fixed {forbidden}")
    return config


MAX_SCHEMA_BYTES = 64 * 1024


def check_schema(schema: Any) -> dict[str, Any] | None:
    """A JSON Schema (2020-12) for invoke payloads, or null to remove it. Interpreted by the
    `jsonschema` library (no code is generated from it)."""
    if schema is None:
        return None
    if not isinstance(schema, dict) or len(json.dumps(schema)) > MAX_SCHEMA_BYTES:
        raise Invalid(f"input_schema must be a JSON Schema object of at most {MAX_SCHEMA_BYTES} bytes")
    from jsonschema import Draft202012Validator
    from jsonschema.exceptions import SchemaError

    try:
        Draft202012Validator.check_schema(schema)
    except SchemaError as exc:
        raise Invalid(f"input_schema is not a valid JSON Schema: {exc.message}") from None
    return schema


def check_env_size(environment: dict[str, str], secret_names: list[str], secret_sizes: int) -> None:
    size = sum(len(k) + len(v) for k, v in environment.items()) + sum(len(k) for k in secret_names) + secret_sizes
    if size > MAX_ENV_BYTES:
        raise Invalid(f"environment variables total {size} bytes; Lambda allows {MAX_ENV_BYTES}")
    clash = set(environment) & set(secret_names)
    if clash:
        raise Invalid(f"{', '.join(sorted(clash))} is both a plain and a secret variable")


def config_hash(fn: dict[str, Any]) -> str:
    """What makes two drafts the same version: code and every setting that reaches Lambda."""
    snapshot = config_snapshot(fn)
    snapshot["secret_versions"] = fn.get("secret_versions", {})
    return hashlib.sha256(json.dumps(snapshot, sort_keys=True, separators=(",", ":")).encode()).hexdigest()


def config_snapshot(fn: dict[str, Any]) -> dict[str, Any]:
    return {
        "code_sha256": fn.get("code_sha256"),
        "handler": fn["handler"],
        "runtime": names.USER_RUNTIME,
        "memory_mb": fn["memory_mb"],
        "timeout_seconds": fn["timeout_seconds"],
        "environment": dict(fn.get("environment", {})),
        "secret_environment": sorted(fn.get("secret_names", [])),
    }


def alias_view(fn: dict[str, Any]) -> dict[str, Any] | None:
    live = fn.get("live")
    if not live:
        return None
    history = fn.get("live_history") or []
    return {
        "name": names.LIVE_ALIAS,
        "version": live["version"],
        "canary": live.get("canary"),
        "status": fn.get("alias_status", "updating"),
        "error": fn.get("alias_error"),
        "previous": history[-1] if history else None,
    }


def function_view(fn: dict[str, Any]) -> dict[str, Any]:
    return {
        "id": fn["id"],
        "name": fn["name"],
        "org": fn["org"],
        "description": fn.get("description", ""),
        "handler": fn["handler"],
        "runtime": names.USER_RUNTIME,
        "memory_mb": fn["memory_mb"],
        "timeout_seconds": fn["timeout_seconds"],
        "environment": fn.get("environment", {}),
        "secret_environment": sorted(fn.get("secret_names", [])),
        "tags": fn.get("tags", []),
        "input_schema": fn.get("input_schema"),
        "store_payloads": bool(fn.get("store_payloads", False)),
        "status": fn["status"],
        "error": fn.get("error"),
        "revision": fn.get("revision", 0),
        "code_sha256": fn.get("code_sha256"),
        "code_size": fn.get("code_size"),
        "lambda_function": fn["lambda_function"],
        "latest_version": fn.get("latest_version"),
        "live": alias_view(fn),
        "created_at": fn["created_at"],
        "created_by": fn["created_by"],
        "updated_at": fn.get("updated_at", fn["created_at"]),
        "updated_by": fn.get("updated_by", fn["created_by"]),
    }


def version_view(version: dict[str, Any]) -> dict[str, Any]:
    return {
        "version": version["version"],
        "code_sha256": version["config"].get("code_sha256"),
        "config": version["config"],
        "status": version["status"],
        "error": version.get("error"),
        "lambda_version": version.get("lambda_version"),
        "description": version.get("description", ""),
        "created_at": version["created_at"],
        "created_by": version["created_by"],
    }
