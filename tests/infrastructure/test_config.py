from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from aws_cdk import RemovalPolicy

from infrastructure.config import ENVIRONMENTS, InvalidCorsOrigin, UnknownEnvironment, cors_origins, get_config

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


def test_functions_limits_per_environment() -> None:
    dev, prod = get_config("dev").functions, get_config("prod").functions
    assert (dev.max_memory_mb, dev.max_timeout_seconds) == (1024, 300)
    assert (prod.max_memory_mb, prod.max_timeout_seconds) == (3008, 900)
    # New accounts cannot reserve concurrency: dev never asks, prod caps each user function.
    assert dev.user_reserved_concurrency is None and dev.deployer_reserved_concurrency is None
    assert prod.user_reserved_concurrency == 10
    for settings in (dev, prod):
        assert 128 <= settings.max_memory_mb <= 10240 and 1 <= settings.max_timeout_seconds <= 900  # Lambda's range
        assert settings.allowed_layers == ()
        assert 2 <= settings.deployer_max_concurrency <= 1000  # an SQS event source's MaximumConcurrency range
        if settings.deployer_reserved_concurrency is not None:
            assert settings.deployer_reserved_concurrency >= settings.deployer_max_concurrency
        # The deploy queue's visibility timeout (6x) must stay within SQS's 12 hours.
        assert 6 * settings.deployer_timeout_seconds <= 12 * 3600 and settings.deployer_timeout_seconds <= 900


def test_functions_invoking_settings_per_environment() -> None:
    dev, prod = get_config("dev").functions, get_config("prod").functions
    # Quotas per organization: dev small (a runaway loop stops early), prod the default plan.
    assert (dev.quota_max_functions, dev.quota_versions_kept) == (50, 10)
    assert (dev.quota_invocations_per_minute, dev.quota_monthly_gb_seconds) == (300, 50_000)
    assert (prod.quota_max_functions, prod.quota_versions_kept) == (500, 20)
    assert (prod.quota_invocations_per_minute, prod.quota_monthly_gb_seconds) == (6000, 1_000_000)
    assert (dev.invocation_retention_days, prod.invocation_retention_days) == (7, 30)
    assert (dev.user_async_retry_attempts, prod.user_async_retry_attempts) == (0, 2)
    assert prod.batch_max_concurrency > dev.batch_max_concurrency
    for settings in (dev, prod):
        # What PutFunctionEventInvokeConfig accepts.
        assert 0 <= settings.user_async_retry_attempts <= 2
        assert 60 <= settings.user_async_max_event_age_seconds <= 6 * 3600
        assert 2 <= settings.batch_max_concurrency <= 1000  # an SQS event source's MaximumConcurrency range
        # The results and batch queues' visibility timeouts (6x) stay within SQS's 12 hours.
        for timeout in (settings.recorder_timeout_seconds, settings.batch_timeout_seconds):
            assert 1 <= timeout <= 900 and 6 * timeout <= 12 * 3600
        assert settings.quota_versions_kept >= 2  # the live version and the one a rollback returns to
        assert min(settings.quota_max_functions, settings.quota_invocations_per_minute) >= 1
        assert settings.quota_monthly_gb_seconds > 0 and settings.invocation_retention_days >= 1


@pytest.mark.parametrize(
    ("context", "expected"),
    [
        (None, ()),
        ("https://app.acme.io", ("https://app.acme.io",)),
        (" https://a.acme.io , https://b.acme.io:8443 ", ("https://a.acme.io", "https://b.acme.io:8443")),
        ({"prod": ["https://app.acme.io"], "dev": ["https://dev.acme.io"]}, ("https://app.acme.io",)),
        ({"dev": ["https://dev.acme.io"]}, ()),
    ],
)
def test_prod_cors_origins_come_from_context(context: object, expected: tuple[str, ...]) -> None:
    assert cors_origins(get_config("prod"), context) == expected


def test_dev_keeps_its_loopback_origins_and_adds_the_context_ones() -> None:
    dev = get_config("dev")
    assert cors_origins(dev, "http://localhost:5173") == (*dev.cors_origins, "http://localhost:5173")


@pytest.mark.parametrize(
    ("origin", "reason"),
    [
        ("https://app.example.com", "placeholder"),
        ("https://example.org", "placeholder"),
        ("http://app.acme.io", "must use https"),
        ("https://app.acme.io/path", "is not an origin"),
        ("app.acme.io", "is not an origin"),
        ("*", "is not an origin"),
    ],
)
def test_cors_origins_refuse_placeholders_plain_http_and_non_origins(origin: str, reason: str) -> None:
    with pytest.raises(InvalidCorsOrigin, match=reason):
        cors_origins(get_config("prod"), origin)


def test_app_exits_with_one_line_for_a_placeholder_cors_origin(tmp_path: Path) -> None:
    context = {"env": "prod", "cors_origins": "https://app.example.com"}
    env = {**os.environ, "CDK_CONTEXT_JSON": json.dumps(context), "CDK_OUTDIR": str(tmp_path)}
    result = subprocess.run([sys.executable, "app.py"], cwd=ROOT, env=env, capture_output=True, text=True, timeout=300)
    assert result.returncode == 2
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert len(lines) == 1
    assert lines[0].startswith("error: cors_origins: 'https://app.example.com' is a placeholder")
