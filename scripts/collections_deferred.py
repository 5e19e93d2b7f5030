"""Requeue the collections items deferred by the daily analysis budget, now.

The scheduled rule does this every day just after 00:00 UTC; this command is for an operator
(after raising the budget, say) and for the local runtime, which runs no schedules. It invokes
the environment's DeferredAnalysesLambda, which publishes each deferred item's ImageProcessed
again (the analyzer analyzes it within the user's budget or defers it again).

    collections-deferred --env dev
    collections-deferred --env dev --endpoint-url http://127.0.0.1:PORT  # local Lambda API

(`make setup` installs `collections-deferred` into .venv/bin; `python scripts/collections_deferred.py
ARGS` is the same command.)
"""

from __future__ import annotations

import json
import sys
from typing import Any

from scripts.operator_cli import OneLineParser, OperatorError, print_or_fail

FUNCTION = "collections-{env}-DeferredAnalysesLambda"


class RequeueFailed(OperatorError):
    """The function ran and answered with an error."""


def requeue(env: str, *, endpoint_url: str | None = None, limit: int | None = None) -> dict[str, Any]:
    import boto3

    payload = {"limit": limit} if limit else {}
    response = boto3.client("lambda", endpoint_url=endpoint_url).invoke(
        FunctionName=FUNCTION.format(env=env), InvocationType="RequestResponse", Payload=json.dumps(payload).encode()
    )
    body = json.loads(response["Payload"].read() or b"null")
    if response.get("FunctionError"):
        raise RequeueFailed(f"{FUNCTION.format(env=env)} failed: {body}")
    return dict(body)


def main(argv: list[str] | None = None) -> int:
    parser = OneLineParser(prog="collections-deferred", description=__doc__.splitlines()[0])
    parser.add_argument("--env", required=True, help="environment name (dev, prod)")
    parser.add_argument("--endpoint-url", help="Lambda API endpoint (the local runtime's lambda_url)")
    parser.add_argument("--limit", type=int, help="requeue at most this many (default 1000)")
    args = parser.parse_args(argv)

    def run() -> list[str]:
        result = requeue(args.env, endpoint_url=args.endpoint_url, limit=args.limit)
        return [f"requeued {result['requeued']} deferred item(s)", *(f"  {i}" for i in result.get("item_ids", []))]

    return print_or_fail(run, (RequeueFailed,))


if __name__ == "__main__":
    sys.exit(main())
