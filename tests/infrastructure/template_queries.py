"""Questions the stack tests ask of a synthesized template: a function by name, its role's
policy statements, the actions they allow."""

from __future__ import annotations

from typing import Any

from aws_cdk.assertions import Template


def find_function(template: Template, name: str) -> tuple[str, dict[str, Any]]:
    """(logical id, resource) of the one function with this FunctionName."""
    found = template.find_resources("AWS::Lambda::Function", {"Properties": {"FunctionName": name}})
    assert len(found) == 1, f"expected one function named {name}"
    return next(iter(found.items()))


def policy_statements(template: Template, function_name: str) -> list[dict[str, Any]]:
    """Every statement of every policy attached to the function's role."""
    _, fn = find_function(template, function_name)
    role_id = fn["Properties"]["Role"]["Fn::GetAtt"][0]
    statements: list[dict[str, Any]] = []
    for policy in template.find_resources("AWS::IAM::Policy").values():
        if {"Ref": role_id} in policy["Properties"]["Roles"]:
            statements.extend(policy["Properties"]["PolicyDocument"]["Statement"])
    return statements


def statement_actions(statements: list[dict[str, Any]]) -> set[str]:
    actions: set[str] = set()
    for statement in statements:
        value = statement["Action"]
        actions.update([value] if isinstance(value, str) else value)
    return actions
