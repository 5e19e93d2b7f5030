"""What the operator commands (tokens, keys, logs, parameters) share: a stack's outputs, and one
error line instead of a usage dump or a traceback (exit 2 for a malformed command line, 1 otherwise)."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable
from typing import Any

from botocore.exceptions import BotoCoreError, ClientError

from lambdas.common.aws import client


class OperatorError(Exception):
    """A problem worth one line to the user (each command has its own subclass)."""


class OneLineParser(argparse.ArgumentParser):
    """An argument parser whose errors are one line, not usage + message (its subcommands' too)."""

    def error(self, message: str) -> Any:
        self.exit(2, f"error: {message} (see --help)\n")


def stack_outputs(stack: str) -> dict[str, str]:
    """The deployed stack's outputs by key (how the commands find their tables and URLs)."""
    try:
        stacks = client("cloudformation").describe_stacks(StackName=stack)["Stacks"]
    except ClientError as exc:
        raise OperatorError(f"stack {stack} not found ({exc.response['Error']['Message']})") from None
    return {str(o["OutputKey"]): str(o["OutputValue"]) for o in stacks[0].get("Outputs", [])}


def one_line_errors(run: Callable[[], int], user_errors: tuple[type[Exception], ...] = ()) -> int:
    """Run a command; its exit code, or one `error: ...` line on stderr and 1 (for the command's own
    errors and for any AWS call that failed), never a traceback."""
    try:
        return run()
    except user_errors as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    except (BotoCoreError, ClientError) as exc:
        print(f"error: AWS call failed: {exc}", file=sys.stderr)
        return 1


def print_or_fail(run: Callable[[], list[str]], user_errors: tuple[type[Exception], ...]) -> int:
    """Run a command; its lines on stdout and 0, or one error line and 1 (see `one_line_errors`)."""

    def print_lines() -> int:
        print("\n".join(run()))
        return 0

    return one_line_errors(print_lines, user_errors)
