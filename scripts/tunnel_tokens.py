"""Manage tunnel agent tokens.

    python scripts/tunnel_tokens.py --env dev create [--label laptop-ana]
    python scripts/tunnel_tokens.py --env dev list
    python scripts/tunnel_tokens.py --env dev revoke TOKEN_ID

The tokens table is found from the `Tunnel-{env}` stack's `TokensTableName` output (CloudFormation),
or given with `--table NAME`. A token is shown once, at creation; only a hash of its secret is
stored. Revoking deletes the token and releases the subdomains it claimed (connections already
open keep working until they close, at most 2 hours).
"""

from __future__ import annotations

import argparse
import sys
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

if __package__ in (None, ""):  # run as `python scripts/tunnel_tokens.py`: make `lambdas` importable
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from botocore.exceptions import ClientError

from lambdas.common.aws import client
from lambdas.tunnel.store import TokenStore
from lambdas.tunnel.tokens import new_token
from scripts.operator_cli import print_or_fail

OUTPUT_KEY = "TokensTableName"


class TokensError(Exception):
    """A problem worth one line to the user."""


def stack_name(env: str) -> str:
    return f"Tunnel-{env}"


def resolve_table(env: str) -> str:
    try:
        stacks = client("cloudformation").describe_stacks(StackName=stack_name(env))["Stacks"]
    except ClientError as exc:
        raise TokensError(f"stack {stack_name(env)} not found ({exc.response['Error']['Message']})") from None
    for output in stacks[0].get("Outputs", []):
        if output["OutputKey"] == OUTPUT_KEY:
            return str(output["OutputValue"])
    raise TokensError(f"stack {stack_name(env)} has no {OUTPUT_KEY} output; pass --table")


def create_token(table: str, label: str = "", ddb: Any = None) -> str:
    """Create a token and return it (the only time it exists in clear). `ddb` lets a caller such
    as the local runtime's `make local` use its own DynamoDB client."""
    token_id, token, secret_hash = new_token()
    TokenStore(table, ddb).put(token_id, secret_hash, label)
    return token


# The project's own interpreter, relative to the repository root where the README runs commands.
PROJECT_PYTHON = ".venv/bin/python"


def agent_command(ws_url: str, token: str, port: int = 3000) -> str:
    return f"{PROJECT_PYTHON} scripts/tunnel_agent.py --url {ws_url} --token {token} --port {port}"


def _when(epoch: Any) -> str:
    return datetime.fromtimestamp(int(epoch), UTC).strftime("%Y-%m-%d %H:%M UTC") if epoch else "-"


def run(args: argparse.Namespace) -> list[str]:
    store = TokenStore(args.table or resolve_table(args.env))
    if args.command == "create":
        token = create_token(store.table, args.label)
        return [
            f"token id: {token.split('.')[0]}",
            f"token:    {token}",
            f"Shown once; store it now. Use it as: {PROJECT_PYTHON} scripts/tunnel_agent.py --url WSS_URL "
            "--token TOKEN --port 3000",
        ]
    if args.command == "list":
        rows = sorted(store.list(), key=lambda t: t.get("createdAt", 0))
        lines = [f"{'TOKEN ID':<12} {'CREATED':<20} {'LABEL':<20} SUBDOMAINS"]
        for row in rows:
            subs = ",".join(row.get("subdomains", [])) or "-"
            lines.append(f"{row['sk']:<12} {_when(row.get('createdAt')):<20} {row.get('label', ''):<20} {subs}")
        return lines
    if not store.revoke(args.token_id):
        raise TokensError(f"no token with id {args.token_id!r}")
    return [f"revoked {args.token_id}"]


def parse(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description="Create, list and revoke tunnel agent tokens.")
    parser.add_argument("--env", default="dev", help="environment whose Tunnel stack to use (default dev)")
    parser.add_argument("--table", help="tokens table name (skips the CloudFormation look-up)")
    commands = parser.add_subparsers(dest="command", required=True)
    create = commands.add_parser("create", help="create a token and print it once")
    create.add_argument("--label", default="", help="who or what the token is for")
    commands.add_parser("list", help="list token ids, labels and claimed subdomains")
    revoke = commands.add_parser("revoke", help="delete a token and release its subdomains")
    revoke.add_argument("token_id")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse(argv)
    return print_or_fail(lambda: run(args), (TokensError,))


if __name__ == "__main__":
    sys.exit(main())
