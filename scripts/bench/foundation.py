"""Foundation figures: per function, asset size and cold-import time of its handler module beside
the floor (a fresh interpreter importing boto3 and creating the clients the function uses), and
the wall time of a full synth of one environment, uncached and cached.

Imports run from the source tree with this machine's packages (the assets hold aarch64 wheels,
which an x86_64 bench machine cannot load); the handler's environment comes from the template.
"""

from __future__ import annotations

import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[2]
RUNS = 7
# IAM service prefix -> boto3 client the function creates for it (sqs is left out: the on-failure
# destination is written by the Lambda service with the role, not by the handler).
CLIENTS = {
    "dynamodb": "dynamodb",
    "s3": "s3",
    "execute-api": "apigatewaymanagementapi",
    "events": "events",
    "ssm": "ssm",
    "secretsmanager": "secretsmanager",
}
BASE_ENV = {
    "AWS_DEFAULT_REGION": "us-east-1",
    "AWS_REGION": "us-east-1",
    "AWS_ACCESS_KEY_ID": "bench",
    "AWS_SECRET_ACCESS_KEY": "bench",
    "PYTHONDONTWRITEBYTECODE": "1",
}


# A bench module reports each figure that has a goal with `report_goal`; `make bench` collects these
# lines out of every module's output into one "Goals" table at the top of the report.
GOAL_MARKER = "::goal::"


def report_goal(figure: str, goal: str, measured: str, met: bool) -> None:
    print(GOAL_MARKER + json.dumps({"figure": figure, "goal": goal, "measured": measured, "met": met}))


def percentile(values: list[float], q: float) -> float:
    """Nearest-rank percentile (q in 0..1) of a non-empty sample; the benches' one definition."""
    if not values:
        raise ValueError("percentile of an empty sample")
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


def synth(env_name: str, outdir: Path, bundle: bool) -> float:
    context: dict[str, object] = {"env": env_name, "aws:cdk:enable-asset-metadata": True}
    if not bundle:
        context["aws:cdk:bundling-stacks"] = []
    env = {**os.environ, "CDK_CONTEXT_JSON": json.dumps(context), "CDK_OUTDIR": str(outdir)}
    started = time.perf_counter()
    subprocess.run([sys.executable, "app.py"], cwd=ROOT, env=env, check=True, capture_output=True)
    return time.perf_counter() - started


def functions(outdir: Path) -> list[dict[str, Any]]:
    found = []
    for template_path in sorted(outdir.glob("*.template.json")):
        template = json.loads(template_path.read_text())
        resources = template.get("Resources", {})
        for resource in resources.values():
            props = resource.get("Properties", {})
            if resource["Type"] != "AWS::Lambda::Function" or not str(props.get("Handler", "")).startswith("lambdas."):
                continue
            asset_path = resource.get("Metadata", {}).get("aws:asset:path")
            role_id = props["Role"]["Fn::GetAtt"][0]
            services: set[str] = set()
            for other in resources.values():
                if other["Type"] == "AWS::IAM::Policy" and {"Ref": role_id} in other["Properties"]["Roles"]:
                    for statement in other["Properties"]["PolicyDocument"]["Statement"]:
                        actions = (
                            statement["Action"] if isinstance(statement["Action"], list) else [statement["Action"]]
                        )
                        services.update(a.split(":")[0] for a in actions)
            variables = props.get("Environment", {}).get("Variables", {})
            found.append(
                {
                    "name": props["FunctionName"],
                    "module": props["Handler"].rsplit(".", 1)[0],
                    "asset": outdir / asset_path if asset_path else None,
                    "clients": sorted(CLIENTS[s] for s in services if s in CLIENTS),
                    # Unresolved references become placeholders: handlers only read them at import.
                    "env": {k: v if isinstance(v, str) else f"bench-{k.lower()}" for k, v in variables.items()},
                }
            )
    return found


def directory_size(path: Path) -> int:
    return sum(p.stat().st_size for p in path.rglob("*") if p.is_file())


def median_import(code: str, env: dict[str, str]) -> float:
    samples = []
    for _ in range(RUNS):
        out = subprocess.run(
            [sys.executable, "-X", "frozen_modules=on", "-c", code],
            cwd=ROOT,
            env={"PATH": os.environ["PATH"], "PYTHONPATH": str(ROOT), **BASE_ENV, **env},
            check=True,
            capture_output=True,
            text=True,
        )
        samples.append(float(out.stdout.strip().splitlines()[-1]))
    return statistics.median(samples)


def timed(body: str) -> str:
    return f"import time\n_t = time.perf_counter()\n{body}\nprint(time.perf_counter() - _t)"


def _report_asset_goals(sizes: list[tuple[str, str, float]]) -> None:
    """#13's asset goals: request/response functions at most 30 MB, every asset at most 100 MB; the
    classes and budgets live in infrastructure/constructs/bundling.py."""
    from infrastructure.constructs import bundling

    sized = [(name, group, size) for name, group, size in sizes if size == size]  # NaN: no asset
    small = [row for row in sized if row[1] in bundling.REQUEST_RESPONSE_GROUPS]
    for figure, limit, candidates in (
        ("largest request/response asset (unzipped)", bundling.REQUEST_RESPONSE_MAX_MB, small),
        ("largest asset (unzipped)", bundling.MAX_ASSET_MB, sized),
    ):
        if candidates:
            name, _, size = max(candidates, key=lambda row: row[2])
            report_goal(figure, f"<= {limit} MB", f"{size:.1f} MB ({name})", size <= limit)


def main() -> None:
    work = Path(tempfile.mkdtemp(prefix="bench-synth-"))
    outdir = work / "cdk.out"
    uncached = synth("dev", outdir, bundle=True)
    cached = synth("dev", outdir, bundle=True)
    rows = []
    sizes: list[tuple[str, str, float]] = []  # (function, lambdas.<group>, MB)
    for fn in functions(outdir):
        clients = "".join(f"boto3.client({c!r})\n" for c in fn["clients"])
        floor = median_import(timed(f"import boto3\n{clients}"), fn["env"])
        handler = median_import(timed(f"import importlib\nimportlib.import_module({fn['module']!r})"), fn["env"])
        size = directory_size(fn["asset"]) / 1e6 if fn["asset"] and fn["asset"].is_dir() else float("nan")
        rows.append((fn["name"], size, handler, floor, ", ".join(fn["clients"]) or "-"))
        sizes.append((fn["name"], fn["module"].split(".")[1], size))
    shutil.rmtree(work, ignore_errors=True)

    _report_asset_goals(sizes)
    print(f"### Functions (cold import: median of {RUNS} fresh interpreters)\n")
    print("| function | asset (MB, unzipped) | handler import (ms) | floor: boto3 + clients (ms) | clients |")
    print("|---|---:|---:|---:|---|")
    for name, size, handler, floor, clients in rows:
        print(f"| {name} | {size:.1f} | {handler * 1000:.0f} | {floor * 1000:.0f} | {clients} |")
    print("\n### Synthesis of one environment (dev, every stack, with bundling)\n")
    print("| run | seconds |\n|---|---:|")
    print(f"| uncached (fresh cdk.out: every asset bundled) | {uncached:.1f} |")
    print(f"| cached (same cdk.out: nothing rebuilt) | {cached:.1f} |")


if __name__ == "__main__":
    main()
