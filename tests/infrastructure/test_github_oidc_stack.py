"""GitHubOidc-{env}: who may assume the CI roles (repository, environment, pull requests) and what they may do."""

from __future__ import annotations

import json
from functools import cache
from pathlib import Path
from tempfile import mkdtemp

import aws_cdk as cdk
import pytest
from aws_cdk import Validations
from aws_cdk.assertions import Annotations, Match, Template
from cdk_nag import AwsSolutionsChecks

from infrastructure.config import GITHUB_REPOSITORY_CONTEXT, GITHUB_REPOSITORY_EXAMPLE, get_config
from infrastructure.platform import build_platform
from infrastructure.stacks.github_oidc import (
    PROVIDER_ARN_CONTEXT,
    GitHubOidcStack,
    InvalidRepository,
    github_oidc_stacks,
)
from tests.infrastructure.synth import SKIP_BUNDLING, synthesize

ROOT = Path(__file__).resolve().parents[2]
REPOSITORY = "octo-org/platform"
ACCOUNT, REGION = "123456789012", "eu-west-1"
BOOTSTRAP = "arn:${AWS::Partition}:iam::${AWS::AccountId}:role/cdk-hnb659fds-%s-role-${AWS::AccountId}-${AWS::Region}"


@cache
def oidc_stack(env_name: str, repository: str = REPOSITORY, provider_arn: str | None = None) -> GitHubOidcStack:
    """The stack alone, synthesized under cdk-nag (raises ValidationFailed on an unacknowledged finding)."""
    context: dict[str, object] = {**SKIP_BUNDLING, GITHUB_REPOSITORY_CONTEXT: repository}
    if provider_arn:
        context[PROVIDER_ARN_CONTEXT] = provider_arn
    app = cdk.App(context=context, outdir=mkdtemp(prefix="cdk-oidc-"))
    (stack,) = github_oidc_stacks(app, get_config(env_name), env=cdk.Environment(account=ACCOUNT, region=REGION))
    Validations.of(app).add_plugins(AwsSolutionsChecks(app))
    app.synth()
    assert isinstance(stack, GitHubOidcStack)
    return stack


def template(env_name: str, **kwargs: str) -> Template:
    return Template.from_stack(oidc_stack(env_name, **kwargs))


def role(template_: Template, name: str) -> tuple[str, dict]:
    roles = template_.find_resources("AWS::IAM::Role", {"Properties": {"RoleName": name}})
    assert len(roles) == 1, roles
    return next(iter(roles.items()))


def policy_statements(template_: Template, role_logical_id: str) -> list[dict]:
    policies = template_.find_resources("AWS::IAM::Policy")
    return [
        statement
        for policy in policies.values()
        if {"Ref": role_logical_id} in policy["Properties"]["Roles"]
        for statement in policy["Properties"]["PolicyDocument"]["Statement"]
    ]


def test_no_stack_without_a_repository() -> None:
    assert not [name for name in synthesize("dev").stacks if name.startswith("GitHubOidc")]


def test_the_platform_builds_the_stack_when_context_names_a_repository() -> None:
    app = cdk.App(context={**SKIP_BUNDLING, GITHUB_REPOSITORY_CONTEXT: REPOSITORY})
    names = [s.stack_name for s in build_platform(app, get_config("prod"))]
    assert "GitHubOidc-prod" in names


def test_cdk_json_carries_the_example_repository() -> None:
    context = json.loads((ROOT / "cdk.json").read_text())["context"]
    assert context[GITHUB_REPOSITORY_CONTEXT] == GITHUB_REPOSITORY_EXAMPLE


@pytest.mark.parametrize("env_name", ["dev", "prod"])
def test_passes_cdk_nag(env_name: str) -> None:
    assert oidc_stack(env_name).stack_name == f"GitHubOidc-{env_name}"


def test_provider_is_githubs_with_the_sts_audience() -> None:
    template("dev").has_resource_properties(
        "AWS::IAM::OIDCProvider",
        {"Url": "https://token.actions.githubusercontent.com", "ClientIdList": ["sts.amazonaws.com"]},
    )


