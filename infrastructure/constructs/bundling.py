"""Docker-free bundling of one function group into a Lambda asset.

The asset holds `lambdas/__init__.py`, `lambdas/common/` and the group's own subpackage, plus the
pip dependencies of `lambdas/common/requirements.txt` and the group's `requirements.txt`, built for
manylinux2014_aarch64 / CPython 3.12 from wheels only. boto3 and botocore are removed: the Lambda
runtime ships them, and a bundled copy would only add size and cold-start time.

The asset hash is computed here from exactly those inputs, so editing one function never rebuilds
another, and an unchanged function is never rebuilt (CDK skips bundling when `asset.<hash>` exists).
"""

from __future__ import annotations

import hashlib
import re
import shutil
import subprocess
import sys
from pathlib import Path

import jsii
from aws_cdk import BundlingOptions, DockerImage, ILocalBundling

PROJECT_ROOT = Path(__file__).resolve().parents[2]
LAMBDAS_DIR = PROJECT_ROOT / "lambdas"

# Lambda's python3.12 runtime is Amazon Linux 2023 (glibc 2.34): wheels for either tag run there,
# and some packages (Pillow, pillow-heif, psycopg-binary) publish only manylinux_2_28 ones.
PLATFORMS = ("manylinux2014_aarch64", "manylinux_2_28_aarch64")
PYTHON_VERSION = "3.12"
# Bump when the bundling procedure itself changes, so every asset is rebuilt once.
BUNDLING_VERSION = "1"
# Provided by the Lambda runtime; never shipped.
RUNTIME_PROVIDED = ("boto3", "botocore", "s3transfer")
_IGNORED = shutil.ignore_patterns("__pycache__", "*.pyc", "tests", "*.md")


class BundlingError(RuntimeError):
    pass


def _source_files(group: str, lambdas_dir: Path) -> list[Path]:
    files = [lambdas_dir / "__init__.py"]
    for directory in (lambdas_dir / "common", lambdas_dir / group):
        files.extend(
            p
            for p in sorted(directory.rglob("*"))
            if p.is_file() and "__pycache__" not in p.parts and p.suffix != ".pyc"
        )
    return files


def requirement_files(group: str, lambdas_dir: Path = LAMBDAS_DIR) -> list[Path]:
    candidates = (lambdas_dir / "common" / "requirements.txt", lambdas_dir / group / "requirements.txt")
    return [p for p in candidates if p.is_file()]


def asset_hash(group: str, lambdas_dir: Path = LAMBDAS_DIR) -> str:
    digest = hashlib.sha256(f"{BUNDLING_VERSION}|{PLATFORMS}|{PYTHON_VERSION}|{group}".encode())
    for path in _source_files(group, lambdas_dir):
        digest.update(str(path.relative_to(lambdas_dir)).encode())
        digest.update(b"\0")
        digest.update(path.read_bytes())
    return digest.hexdigest()


def _missing_package(pip_output: str) -> str | None:
    match = re.search(r"No matching distribution found for ([^\s]+)", pip_output)
    if match:
        return match.group(1)
    match = re.search(r"Could not find a version that satisfies the requirement ([^\s]+)", pip_output)
    return match.group(1) if match else None


def install_requirements(function_name: str, group: str, target: Path, lambdas_dir: Path = LAMBDAS_DIR) -> None:
    requirements = requirement_files(group, lambdas_dir)
    if not requirements:
        return
    command = [
        sys.executable,
        "-m",
        "pip",
        "install",
        "--quiet",
        "--disable-pip-version-check",
        "--no-compile",
        *(arg for tag in PLATFORMS for arg in ("--platform", tag)),
        "--implementation",
        "cp",
        "--python-version",
        PYTHON_VERSION,
        "--only-binary=:all:",
        "--target",
        str(target),
    ]
    for requirement in requirements:
        command += ["-r", str(requirement)]
    result = subprocess.run(command, capture_output=True, text=True, check=False)
    if result.returncode != 0:
        output = result.stdout + result.stderr
        package = _missing_package(output)
        if package:
            raise BundlingError(
                f"bundling {function_name}: no aarch64 wheel ({' or '.join(PLATFORMS)}) for CPython {PYTHON_VERSION} "
                f"of package {package!r} (from {', '.join(str(r.relative_to(lambdas_dir.parent)) for r in requirements)})"
            )
        raise BundlingError(f"bundling {function_name}: pip failed: {output.strip().splitlines()[-1:]}")
    for name in RUNTIME_PROVIDED:
        for path in list(target.glob(name)) + list(target.glob(f"{name}-*.dist-info")):
            shutil.rmtree(path)


def copy_sources(group: str, target: Path, lambdas_dir: Path = LAMBDAS_DIR) -> None:
    package_dir = target / "lambdas"
    package_dir.mkdir(parents=True, exist_ok=True)
    shutil.copy2(lambdas_dir / "__init__.py", package_dir / "__init__.py")
    shutil.copytree(lambdas_dir / "common", package_dir / "common", ignore=_IGNORED, dirs_exist_ok=True)
    shutil.copytree(lambdas_dir / group, package_dir / group, ignore=_IGNORED, dirs_exist_ok=True)


@jsii.implements(ILocalBundling)
class LocalPipBundling:
    """CDK local bundling: returns True so Docker is never needed."""

    def __init__(self, function_name: str, group: str, lambdas_dir: Path) -> None:
        self._function_name = function_name
        self._group = group
        self._lambdas_dir = lambdas_dir

    def try_bundle(self, output_dir: str, options: object = None, **_kwargs: object) -> bool:
        target = Path(output_dir)
        install_requirements(self._function_name, self._group, target, self._lambdas_dir)
        copy_sources(self._group, target, self._lambdas_dir)
        return True


def bundling_options(function_name: str, group: str, lambdas_dir: Path = LAMBDAS_DIR) -> BundlingOptions:
    return BundlingOptions(
        # Only used if local bundling declined, which it never does; CDK requires an image.
        image=DockerImage.from_registry("public.ecr.aws/sam/build-python3.12"),
        local=LocalPipBundling(function_name, group, lambdas_dir),
    )
