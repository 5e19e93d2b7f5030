"""Manage tunnel agent tokens.

    tunnel-tokens --env dev create [--label laptop-ana] [--expires-in 7d]
    tunnel-tokens --env dev list
    tunnel-tokens --env dev revoke TOKEN_ID

(`make setup` installs `tunnel-tokens` into .venv/bin; `python scripts/tunnel_tokens.py ARGS` is the
same command.)

The tables and the WebSocket URL are found from the `Tunnel-{env}` stack's outputs (CloudFormation;
the local runtime publishes its outputs to its own CloudFormation, so with the AWS_ENDPOINT_URL
`make local` prints no flag is needed there either), or given with `--table NAME` (and, for
revoke, `--connections-table NAME --websocket-url URL`). A
token is shown once, at creation; only a hash of its secret is stored. `--expires-in` (30m, 12h,
7d) makes the tunnel refuse the token after that time. Revoking deletes the token, releases the
subdomains it claimed and closes its open connections (through `@connections`; they are found by
the connections table's token index, no Scan), so its agents stop serving at once.
"""

from __future__ import annotations

import argparse
import re
import sys
import time
from datetime import UTC, datetime
from typing import Any

from lambdas.common.aws import client
from lambdas.tunnel import names
from lambdas.tunnel.store import ConnectionStore, TokenStore
from lambdas.tunnel.tokens import new_token
from scripts import operator_cli
from scripts.operator_cli import print_or_fail

_DURATION = re.compile(r"^(\d+)([smhd])$")
_UNIT_SECONDS = {"s": 1, "m": 60, "h": 3600, "d": 86400}


class TokensError(operator_cli.OperatorError):
    """A problem worth one line to the user."""


def stack_name(env: str) -> str:
    return names.stack_name(env)


def stack_outputs(env: str) -> dict[str, str]:
    return operator_cli.stack_outputs(stack_name(env))


def resolve_table(env: str) -> str:
    outputs = stack_outputs(env)
    if names.OUTPUT_TOKENS_TABLE in outputs:
        return outputs[names.OUTPUT_TOKENS_TABLE]
    raise TokensError(f"stack {stack_name(env)} has no {names.OUTPUT_TOKENS_TABLE} output; pass --table")


def parse_duration(text: str) -> int:
    """Seconds in `30m`, `12h`, `7d` (or `90s`)."""
    match = _DURATION.match(text.strip().lower())
    if not match or int(match.group(1)) <= 0:
        raise TokensError(f"--expires-in {text!r}: expected a number and a unit, e.g. 30m, 12h or 7d")
    return int(match.group(1)) * _UNIT_SECONDS[match.group(2)]


def create_token(table: str, label: str = "", ddb: Any = None, expires_in: int | None = None) -> str:
    """Create a token and return it (the only time it exists in clear). `ddb` lets a caller such
    as the local runtime's `make local` use its own DynamoDB client."""
    token_id, token, secret_hash = new_token()
    expires_at = int(time.time()) + expires_in if expires_in else None
    TokenStore(table, ddb).put(token_id, secret_hash, label, expires_at)
    return token


def management_url(websocket_url: str) -> str:
    """The `@connections` endpoint of a WebSocket stage: wss://HOST/STAGE -> https://HOST/STAGE."""
    if websocket_url.startswith("wss://"):
        return "https://" + websocket_url[len("wss://") :]
    if websocket_url.startswith("ws://"):
        return "http://" + websocket_url[len("ws://") :]
    return websocket_url


def close_connections(connections_table: str, websocket_url: str, token_id: str, ddb: Any = None) -> int:
    """Close every open connection of the token; how many there were."""
    store = ConnectionStore(connections_table, ddb)
    manager = client("apigatewaymanagementapi", endpoint_url=management_url(websocket_url))
    closed = 0
    for connection_id in store.for_token(token_id):
        try:
            manager.delete_connection(ConnectionId=connection_id)
            closed += 1
        except manager.exceptions.GoneException:
            pass
        store.delete(connection_id)  # $disconnect does it too; routing must not wait for it
    return closed


