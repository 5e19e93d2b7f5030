"""scripts/put_parameters.py against moto SSM: SecureStrings under the env prefix, values never printed."""

from __future__ import annotations

import boto3
import pytest
from moto import mock_aws

from scripts import put_parameters


@pytest.fixture
def ssm(monkeypatch: pytest.MonkeyPatch):
    for name in ("ANTHROPIC_API_KEY", "VOYAGE_API_KEY", "OPENAI_API_KEY", "LANGSMITH_API_KEY"):
        monkeypatch.delenv(name, raising=False)
    with mock_aws():
        yield boto3.client("ssm")


def test_writes_secure_strings_from_env_and_prompt(ssm, monkeypatch, capsys) -> None:
    monkeypatch.setenv("ANTHROPIC_API_KEY", "sk-ant-secret-value")
    monkeypatch.setattr("sys.stdin.isatty", lambda: True)
    answers = {"VOYAGE_API_KEY": "pa-secret-value"}
    code = put_parameters.main(["--env", "dev"], prompt=lambda text: answers.get(text.split(" ")[0], ""))
    assert code == 0
    out = capsys.readouterr().out
    assert "secret-value" not in out and "ANTHROPIC_API_KEY, VOYAGE_API_KEY" in out
    param = ssm.get_parameter(Name="/platform/dev/collections/ANTHROPIC_API_KEY", WithDecryption=True)["Parameter"]
    assert (param["Type"], param["Value"]) == ("SecureString", "sk-ant-secret-value")
    assert (
        ssm.get_parameter(Name="/platform/dev/collections/VOYAGE_API_KEY", WithDecryption=True)["Parameter"]["Value"]
        == "pa-secret-value"
    )
    with pytest.raises(ssm.exceptions.ParameterNotFound):
        ssm.get_parameter(Name="/platform/dev/collections/OPENAI_API_KEY")


def test_check_lists_presence_only(ssm, monkeypatch, capsys) -> None:
    monkeypatch.setenv("VOYAGE_API_KEY", "pa-secret-value")
    put_parameters.main(["--env", "prod", "--no-prompt"])
    capsys.readouterr()
    assert put_parameters.main(["--env", "prod", "--check"]) == 1  # Anthropic key still missing
    out = capsys.readouterr().out
    assert "/platform/prod/collections/VOYAGE_API_KEY: set" in out
    assert "/platform/prod/collections/ANTHROPIC_API_KEY: missing" in out
    assert "secret-value" not in out


def test_unknown_environment(ssm, capsys) -> None:
    assert put_parameters.main(["--env", "staging", "--check"]) == 2
    assert "valid environments: dev, prod" in capsys.readouterr().err
