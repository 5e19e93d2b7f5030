"""EventBridge event pattern matching (https://docs.aws.amazon.com/eventbridge/latest/userguide/eb-event-patterns.html).

Supported: exact values (strings, numbers, booleans, null), nested objects, arrays in the event
(any element matches), `prefix`, `suffix`, `equals-ignore-case`, `anything-but` (value, list,
prefix, suffix), `exists`, `numeric` ranges, `cidr` (IPv4), `wildcard`, and `$or`.
"""

from __future__ import annotations

import fnmatch
import ipaddress
import operator
from typing import Any

_MISSING = object()
_NUMERIC = {"=": operator.eq, "<": operator.lt, "<=": operator.le, ">": operator.gt, ">=": operator.ge}


def matches(pattern: dict[str, Any], event: Any) -> bool:
    if not isinstance(event, dict):
        return False
    for key, expected in pattern.items():
        if key == "$or":
            if not any(matches(alternative, event) for alternative in expected):
                return False
            continue
        actual = event.get(key, _MISSING)
        if isinstance(expected, dict):
            if actual is _MISSING or not matches(expected, actual):
                return False
        elif not _leaf_matches(expected, actual):
            return False
    return True


def _leaf_matches(rules: list[Any], actual: Any) -> bool:
    values = actual if isinstance(actual, list) else [actual]
    for rule in rules:
        if isinstance(rule, dict) and "exists" in rule:
            present = actual is not _MISSING
            if present == bool(rule["exists"]):
                return True
            continue
        if actual is _MISSING:
            continue
        if any(_rule_matches(rule, value) for value in values):
            return True
    return False


def _rule_matches(rule: Any, value: Any) -> bool:
    if not isinstance(rule, dict):
        return bool(rule == value and type(rule) is type(value)) or _same_number(rule, value)
    ((op, arg),) = rule.items()
    if op == "prefix":
        if isinstance(arg, dict):  # {"prefix": {"equals-ignore-case": "x"}}
            return isinstance(value, str) and value.lower().startswith(str(arg["equals-ignore-case"]).lower())
        return isinstance(value, str) and value.startswith(arg)
    if op == "suffix":
        if isinstance(arg, dict):
            return isinstance(value, str) and value.lower().endswith(str(arg["equals-ignore-case"]).lower())
        return isinstance(value, str) and value.endswith(arg)
    if op == "equals-ignore-case":
        return isinstance(value, str) and value.lower() == str(arg).lower()
    if op == "wildcard":
        return isinstance(value, str) and fnmatch.fnmatchcase(value, arg)
    if op == "anything-but":
        if isinstance(arg, dict):
            return not _rule_matches(arg, value)
        excluded = arg if isinstance(arg, list) else [arg]
        return not any(_rule_matches(item, value) for item in excluded)
    if op == "numeric":
        if isinstance(value, bool) or not isinstance(value, int | float):
            return False
        return all(_NUMERIC[arg[i]](value, arg[i + 1]) for i in range(0, len(arg), 2))
    if op == "cidr":
        try:
            return ipaddress.ip_address(str(value)) in ipaddress.ip_network(arg, strict=False)
        except ValueError:
            return False
    raise ValueError(f"unsupported event pattern operator {op!r}")


def _same_number(rule: Any, value: Any) -> bool:
    numbers = (int, float)
    return (
        isinstance(rule, numbers)
        and isinstance(value, numbers)
        and not isinstance(rule, bool)
        and not isinstance(value, bool)
        and float(rule) == float(value)
    )
