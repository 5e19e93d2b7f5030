"""Synthesize one environment's cloud assembly with bundling skipped (handlers run from source).

Runs in a child process (`python -m scripts.local.synth OUT --env dev [--app module:function]`)
so that the jsii Node process and every imported stack module die with it: the runtime process
stays small, and a test can edit a stack and synthesize again.

`--app module:function` names `function(app, env_name, context)` building the stacks (default: the
platform's `build_platform`); `--context key=json` entries reach the app's context too.
"""

from __future__ import annotations

import argparse
import importlib
import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

PROJECT_ROOT = Path(__file__).resolve().parents[2]
DEFAULT_APP = "scripts.local.synth:build_platform_app"


class SynthError(RuntimeError):
    pass


def build_platform_app(app: object, env_name: str, context: dict[str, object]) -> None:
    from infrastructure.config import get_config
    from infrastructure.platform import build_platform

    build_platform(app, get_config(env_name))  # type: ignore[arg-type]


# One system alone, for the tests and benchmarks that need not wait for the others to start.
FUNCTIONS_ONLY_APP = "scripts.local.synth:functions_only_app"
TUNNEL_ONLY_APP = "scripts.local.synth:tunnel_only_app"
COLLECTIONS_ONLY_APP = "scripts.local.synth:collections_only_app"


def functions_only_app(app: Any, env_name: str, context: dict[str, object]) -> None:
    from infrastructure.config import get_config
    from infrastructure.stacks.functions import FunctionsStack
    from lambdas.functions import names

    config = get_config(env_name)
    FunctionsStack(app, config.stack_name(names.STACK_BASE), config=config)


def tunnel_only_app(app: Any, env_name: str, context: dict[str, object]) -> None:
    from infrastructure.config import get_config
    from infrastructure.stacks.tunnel import TunnelStack
    from lambdas.tunnel import names

    config = get_config(env_name)
    TunnelStack(app, config.stack_name(names.STACK_BASE), config=config)


def collections_only_app(app: Any, env_name: str, context: dict[str, object]) -> None:
    """The two collections stacks (the compute stack needs the data stack's)."""
    from infrastructure.config import get_config
    from infrastructure.stacks.collections_compute import CollectionsComputeStack
    from infrastructure.stacks.collections_data import CollectionsDataStack

    config = get_config(env_name)
    data = CollectionsDataStack(app, config.stack_name("CollectionsDataStack"), config=config)
    CollectionsComputeStack(app, config.stack_name("CollectionsComputeStack"), config=config, data=data)


def synthesize(
    out_dir: Path, env_name: str, app_spec: str = DEFAULT_APP, context: dict[str, object] | None = None
) -> Path:
    """Synthesize into `out_dir` in a child process; returns the directory holding manifest.json."""
    command = [sys.executable, "-m", "scripts.local.synth", str(out_dir), "--env", env_name, "--app", app_spec]
    for key, value in (context or {}).items():
        command += ["--context", f"{key}={json.dumps(value)}"]
    env = {**os.environ, "JSII_SILENCE_WARNING_END_OF_LIFE_NODE_VERSION": "20"}
    result = subprocess.run(command, cwd=PROJECT_ROOT, env=env, capture_output=True, text=True, check=False)
    if result.returncode != 0:
        lines = [line for line in (result.stderr or result.stdout).strip().splitlines() if line.strip()]
        raise SynthError(f"synthesis failed: {lines[-1] if lines else 'no output'}")
    return out_dir


def _main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("out")
    parser.add_argument("--env", default="dev")
    parser.add_argument("--app", default=DEFAULT_APP)
    parser.add_argument("--context", action="append", default=[])
    args = parser.parse_args()
    sys.path.insert(0, str(PROJECT_ROOT))

    from aws_cdk import App

    context: dict[str, object] = {
        # Skip bundling for every stack: the runtime imports handlers from their source directory.
        "aws:cdk:bundling-stacks": [],
        # Keeps `aws:asset:path` on each function: where its handler's source lives.
        "aws:cdk:enable-asset-metadata": True,
        # ... pointing at the source directory itself rather than a staged copy (as `sam local` does).
        "aws:cdk:disable-asset-staging": True,
        "env": args.env,
    }
    for item in args.context:
        key, _, value = item.partition("=")
        context[key] = json.loads(value)
    module_name, _, function_name = args.app.partition(":")
    build = getattr(importlib.import_module(module_name), function_name)
    app = App(outdir=args.out, context=context)
    build(app, args.env, context)
    app.synth()


if __name__ == "__main__":
    _main()
