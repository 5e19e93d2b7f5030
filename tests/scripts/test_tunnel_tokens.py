"""scripts/tunnel_tokens.py against moto: tokens are created, listed, verified and revoked."""

from __future__ import annotations

import json
from collections.abc import Iterator

import pytest
from moto import mock_aws

from lambdas.common import aws
from lambdas.tunnel.store import TokenStore
from lambdas.tunnel.tokens import parse_token, secret_matches
from scripts import tunnel_tokens
from tests.lambdas.tunnel.support import TOKENS, create_tokens_table


@pytest.fixture
def moto() -> Iterator[None]:
    with mock_aws():
        create_tokens_table()
        yield


def _stack_with_output(table: str) -> None:
    template = {
        "Resources": {"Placeholder": {"Type": "AWS::SQS::Queue"}},
        "Outputs": {"TokensTableName": {"Value": table}},
    }
    aws.client("cloudformation").create_stack(StackName="Tunnel-dev", TemplateBody=json.dumps(template))


def _create(capsys, *args: str) -> str:
    assert tunnel_tokens.main([*args, "create", "--label", "laptop-ana"]) == 0
    out = capsys.readouterr().out
    return next(line.split()[-1] for line in out.splitlines() if line.startswith("token:"))


@pytest.mark.usefixtures("moto")
def test_create_list_revoke_via_stack_output(capsys) -> None:
    _stack_with_output(TOKENS)
    token = _create(capsys, "--env", "dev")
    parsed = parse_token(token)
    assert parsed
    token_id, secret = parsed

    stored = TokenStore(TOKENS).get(token_id)
    assert stored and stored["label"] == "laptop-ana"
    assert secret not in json.dumps(stored) and secret_matches(secret, stored["secretHash"])

    TokenStore(TOKENS).claim("demo", token_id)
    assert tunnel_tokens.main(["--env", "dev", "list"]) == 0
    listing = capsys.readouterr().out
    assert token_id in listing and "laptop-ana" in listing and "demo" in listing
    assert secret not in listing

    assert tunnel_tokens.main(["--env", "dev", "revoke", token_id]) == 0
    assert f"revoked {token_id}" in capsys.readouterr().out
    assert TokenStore(TOKENS).get(token_id) is None
    # Its subdomain is free again for another token.
    TokenStore(TOKENS).put("otherother", "hash", "")
    TokenStore(TOKENS).claim("demo", "otherother")


@pytest.mark.usefixtures("moto")
def test_explicit_table_skips_cloudformation(capsys) -> None:
    token = _create(capsys, "--table", TOKENS)
    assert parse_token(token)


@pytest.mark.usefixtures("moto")
def test_create_prints_the_agent_commands_to_copy(capsys) -> None:
    assert tunnel_tokens.main(["--table", TOKENS, "create"]) == 0
    lines = capsys.readouterr().out.splitlines()
    token = next(line.split()[-1] for line in lines if line.startswith("token:"))
    # Without the stack's outputs the URL is a placeholder; the commands are the console script's.
    assert lines[-2:] == [
        f"    .venv/bin/tunnel-agent login --url WSS_URL --token {token}",
        "then expose an app with: .venv/bin/tunnel-agent 3000",
    ]


@pytest.mark.usefixtures("moto")
def test_revoking_unknown_token_fails_with_one_line(capsys) -> None:
    assert tunnel_tokens.main(["--table", TOKENS, "revoke", "nosuchtokn"]) == 1
    assert capsys.readouterr().err == "error: no token with id 'nosuchtokn'\n"


@pytest.mark.usefixtures("moto")
def test_missing_stack_fails_with_one_line(capsys) -> None:
    assert tunnel_tokens.main(["--env", "prod", "list"]) == 1
    err = capsys.readouterr().err
    assert err.startswith("error: stack Tunnel-prod not found") and err.count("\n") == 1


@pytest.mark.usefixtures("moto")
def test_create_token_with_a_given_client_gives_a_ready_agent_command() -> None:
    import boto3

    token = tunnel_tokens.create_token(TOKENS, "local", ddb=boto3.client("dynamodb"))
    parsed = parse_token(token)
    assert parsed
    stored = TokenStore(TOKENS).get(parsed[0])
    assert stored and secret_matches(parsed[1], stored["secretHash"])
    command = tunnel_tokens.agent_command("ws://127.0.0.1:8004/dev", token)
    assert command == f".venv/bin/tunnel-agent --url ws://127.0.0.1:8004/dev --token {token} --port 3000"
