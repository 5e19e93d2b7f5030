from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from aws_cdk import RemovalPolicy

from infrastructure.config import ENVIRONMENTS, UnknownEnvironment, get_config

ROOT = Path(__file__).resolve().parents[2]


def test_default_environment_is_dev() -> None:
    assert get_config(None).name == "dev"


def test_environments_differ_where_production_needs_it() -> None:
    dev, prod = get_config("dev"), get_config("prod")
    assert dev.removal_policy == RemovalPolicy.DESTROY and not dev.deletion_protection
    assert prod.removal_policy == RemovalPolicy.RETAIN and prod.deletion_protection
    assert prod.parameter_prefix != dev.parameter_prefix


def test_unknown_environment_names_the_valid_ones() -> None:
    with pytest.raises(UnknownEnvironment, match="dev, prod"):
        get_config("nope")


def test_app_exits_with_one_line_for_unknown_environment(tmp_path: Path) -> None:
    env = {**os.environ, "CDK_CONTEXT_JSON": json.dumps({"env": "nope"}), "CDK_OUTDIR": str(tmp_path)}
    result = subprocess.run([sys.executable, "app.py"], cwd=ROOT, env=env, capture_output=True, text=True, timeout=120)
    assert result.returncode != 0
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert lines == ["error: unknown environment 'nope'; valid environments: dev, prod"]
    assert sorted(ENVIRONMENTS) == ["dev", "prod"]
