"""`GitHubOidc-{env}`: the roles the GitHub Actions workflows assume, without stored AWS keys.

- GitHub's OIDC provider (`token.actions.githubusercontent.com`, audience `sts.amazonaws.com`), or
  an existing one: IAM allows one provider per URL and account, so when dev and prod share an
  account the second stack imports the first's (context `github_oidc_provider_arn`).
- `github-deploy-{env}`: only jobs of the repository running in its GitHub environment `{env}`
  (token subject `repo:OWNER/NAME:environment:{env}`) may assume it. It may do one thing: assume
  the CDK bootstrap roles of this account and region that `cdk deploy` uses (deploy, file
  publishing, lookup). What a deploy may change is what the bootstrap's CloudFormation execution
  role allows, and only through CloudFormation.
- `github-diff-{env}`: only pull-request jobs of the repository (`repo:OWNER/NAME:pull_request`);
  it may assume the bootstrap lookup role alone (read-only), which is what `cdk diff --method
  template` needs to read the deployed templates.

Built only when the config (or context `github_repository`) names a repository.
"""

from __future__ import annotations

import re

from aws_cdk import Annotations, App, CfnOutput, DefaultStackSynthesizer, Duration, Environment, Fn, Stack
from aws_cdk import aws_iam as iam
from constructs import Construct

from infrastructure.config import GITHUB_REPOSITORY_CONTEXT, GITHUB_REPOSITORY_EXAMPLE, ConfigurationError, EnvConfig

GITHUB_OIDC_URL = "https://token.actions.githubusercontent.com"
GITHUB_OIDC_HOST = "token.actions.githubusercontent.com"
STS_AUDIENCE = "sts.amazonaws.com"
PROVIDER_ARN_CONTEXT = "github_oidc_provider_arn"
# The bootstrap roles `cdk deploy` assumes (no Docker assets here, so no image-publishing role).
DEPLOY_BOOTSTRAP_ROLES = ("deploy", "file-publishing", "lookup")
DIFF_BOOTSTRAP_ROLES = ("lookup",)
_REPOSITORY = re.compile(r"^[A-Za-z0-9](?:[A-Za-z0-9-]{0,38})/[A-Za-z0-9._-]{1,100}$")


class InvalidRepository(ConfigurationError):
    pass


def deploy_role_name(env_name: str) -> str:
    return f"github-deploy-{env_name}"


def diff_role_name(env_name: str) -> str:
    return f"github-diff-{env_name}"


class GitHubOidcStack(Stack):
    def __init__(
        self,
        scope: Construct,
        construct_id: str,
        *,
        config: EnvConfig,
        repository: str,
        provider_arn: str | None = None,
        **kwargs: object,
    ) -> None:
        super().__init__(scope, construct_id, **kwargs)  # type: ignore[arg-type]
        if not _REPOSITORY.match(repository):
            raise InvalidRepository(
                f"{GITHUB_REPOSITORY_CONTEXT} {repository!r}: expected OWNER/NAME of a GitHub repository"
            )
        if repository == GITHUB_REPOSITORY_EXAMPLE:
            Annotations.of(self).add_warning_v2(
                "platform:github-repository-example",
                f"{GITHUB_REPOSITORY_CONTEXT} is the example {GITHUB_REPOSITORY_EXAMPLE!r}: its roles would trust "
                f"whoever owns that name on GitHub. Set -c {GITHUB_REPOSITORY_CONTEXT}=OWNER/NAME (or cdk.json).",
            )
        self.repository = repository

        if provider_arn:
            self.provider: iam.IOidcProvider = iam.OidcProviderNative.from_oidc_provider_arn(
                self, "Provider", provider_arn
            )
        else:
            self.provider = iam.OidcProviderNative(self, "Provider", url=GITHUB_OIDC_URL, client_ids=[STS_AUDIENCE])

        env_name = config.name
        self.deploy_role = self._role(
            "DeployRole",
            deploy_role_name(env_name),
            subject=f"repo:{repository}:environment:{env_name}",
            bootstrap_roles=DEPLOY_BOOTSTRAP_ROLES,
            description=f"GitHub Actions deploys of {repository} (environment {env_name}): assumes the CDK bootstrap roles",
        )
        self.diff_role = self._role(
            "DiffRole",
            diff_role_name(env_name),
            subject=f"repo:{repository}:pull_request",
            bootstrap_roles=DIFF_BOOTSTRAP_ROLES,
            description=f"GitHub Actions pull requests of {repository}: cdk diff against {env_name} (read only)",
        )
        CfnOutput(self, "DeployRoleArn", value=self.deploy_role.role_arn)
        CfnOutput(self, "DiffRoleArn", value=self.diff_role.role_arn)

    def _role(
        self, construct_id: str, name: str, *, subject: str, bootstrap_roles: tuple[str, ...], description: str
    ) -> iam.Role:
        role = iam.Role(
            self,
            construct_id,
            role_name=name,
            description=description,
            max_session_duration=Duration.hours(1),
            assumed_by=iam.WebIdentityPrincipal(
                self.provider.oidc_provider_arn,
                conditions={
                    "StringEquals": {
                        f"{GITHUB_OIDC_HOST}:aud": STS_AUDIENCE,
                        f"{GITHUB_OIDC_HOST}:sub": subject,
                    }
                },
            ),
        )
        role.add_to_policy(
            iam.PolicyStatement(
                actions=["sts:AssumeRole"], resources=[self._bootstrap_role_arn(r) for r in bootstrap_roles]
            )
        )
        return role

    def _bootstrap_role_arn(self, kind: str) -> str:
        qualifier = (
            self.node.try_get_context("@aws-cdk/core:bootstrapQualifier") or DefaultStackSynthesizer.DEFAULT_QUALIFIER
        )
        return Fn.sub(
            f"arn:${{AWS::Partition}}:iam::${{AWS::AccountId}}:role/cdk-{qualifier}-{kind}-role-${{AWS::AccountId}}-${{AWS::Region}}"
        )


def github_oidc_stacks(app: App, config: EnvConfig, env: Environment | None = None) -> list[Stack]:
    """The GitHubOidc stack of this environment when a repository is named (config, else context)."""
    repository = config.github_repository or app.node.try_get_context(GITHUB_REPOSITORY_CONTEXT)
    if not repository:
        return []
    provider_arn = app.node.try_get_context(PROVIDER_ARN_CONTEXT) or None
    return [
        GitHubOidcStack(
            app,
            config.stack_name("GitHubOidc"),
            config=config,
            repository=str(repository),
            provider_arn=provider_arn,
            env=env,
        )
    ]
