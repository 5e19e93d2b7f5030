"""The security gates: cdk-nag (AwsSolutions) on the whole app and cfn-lint on every template."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import aws_cdk as cdk
import pytest
from aws_cdk import Validations
from aws_cdk import aws_iam as iam
from cdk_nag import AwsSolutionsChecks

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
    qr.http_function.function.add_to_role_policy(  # type: ignore[attr-defined]
        iam.PolicyStatement(actions=["s3:GetObject"], resources=["arn:aws:s3:::some-other-bucket/*"])
    )
    Validations.of(app).add_plugins(AwsSolutionsChecks(app))
    with pytest.raises(RuntimeError, match="ValidationFailed"):
        app.synth()
    report = (tmp_path / "validation-report.json").read_text()
    assert "AwsSolutions-IAM5[Resource::arn:aws:s3:::some-other-bucket/*]" in report
