#!/usr/bin/env python3
"""The CDK app: every stack of one environment (`-c env=dev|prod`, default dev), under cdk-nag."""

from __future__ import annotations

import os
import sys

# jsii's Node.js support banner would bury the one-line errors below; it is informational only.
os.environ.setdefault("JSII_SILENCE_WARNING_END_OF_LIFE_NODE_VERSION", "20")

from aws_cdk import App, Environment, Validations
from cdk_nag import AwsSolutionsChecks

from infrastructure.config import ConfigurationError, get_config
from infrastructure.platform import build_platform


def main() -> None:
    app = App()
    # Account and region come from the standard CDK environment (profile or CDK_DEFAULT_*);
    # synthesis itself needs no credentials.
    env = Environment(account=os.environ.get("CDK_DEFAULT_ACCOUNT"), region=os.environ.get("CDK_DEFAULT_REGION"))
    try:
        build_platform(app, get_config(app.node.try_get_context("env")), env=env)
    except ConfigurationError as exc:
        print(f"error: {exc}", file=sys.stderr)
        sys.exit(2)
    Validations.of(app).add_plugins(AwsSolutionsChecks(app))
    app.synth()


if __name__ == "__main__":
    main()