# The agent's console script as printed for copying: relative to the repository root, where the
# README runs commands, so it works without activating .venv (`make setup` installs it there).
AGENT_COMMAND = ".venv/bin/tunnel-agent"


def agent_command(ws_url: str, token: str, port: int = 3000) -> str:
    return f"{AGENT_COMMAND} --url {ws_url} --token {token} --port {port}"


def login_command(ws_url: str, token: str) -> str:
    return f"{AGENT_COMMAND} login --url {ws_url} --token {token}"


def _when(epoch: Any) -> str:
    return datetime.fromtimestamp(int(epoch), UTC).strftime("%Y-%m-%d %H:%M UTC") if epoch else "-"


def run(args: argparse.Namespace) -> list[str]:
    store = TokenStore(args.table or resolve_table(args.env))
    if args.command == "create":
        expires_in = parse_duration(args.expires_in) if args.expires_in else None
        token = create_token(store.table, args.label, expires_in=expires_in)
        expiry = [f"expires:  {_when(int(time.time()) + expires_in)}"] if expires_in else []
        ws_url = None if args.table else stack_outputs(args.env).get(names.OUTPUT_WEBSOCKET_URL)
        return [
            f"token id: {token.split('.')[0]}",
            f"token:    {token}",
            *expiry,
            "Shown once; store it now. Save it for the agent (a file only you can read):",
            f"    {login_command(ws_url or 'WSS_URL', token)}",
            f"then expose an app with: {AGENT_COMMAND} 3000",
        ]
    if args.command == "list":
        rows = sorted(store.list(), key=lambda t: t.get("createdAt", 0))
        lines = [f"{'TOKEN ID':<12} {'CREATED':<20} {'EXPIRES':<20} {'LABEL':<20} SUBDOMAINS"]
        for row in rows:
            subs = ",".join(row.get("subdomains", [])) or "-"
            created, expires = _when(row.get("createdAt")), _when(row.get("expiresAt"))
            lines.append(f"{row['sk']:<12} {created:<20} {expires:<20} {row.get('label', ''):<20} {subs}")
        return lines
    connections_table, websocket_url = args.connections_table, args.websocket_url
    if not (connections_table and websocket_url) and not args.table:
        outputs = stack_outputs(args.env)
        connections_table = connections_table or outputs.get(names.OUTPUT_CONNECTIONS_TABLE)
        websocket_url = websocket_url or outputs.get(names.OUTPUT_WEBSOCKET_URL)
    if not store.revoke(args.token_id):
        raise TokensError(f"no token with id {args.token_id!r}")
    if not (connections_table and websocket_url):
        return [
            f"revoked {args.token_id} (open connections not closed: pass --connections-table and "
            "--websocket-url; routing already refuses them)"
        ]
    closed = close_connections(connections_table, websocket_url, args.token_id)
    return [f"revoked {args.token_id}; closed {closed} open connection{'s' if closed != 1 else ''}"]


def parse(argv: list[str] | None) -> argparse.Namespace:
    parser = operator_cli.OneLineParser(
        prog="tunnel-tokens", description="Create, list and revoke tunnel agent tokens."
    )
    parser.add_argument("--env", default="dev", help="environment whose Tunnel stack to use (default dev)")
    parser.add_argument("--table", help="tokens table name (skips the CloudFormation look-up)")
    commands = parser.add_subparsers(dest="command", required=True)
    create = commands.add_parser("create", help="create a token and print it once")
    create.add_argument("--label", default="", help="who or what the token is for")
    create.add_argument("--expires-in", help="refuse the token after this long: 30m, 12h, 7d (default: never)")
    commands.add_parser("list", help="list token ids, labels, expiry and claimed subdomains")
    revoke = commands.add_parser("revoke", help="delete a token, release its subdomains, close its connections")
    revoke.add_argument("token_id")
    revoke.add_argument("--connections-table", help="connections table (default: the stack's output)")
    revoke.add_argument("--websocket-url", help="the tunnel's WebSocket URL (default: the stack's output)")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse(argv)
    return print_or_fail(lambda: run(args), (operator_cli.OperatorError,))


if __name__ == "__main__":
    sys.exit(main())
