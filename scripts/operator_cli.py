"""What the operator commands (tokens, keys) share: print their lines, or one error line and exit 1."""

from __future__ import annotations

import sys
from collections.abc import Callable

from botocore.exceptions import BotoCoreError, ClientError


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
