"""scripts/functions_keys.py against moto: keys are created, verified, listed, filtered and revoked."""

from __future__ import annotations

import json
from collections.abc import Iterator

import boto3
import pytest
from moto import mock_aws

from lambdas.common import aws
from lambdas.functions import names
from lambdas.functions.keys import KeyStore, parse_key
from scripts import functions_keys
from tests.lambdas.functions.stack_schema import create_functions_table

TABLE = "functions-test"
API_URL = "https://abc123.execute-api.us-east-1.amazonaws.com"


def _create_table() -> None:
    create_functions_table(aws.client("dynamodb"), TABLE)


@pytest.fixture
def moto() -> Iterator[None]:
    with mock_aws():
        _create_table()
        yield


def _stack(outputs: dict[str, str], env: str = "dev") -> None:
    template = {
        "Resources": {"Placeholder": {"Type": "AWS::SQS::Queue"}},
        "Outputs": {name: {"Value": value} for name, value in outputs.items()},
    }
    aws.client("cloudformation").create_stack(StackName=f"Functions-{env}", TemplateBody=json.dumps(template))


def _create(capsys, *args: str) -> tuple[str, str]:
    """Run `create`; (the printed key, the whole output)."""
    assert functions_keys.main(list(args)) == 0
    out = capsys.readouterr().out
    key = next(line.split()[-1] for line in out.splitlines() if line.startswith("key:"))
    return key, out


@pytest.mark.usefixtures("moto")
def test_create_verify_list_revoke_via_stack_outputs(capsys) -> None:
    _stack({names.OUTPUT_TABLE: TABLE, names.OUTPUT_API_URL: API_URL})
    key, out = _create(capsys, "--env", "dev", "create", "--org", "acme", "--role", "developer", "--label", "ci")
    parsed = parse_key(key)
    assert parsed
    key_id, secret = parsed
    assert f"key id: {key_id}" in out
    # The hint is a ready command for this key, org and the stack's API URL.
    hint = out.splitlines()[-1]
    assert hint.startswith("Shown once")
    assert (
        f"FUNCTIONS_API_URL={API_URL} FUNCTIONS_API_KEY={key} FUNCTIONS_ORG=acme .venv/bin/platform-functions list"
        in hint
    )

    record = KeyStore(TABLE).verify(key)
    assert record and (record.key_id, record.org, record.role, record.function, record.label) == (
        key_id,
        "acme",
        "developer",
        None,
        "ci",
    )
    stored = aws.client("dynamodb").get_item(TableName=TABLE, Key={"pk": {"S": f"KEY#{key_id}"}, "sk": {"S": "KEY"}})
    assert secret not in json.dumps(stored["Item"])

    assert functions_keys.main(["--env", "dev", "list"]) == 0
    listing = capsys.readouterr().out
    assert key_id in listing and "acme" in listing and "developer" in listing and "ci" in listing
    assert secret not in listing

    assert functions_keys.main(["--env", "dev", "revoke", key_id]) == 0
    assert capsys.readouterr().out.startswith(f"revoked {key_id} (org acme, role developer)")
    assert KeyStore(TABLE).verify(key) is None
    assert functions_keys.main(["--env", "dev", "list"]) == 0
    assert key_id not in capsys.readouterr().out


@pytest.mark.usefixtures("moto")
def test_list_filtered_by_org(capsys) -> None:
    acme, _ = _create(capsys, "--table", TABLE, "create", "--org", "acme", "--role", "admin")
    acme_2, _ = _create(capsys, "--table", TABLE, "create", "--org", "acme-2", "--role", "invoker")
    globex, _ = _create(capsys, "--table", TABLE, "create", "--org", "globex", "--role", "invoker")
    ids = {name: key.split(".")[0] for name, key in (("acme", acme), ("acme-2", acme_2), ("globex", globex))}

    assert functions_keys.main(["--table", TABLE, "list", "--org", "acme"]) == 0
    rows = capsys.readouterr().out.splitlines()[1:]
    # `acme` must not match `acme-2` by prefix.
    assert [row.split()[0] for row in rows] == [ids["acme"]]

    assert functions_keys.main(["--table", TABLE, "list"]) == 0
    rows = capsys.readouterr().out.splitlines()[1:]
    assert sorted(row.split()[0] for row in rows) == sorted(ids.values())