@pytest.mark.parametrize("env_name", ["dev", "prod"])
def test_deploy_role_trusts_only_the_repositorys_environment(env_name: str) -> None:
    t = template(env_name)
    _, deploy = role(t, f"github-deploy-{env_name}")
    (statement,) = deploy["Properties"]["AssumeRolePolicyDocument"]["Statement"]
    provider_id = next(iter(t.find_resources("AWS::IAM::OIDCProvider")))
    assert statement["Action"] == "sts:AssumeRoleWithWebIdentity"
    assert statement["Principal"] == {"Federated": {"Ref": provider_id}}
    assert statement["Condition"] == {
        "StringEquals": {
            "token.actions.githubusercontent.com:aud": "sts.amazonaws.com",
            "token.actions.githubusercontent.com:sub": f"repo:{REPOSITORY}:environment:{env_name}",
        }
    }
    assert deploy["Properties"]["MaxSessionDuration"] == 3600


def test_diff_role_trusts_only_the_repositorys_pull_requests() -> None:
    _, diff = role(template("prod"), "github-diff-prod")
    (statement,) = diff["Properties"]["AssumeRolePolicyDocument"]["Statement"]
    assert statement["Condition"]["StringEquals"]["token.actions.githubusercontent.com:sub"] == (
        f"repo:{REPOSITORY}:pull_request"
    )
    assert "StringLike" not in statement["Condition"]


def test_deploy_role_may_only_assume_the_cdk_bootstrap_roles() -> None:
    t = template("prod")
    logical_id, deploy = role(t, "github-deploy-prod")
    assert "ManagedPolicyArns" not in deploy["Properties"] and "Policies" not in deploy["Properties"]
    (statement,) = policy_statements(t, logical_id)
    assert statement["Effect"] == "Allow" and statement["Action"] == "sts:AssumeRole"
    assert statement["Resource"] == [{"Fn::Sub": BOOTSTRAP % kind} for kind in ("deploy", "file-publishing", "lookup")]


def test_diff_role_may_only_assume_the_read_only_lookup_role() -> None:
    t = template("dev")
    logical_id, diff = role(t, "github-diff-dev")
    assert "ManagedPolicyArns" not in diff["Properties"]
    (statement,) = policy_statements(t, logical_id)
    assert statement["Action"] == "sts:AssumeRole"
    assert statement["Resource"] == {"Fn::Sub": BOOTSTRAP % "lookup"}


def test_an_existing_provider_is_reused() -> None:
    """IAM allows one provider per URL and account: dev and prod in one account share it."""
    arn = f"arn:aws:iam::{ACCOUNT}:oidc-provider/token.actions.githubusercontent.com"
    t = template("prod", provider_arn=arn)
    t.resource_count_is("AWS::IAM::OIDCProvider", 0)
    t.has_resource_properties(
        "AWS::IAM::Role",
        {
            "RoleName": "github-deploy-prod",
            "AssumeRolePolicyDocument": {"Statement": [Match.object_like({"Principal": {"Federated": arn}})]},
        },
    )


def test_outputs_name_the_role_arns_for_the_workflows() -> None:
    outputs = template("dev").find_outputs("*")
    assert {"DeployRoleArn", "DiffRoleArn"} <= set(outputs)


def test_the_example_repository_is_a_warning_a_real_one_is_not() -> None:
    example = oidc_stack("prod", repository=GITHUB_REPOSITORY_EXAMPLE)
    Annotations.from_stack(example).has_warning("*", Match.string_like_regexp("github_repository is the example"))
    Annotations.from_stack(oidc_stack("prod")).has_no_warning("*", Match.any_value())


@pytest.mark.parametrize("bad", ["octo-org", "octo-org/platform/extra", "*/platform", "octo-org/*", "octo org/x"])
def test_a_malformed_repository_is_refused(bad: str) -> None:
    app = cdk.App(context={GITHUB_REPOSITORY_CONTEXT: bad})
    with pytest.raises(InvalidRepository, match="expected OWNER/NAME"):
        github_oidc_stacks(app, get_config("dev"))
