"""What the operator commands (tokens, keys) share: a stack's outputs, and printing their lines or
one error line and exit 1."""

from __future__ import annotations

import sys
from collections.abc import Callable

from botocore.exceptions import BotoCoreError, ClientError

from lambdas.common.aws import client


class OperatorError(Exception):
    """A problem worth one line to the user (each command has its own subclass)."""


def stack_outputs(stack: str) -> dict[str, str]:
    """The deployed stack's outputs by key (how the commands find their tables and URLs)."""
    try:
        stacks = client("cloudformation").describe_stacks(StackName=stack)["Stacks"]
    except ClientError as exc:
        raise OperatorError(f"stack {stack} not found ({exc.response['Error']['Message']})") from None
    return {str(o["OutputKey"]): str(o["OutputValue"]) for o in stacks[0].get("Outputs", [])}


def print_or_fail(run: Callable[[], list[str]], user_errors: tuple[type[Exception], ...]) -> int:
    """Run a command; its lines on stdout and 0, or one `error: ...` line on stderr and 1 (for the
    command's own errors and for any AWS call that failed), never a traceback."""
    try:
        lines = run()
    except user_errors as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    except (BotoCoreError, ClientError) as exc:
        print(f"error: AWS call failed: {exc}", file=sys.stderr)
        return 1
    print("\n".join(lines))
    return 0