@pytest.mark.usefixtures("moto")
def test_function_scoped_key(capsys) -> None:
    key, out = _create(
        capsys, "--table", TABLE, "create", "--org", "acme", "--role", "invoker", "--function", "fn-abcdefghij12"
    )
    assert "function fn-abcdefghij12" in out
    assert "FUNCTIONS_API_URL=API_URL" in out  # no stack looked up: a placeholder
    record = KeyStore(TABLE).verify(key)
    assert record and record.function == "fn-abcdefghij12"


@pytest.mark.usefixtures("moto")
@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["create", "--org", "Acme", "--role", "admin"], "error: invalid organization 'Acme'"),
        (["create", "--org", "acme-", "--role", "admin"], "error: invalid organization 'acme-'"),
        (
            ["create", "--org", "acme", "--role", "admin", "--function", "hello"],
            "error: --function takes a function id",
        ),
        (["list", "--org", "a_b"], "error: invalid organization 'a_b'"),
        (["revoke", "fknosuchkey"], "error: no key with id 'fknosuchkey'"),
    ],
)
def test_bad_input_fails_with_one_line(capsys, args: list[str], message: str) -> None:
    assert functions_keys.main(["--table", TABLE, *args]) == 1
    err = capsys.readouterr().err
    assert err.startswith(message) and err.count("\n") == 1
    assert KeyStore(TABLE).list() == []


@pytest.mark.usefixtures("moto")
def test_unknown_role_is_an_argparse_error(capsys) -> None:
    with pytest.raises(SystemExit) as exit_:
        functions_keys.main(["--table", TABLE, "create", "--org", "acme", "--role", "owner"])
    assert exit_.value.code == 2
    err = capsys.readouterr().err
    assert err.startswith("error: argument --role: invalid choice: 'owner'") and err.count("\n") == 1


@pytest.mark.usefixtures("moto")
def test_missing_stack_fails_with_one_line(capsys) -> None:
    assert functions_keys.main(["--env", "prod", "list"]) == 1
    err = capsys.readouterr().err
    assert err.startswith("error: stack Functions-prod not found") and err.count("\n") == 1


@pytest.mark.usefixtures("moto")
def test_stack_without_table_output_says_to_pass_table(capsys) -> None:
    _stack({names.OUTPUT_API_URL: API_URL}, env="stage")
    assert functions_keys.main(["--env", "stage", "create", "--org", "acme", "--role", "admin"]) == 1
    assert capsys.readouterr().err == "error: stack Functions-stage has no FunctionsTableName output; pass --table\n"
    assert KeyStore(TABLE).list() == []


@pytest.mark.usefixtures("moto")
def test_create_key_with_a_given_client_gives_a_ready_command() -> None:
    key = functions_keys.create_key(TABLE, "acme", "admin", label="local", ddb=boto3.client("dynamodb"))
    record = KeyStore(TABLE).verify(key)
    assert record and (record.org, record.role, record.label) == ("acme", "admin", "local")
    command = functions_keys.cli_command("http://127.0.0.1:8005", key, "acme")
    assert command == (
        f"FUNCTIONS_API_URL=http://127.0.0.1:8005 FUNCTIONS_API_KEY={key} FUNCTIONS_ORG=acme .venv/bin/platform-functions list"
    )
    with pytest.raises(functions_keys.KeysError, match="role must be one of admin, developer, invoker"):
        functions_keys.create_key(TABLE, "acme", "root")
