"""Manage the API keys of organizations for the Functions API (operator command).

    functions-keys --env dev create --org acme --role developer [--function FID] [--label TEXT]
    functions-keys --env dev list [--org acme]
    functions-keys --env dev revoke KEY_ID

(`make setup` installs `functions-keys` into .venv/bin; `python scripts/functions_keys.py ARGS` is the
same command.)

The functions table is found from the `Functions-{env}` stack's `FunctionsTableName` output
(CloudFormation), or given with `--table NAME`. A key belongs to one organization and has one role
(`invoker` reads and invokes, `developer` also writes, `admin` also moves `live` and rolls back);
`--function FID` limits it to one function. The key is shown once, at creation; only a hash of its
secret is stored. Revoking deletes it; the API's authorizer caches answers for up to 5 minutes, so
a revoked key can keep working that long.
"""

from __future__ import annotations

import argparse
import shlex
import sys
from datetime import UTC, datetime
from typing import Any

from lambdas.functions.keys import ROLES, KeyStore
from lambdas.functions.names import FUNCTION_ID_PATTERN, ORG_PATTERN, OUTPUT_API_URL, OUTPUT_TABLE, STACK_BASE
from scripts import operator_cli
from scripts.operator_cli import print_or_fail

AUTHORIZER_CACHE_SECONDS = 300


class KeysError(operator_cli.OperatorError):
    """A problem worth one line to the user."""


def stack_name(env: str) -> str:
    return f"{STACK_BASE}-{env}"


def stack_outputs(env: str) -> dict[str, str]:
    return operator_cli.stack_outputs(stack_name(env))


def resolve_table(env: str) -> str:
    table = stack_outputs(env).get(OUTPUT_TABLE)
    if not table:
        raise KeysError(f"stack {stack_name(env)} has no {OUTPUT_TABLE} output; pass --table")
    return table


def check_org(org: str) -> str:
    if not ORG_PATTERN.match(org):
        raise KeysError(
            f"invalid organization {org!r}: 1-24 lowercase letters, digits and dashes, "
            "starting and ending with a letter or digit"
        )
    return org


def check_function(fid: str) -> str:
    if not FUNCTION_ID_PATTERN.match(fid):
        raise KeysError(
            f"--function takes a function id (fn- and 12 characters, as `functions.py list` shows), not {fid!r}"
        )
    return fid


def create_key(table: str, org: str, role: str, function: str | None = None, label: str = "", ddb: Any = None) -> str:
    """Create a key and return it (the only time it exists in clear). `ddb` lets a caller such as
    the local runtime's `make local` use its own DynamoDB client."""
    check_org(org)
    if role not in ROLES:
        raise KeysError(f"role must be one of {', '.join(ROLES)}, not {role!r}")
    if function:
        check_function(function)
    _, key = KeyStore(table, ddb).create(org, role, function or None, label)
    return key


# The developer CLI's console script as printed for copying: relative to the repository root, where
# the README runs commands, so it works without activating .venv (`make setup` installs it there).
CLI_COMMAND = ".venv/bin/platform-functions"


def cli_command(api_url: str, key: str, org: str) -> str:
    """A ready command line for the developer CLI with this key."""
    env = f"FUNCTIONS_API_URL={shlex.quote(api_url)} FUNCTIONS_API_KEY={shlex.quote(key)} FUNCTIONS_ORG={org}"
    return f"{env} {CLI_COMMAND} list"


def _when(epoch: int) -> str:
    return datetime.fromtimestamp(epoch, UTC).strftime("%Y-%m-%d %H:%M UTC") if epoch else "-"


def run(args: argparse.Namespace) -> list[str]:
    if getattr(args, "org", None):  # bad input fails before any AWS call
        check_org(args.org)
    if getattr(args, "function", None):
        check_function(args.function)
    api_url = ""
    if args.table:
        table = args.table
    else:
        outputs = stack_outputs(args.env)
        table = outputs.get(OUTPUT_TABLE, "")
        if not table:
            raise KeysError(f"stack {stack_name(args.env)} has no {OUTPUT_TABLE} output; pass --table")
        api_url = outputs.get(OUTPUT_API_URL, "")
    if args.command == "create":
        key = create_key(table, args.org, args.role, args.function, args.label)
        scope = f"function {args.function}" if args.function else "all functions"
        return [
            f"key id: {key.split('.')[0]}  (org {args.org}, role {args.role}, {scope})",
            f"key:    {key}",
            "Shown once; store it now. Use it as: " + cli_command(api_url or "API_URL", key, args.org),
        ]
    if args.command == "list":
        keys = sorted(KeyStore(table).list(args.org or None), key=lambda k: (k.org, k.created_at))
        lines = [f"{'KEY ID':<12} {'ORG':<24} {'ROLE':<9} {'FUNCTION':<15} {'CREATED':<20} LABEL"]
        lines += [
            f"{k.key_id:<12} {k.org:<24} {k.role:<9} {k.function or '-':<15} {_when(k.created_at):<20} {k.label}".rstrip()
            for k in keys
        ]
        return lines
    revoked = KeyStore(table).revoke(args.key_id)
    if revoked is None:
        raise KeysError(f"no key with id {args.key_id!r}")
    return [
        f"revoked {revoked.key_id} (org {revoked.org}, role {revoked.role}); the API may accept it for up to "
        f"{AUTHORIZER_CACHE_SECONDS // 60} more minutes (authorizer cache)"
    ]


def parse(argv: list[str] | None) -> argparse.Namespace:
    parser = operator_cli.OneLineParser(
        prog="functions-keys", description="Create, list and revoke organization API keys of the Functions API."
    )
    parser.add_argument("--env", default="dev", help="environment whose Functions stack to use (default dev)")
    parser.add_argument("--table", help="functions table name (skips the CloudFormation look-up)")
    commands = parser.add_subparsers(dest="command", required=True)
    create = commands.add_parser("create", help="create a key and print it once")
    create.add_argument("--org", required=True, help="organization the key belongs to")
    create.add_argument("--role", required=True, choices=ROLES, help="invoker, developer or admin")
    create.add_argument("--function", help="limit the key to this function id (fn-...)")
    create.add_argument("--label", default="", help="who or what the key is for")
    listing = commands.add_parser("list", help="list keys (never their secrets)")
    listing.add_argument("--org", help="only this organization's keys")
    revoke = commands.add_parser("revoke", help="delete a key")
    revoke.add_argument("key_id")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse(argv)
    return print_or_fail(lambda: run(args), (operator_cli.OperatorError,))


if __name__ == "__main__":
    sys.exit(main())
