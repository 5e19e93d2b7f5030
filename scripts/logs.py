"""Tail a deployed function's CloudWatch logs, one readable line per event.

    platform-logs --env dev qr-upload-http-api [--follow] [--since 10m] [--filter TEXT]

(`make setup` installs `platform-logs` into .venv/bin; `python scripts/logs.py ARGS` is the same
command.)

NAME is a function's short name (`qr-upload-http-api`), its full name (`qr-upload-http-api-dev`)
or a unique part of it; it is resolved from the environment's deployed stacks (CloudFormation), so
nobody has to remember physical names. User functions of the Functions system are not in any
stack: they are found by their prefix (`ufn-{env}-`), e.g. `platform-logs --env dev ufn-dev-acme-fn-...`
or a unique part such as the function id. Powertools JSON lines are rendered as
`time LEVEL [correlation id] message key=value...`; other lines (START/END/REPORT) as they are.
"""

from __future__ import annotations

import argparse
import json
import re
import sys
import time
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any

import boto3
from botocore.exceptions import BotoCoreError, ClientError

from lambdas.functions.names import user_function_prefix
from scripts.operator_cli import OneLineParser
from scripts.powertools_log import json_object, render_record

_SINCE = re.compile(r"^(\d+)([smhd])$")
_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400}


class LogsError(Exception):
    """A problem worth one line to the user."""


def parse_since(text: str) -> int:
    match = _SINCE.match(text.strip())
    if not match:
        raise LogsError(f"--since must look like 30s, 10m, 2h or 1d, got {text!r}")
    return int(match.group(1)) * _UNITS[match.group(2)]


def deployed_functions(cfn: Any, env: str) -> list[str]:
    """Physical names of every Lambda function in the environment's stacks (`*-{env}`)."""
    names: list[str] = []
    for page in cfn.get_paginator("list_stacks").paginate(
        StackStatusFilter=["CREATE_COMPLETE", "UPDATE_COMPLETE", "UPDATE_ROLLBACK_COMPLETE", "IMPORT_COMPLETE"]
    ):
        for summary in page["StackSummaries"]:
            if not summary["StackName"].endswith(f"-{env}"):
                continue
            for res_page in cfn.get_paginator("list_stack_resources").paginate(StackName=summary["StackName"]):
                names.extend(
                    r["PhysicalResourceId"]
                    for r in res_page["StackResourceSummaries"]
                    if r["ResourceType"] == "AWS::Lambda::Function"
                )
    return sorted(set(names))


def user_functions(lam: Any, env: str) -> list[str]:
    """Names of the Functions system's user functions in this environment (`ufn-{env}-...`)."""
    prefix = user_function_prefix(env)
    found: list[str] = []
    for page in lam.get_paginator("list_functions").paginate():
        found.extend(f["FunctionName"] for f in page["Functions"] if f["FunctionName"].startswith(prefix))
    return sorted(found)


def resolve_function(names: list[str], env: str, wanted: str) -> str:
    for exact in (wanted, f"{wanted}-{env}"):
        if exact in names:
            return exact
    partial = [n for n in names if wanted.lower() in n.lower()]
    if len(partial) == 1:
        return partial[0]
    if not partial:
        known = ", ".join(names) or "none"
        raise LogsError(f"no function matching {wanted!r} in environment {env!r} (deployed: {known})")
    raise LogsError(f"{wanted!r} matches several functions: {', '.join(partial)}")


def render(timestamp_ms: int, message: str) -> str:
    when = datetime.fromtimestamp(timestamp_ms / 1000, tz=UTC).strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z"
    text = message.rstrip("\n")
    fields = json_object(text)
    if fields is None or "message" not in fields:
        return f"{when} {text.strip()}"
    record = render_record(fields, quote_strings=False)
    return f"{when} {record.level:<7} [{record.correlation_id or '-'}] {record.text}"


def events(logs: Any, group: str, start_ms: int, pattern: str | None, follow: bool, poll: float) -> Iterator[str]:
    seen: set[str] = set()
    while True:
        kwargs: dict[str, Any] = {"logGroupName": group, "startTime": start_ms, "interleaved": True}
        if pattern:
            kwargs["filterPattern"] = json.dumps(pattern)  # quoted: match the text as a phrase
        for page in logs.get_paginator("filter_log_events").paginate(**kwargs):
            for event in page["events"]:
                if event["eventId"] in seen:
                    continue
                seen.add(event["eventId"])
                start_ms = max(start_ms, event["timestamp"])
                yield render(event["timestamp"], event["message"])
        if not follow:
            return
        time.sleep(poll)


def main(argv: list[str] | None = None) -> int:
    parser = OneLineParser(prog="platform-logs", description=__doc__.split("\n\n")[0] if __doc__ else None)
    parser.add_argument("name", help="function short name, full name, or a unique part of it")
    parser.add_argument("--env", default="dev")
    parser.add_argument("--follow", "-f", action="store_true", help="keep printing new events")
    parser.add_argument("--since", default="10m", help="how far back to start (30s, 10m, 2h, 1d)")
    parser.add_argument("--filter", dest="pattern", help="only events containing this text")
    parser.add_argument("--poll-seconds", type=float, default=2.0, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    try:
        start_ms = int((time.time() - parse_since(args.since)) * 1000)
        names = deployed_functions(boto3.client("cloudformation"), args.env)
        if args.name.startswith("ufn-") or not any(args.name.lower() in n.lower() for n in names):
            names += user_functions(boto3.client("lambda"), args.env)
        function = resolve_function(names, args.env, args.name)
        for line in events(
            boto3.client("logs"), f"/aws/lambda/{function}", start_ms, args.pattern, args.follow, args.poll_seconds
        ):
            print(line, flush=True)
    except LogsError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    except (BotoCoreError, ClientError) as exc:
        print(f"error: AWS said: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 0
    return 0


if __name__ == "__main__":
    sys.exit(main())
