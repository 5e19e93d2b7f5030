"""Synthesize the whole platform for one environment, the way app.py does, without bundling."""

from __future__ import annotations

import json
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from tempfile import mkdtemp

import aws_cdk as cdk
from aws_cdk import Validations
from aws_cdk.assertions import Template
from cdk_nag import AwsSolutionsChecks

from infrastructure.config import get_config
from infrastructure.platform import build_platform

SKIP_BUNDLING: dict[str, list[str]] = {"aws:cdk:bundling-stacks": []}


@dataclass
class Synthesized:
    outdir: Path
    stacks: dict[str, cdk.Stack]

    def template(self, stack_name: str) -> Template:
        return Template.from_stack(self.stacks[stack_name], skip_cyclical_dependencies_check=True)

    def template_json(self, stack_name: str) -> dict:
        return json.loads((self.outdir / f"{stack_name}.template.json").read_text())

    def template_files(self) -> list[Path]:
        return sorted(self.outdir.glob("*.template.json"))


@cache
def synthesize(env_name: str) -> Synthesized:
    """Cached per environment: the templates are immutable once synthesized."""
    outdir = Path(mkdtemp(prefix=f"cdk-{env_name}-"))
    app = cdk.App(context=SKIP_BUNDLING, outdir=str(outdir))
    # A concrete account and region, as `cdk deploy` has: findings and ARNs must not depend on it.
    stacks = build_platform(app, get_config(env_name), env=cdk.Environment(account="123456789012", region="eu-west-1"))
    Validations.of(app).add_plugins(AwsSolutionsChecks(app))
    app.synth()
    return Synthesized(outdir=outdir, stacks={s.stack_name: s for s in stacks})
