"""Powertools' catch-all initialisers, lazy: handlers load only what they use, and every name the
packages export still resolves to the object the real initialiser would have given."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

ROOT = Path(__file__).resolve().parents[3]


def _fresh(code: str, *, path: Path | None = None) -> dict:
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(str(p) for p in (path, ROOT) if p)}
    env.update(AWS_DEFAULT_REGION="us-east-1", POWERTOOLS_SERVICE_NAME="test")
    out = subprocess.run(
        [sys.executable, "-c", textwrap.dedent(code)], cwd=ROOT, env=env, capture_output=True, text=True, check=False
    )
    assert out.returncode == 0, out.stderr[-3000:]
    return json.loads(out.stdout.strip().splitlines()[-1])


def test_http_handlers_load_neither_other_resolvers_nor_other_event_classes() -> None:
    result = _fresh(
        """
        import json, sys
        import lambdas.qr_upload.http_api, lambdas.functions.api
        print(json.dumps(sorted(m for m in sys.modules if m.startswith("aws_lambda_powertools.") or m == "asyncio")))
        """
    )
    assert "aws_lambda_powertools.event_handler.api_gateway" in result
    assert "aws_lambda_powertools.utilities.data_classes.api_gateway_proxy_event" in result
    for unused in (
        "asyncio",
        "aws_lambda_powertools.event_handler.appsync",
        "aws_lambda_powertools.event_handler.bedrock_agent",
        "aws_lambda_powertools.utilities.data_classes.kafka_event",
        "aws_lambda_powertools.utilities.data_classes.ses_event",
    ):
        assert unused not in result


def test_every_exported_name_resolves_to_the_real_object() -> None:
    result = _fresh(
        """
        import ast, importlib, json, sys
        import lambdas
        from lambdas.common import lazy_packages
        checked = {}
        for package in lazy_packages.PACKAGES:
            module = sys.modules[package]
            assert "__getattr__" in vars(module), package  # the stand-in, not the package as it ships
            source = open(module.__spec__.origin, encoding="utf-8").read()
            listed = next(n.value for n in ast.parse(source).body
                          if isinstance(n, ast.Assign) and getattr(n.targets[0], "id", "") == "__all__")
            names = [ast.literal_eval(e) for e in listed.elts]
            for name in names:
                value = getattr(module, name)
                assert getattr(value, "__module__", package).startswith(package), (name, value)
            checked[package] = len(names)
        from aws_lambda_powertools.event_handler import AppSyncResolver, content_types
        from aws_lambda_powertools.event_handler.appsync import AppSyncResolver as Real
        assert AppSyncResolver is Real and content_types.APPLICATION_JSON == "application/json"
        try:
            sys.modules[lazy_packages.PACKAGES[0]].NoSuchName
        except AttributeError as exc:
            checked["error"] = str(exc)
        print(json.dumps(checked))
        """
    )
    assert result["aws_lambda_powertools.event_handler"] >= 10
    assert result["aws_lambda_powertools.utilities.data_classes"] >= 30
    assert "has no attribute 'NoSuchName'" in result["error"]


def test_an_initialiser_that_does_more_than_import_runs_as_it_ships(tmp_path: Path) -> None:
    for name, init in {
        "plain": "from .part import Thing\n__all__ = ['Thing']\n",
        "busy": "from .part import Thing\nSTARTED = True\n",
    }.items():
        (tmp_path / name).mkdir()
        (tmp_path / name / "__init__.py").write_text(f'"""{name}"""\n{init}')
        (tmp_path / name / "part.py").write_text("class Thing:\n    pass\n")
    result = _fresh(
        """
        import json, sys
        from lambdas.common import lazy_packages
        lazy_packages.install(("plain", "busy"))
        import plain, busy
        loaded = {n: [n + ".part" in sys.modules, "STARTED" in vars(sys.modules[n])] for n in ("plain", "busy")}
        from plain import Thing
        print(json.dumps({**loaded, "thing": Thing.__module__}))
        """,
        path=tmp_path,
    )
    assert result["plain"] == [False, False]  # nothing imported until a name is used
    assert result["busy"] == [True, True]  # ran as it ships
    assert result["thing"] == "plain.part"
