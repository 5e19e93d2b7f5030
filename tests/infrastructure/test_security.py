"""The security gates: cdk-nag (AwsSolutions) on the whole app and cfn-lint on every template."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import aws_cdk as cdk
import pytest
from aws_cdk import CfnElement, Validations
from aws_cdk import aws_iam as iam
from cdk_nag import AwsSolutionsChecks
from constructs import IConstruct

from infrastructure.config import get_config
from infrastructure.platform import build_platform
from tests.infrastructure.synth import SKIP_BUNDLING, synthesize

# W3005: CDK adds an explicit DependsOn on a function's role next to the GetAtt that already
# implies it; redundant, harmless, and not ours to change.
CFN_LINT_IGNORED = "W3005"


@pytest.mark.parametrize("env_name", ["dev", "prod"])
def test_every_stack_passes_cdk_nag(env_name: str) -> None:
    synthesized = synthesize(env_name)  # raises ValidationFailed on any unacknowledged finding
    assert synthesized.stacks, "no stacks were synthesized"


@pytest.mark.parametrize("env_name", ["dev", "prod"])
def test_cfn_lint_reports_nothing(env_name: str) -> None:
    files = [str(p) for p in synthesize(env_name).template_files()]
    assert files
    result = subprocess.run(
        [str(Path(sys.executable).with_name("cfn-lint")), "--ignore-checks", CFN_LINT_IGNORED, "--", *files],
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert result.returncode == 0, result.stdout + result.stderr


def test_an_unacknowledged_finding_fails_synthesis(tmp_path: Path) -> None:
    """The gate is real: one new wildcard grant in a stack stops the synth."""
    app = cdk.App(context=SKIP_BUNDLING, outdir=str(tmp_path))
    stacks = build_platform(app, get_config("dev"))
    qr = next(s for s in stacks if s.stack_name == "QrUpload-dev")
    qr.http_function.add_to_role_policy(  # type: ignore[attr-defined]
        iam.PolicyStatement(actions=["s3:GetObject"], resources=["arn:aws:s3:::some-other-bucket/*"])
    )
    Validations.of(app).add_plugins(AwsSolutionsChecks(app))
    with pytest.raises(RuntimeError, match="ValidationFailed"):
        app.synth()
    report = (tmp_path / "validation-report.json").read_text()
    assert "AwsSolutions-IAM5[Resource::arn:aws:s3:::some-other-bucket/*]" in report


WILDCARD_ACK = "AwsSolutions-IAM5[Resource::*]"


def _acknowledged_rules(construct: IConstruct) -> set[str]:
    rules: set[str] = set()
    for entry in construct.node.metadata:
        if entry.type == "aws:cdk:acknowledged-rules":
            rules.update(key.removeprefix("Annotation::") for key in entry.data)
    return rules


def _wildcard_statements(resource: dict) -> list[dict]:
    """Allow statements of an IAM policy, role (inline policies) or managed policy whose Resource is '*'."""
    props = resource.get("Properties", {})
    documents = [props["PolicyDocument"]] if "PolicyDocument" in props else []
    documents += [p["PolicyDocument"] for p in props.get("Policies", [])]
    found = []
    for document in documents:
        for statement in document.get("Statement", []):
            resources = statement.get("Resource", [])
            if statement.get("Effect") == "Allow" and "*" in (
                resources if isinstance(resources, list) else [resources]
            ):
                found.append(statement)
    return found


@pytest.mark.parametrize("env_name", ["dev", "prod"])
def test_every_wildcard_acknowledgement_matches_a_wildcard_grant(env_name: str) -> None:
    """An `IAM5[Resource::*]` acknowledgement with no '*' grant beneath it is stale: it would silently
    approve a wildcard added there later. (The bucket-notification handlers had two such.)"""
    synthesized = synthesize(env_name)
    checked = 0
    for stack_name, stack in synthesized.stacks.items():
        resources = synthesized.template_json(stack_name)["Resources"]
        for construct in stack.node.find_all():
            if WILDCARD_ACK not in _acknowledged_rules(construct):
                continue
            checked += 1
            beneath = [
                resources.get(stack.get_logical_id(c), {})
                for c in construct.node.find_all()
                if isinstance(c, CfnElement)
            ]
            assert any(_wildcard_statements(r) for r in beneath), (
                f"{construct.node.path} acknowledges {WILDCARD_ACK} but grants nothing on '*'"
            )
    assert checked, "no wildcard acknowledgement found: the check looked at nothing"


@pytest.mark.parametrize("env_name", ["dev", "prod"])
def test_bucket_notification_handlers_are_scoped_and_acknowledge_no_wildcard(env_name: str) -> None:
    synthesized = synthesize(env_name)
    handlers = [
        (stack_name, construct)
        for stack_name, stack in synthesized.stacks.items()
        for construct in stack.node.children
        if construct.node.id.startswith("BucketNotificationsHandler")
    ]
    assert {name for name, _ in handlers} == {f"QrUpload-{env_name}", f"CollectionsComputeStack-{env_name}"}
    for stack_name, handler in handlers:
        assert not any(rule.startswith("AwsSolutions-IAM5") for rule in _acknowledged_rules(handler))
        resources = synthesized.template_json(stack_name)["Resources"]
        policies = [
            r
            for r in resources.values()
            if r["Type"] == "AWS::IAM::Policy"
            and any("BucketNotificationsHandler" in role.get("Ref", "") for role in r["Properties"]["Roles"])
        ]
        assert policies, f"{stack_name}: no policy on the bucket-notification handler's role"
        for policy in policies:
            for statement in policy["Properties"]["PolicyDocument"]["Statement"]:
                assert statement["Action"] == "s3:PutBucketNotification"
                assert statement["Resource"] != "*"
                assert "Fn::GetAtt" in statement["Resource"], statement
