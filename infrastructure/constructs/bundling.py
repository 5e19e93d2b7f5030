"""Docker-free bundling of one function group into a Lambda asset.

The asset holds `lambdas/__init__.py`, `lambdas/common/`, the shared packages the group uses
(SHARED_PACKAGES: `lambdas/collections/` for the collections groups) and the group's own
subpackage, plus the pip dependencies of `lambdas/common/requirements.txt` and the group's `requirements.txt`, built for
manylinux2014_aarch64 / CPython 3.12 from wheels only. boto3 and botocore are removed: the Lambda
runtime ships them, and a bundled copy would only add size and cold-start time.

The asset hash is computed here from exactly those inputs, so editing one function never rebuilds
another, and an unchanged function is never rebuilt (CDK skips bundling when `asset.<hash>` exists).

Every asset has a size budget (ASSET_BUDGETS_MB, unzipped): bundling fails, naming the function,
when an asset crosses it. Native modules no function loads (PRUNED) are removed after pip, and with
them the vendored libraries only they needed (read from the ELF files' NEEDED entries). The
request/response groups (PRECOMPILED) also ship bytecode when a CPython 3.12 is at hand.
"""

from __future__ import annotations

import functools
import hashlib
import platform
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
BUNDLING_VERSION = "3"
# Provided by the Lambda runtime; never shipped.
RUNTIME_PROVIDED = ("boto3", "botocore", "s3transfer")
_IGNORED = shutil.ignore_patterns("__pycache__", "*.pyc", "tests", "*.md")

MB = 1_000_000
# Unzipped asset budgets per function group (all functions of a group share one asset). Issue #13:
# request/response functions at most 30 MB (they pay for the asset on every cold start), every
# asset at most MAX_ASSET_MB. What each holds is in the README's benchmark table.
MAX_ASSET_MB = 100
REQUEST_RESPONSE_MAX_MB = 30
# The groups whose functions answer requests (HTTP/WebSocket APIs, authorizers), held to
# REQUEST_RESPONSE_MAX_MB; a group may be budgeted lower than its class, never higher.
REQUEST_RESPONSE_GROUPS = frozenset({"qr_upload", "tunnel", "search", "functions"})
ASSET_BUDGETS_MB: dict[str, float] = {
    "qr_upload": 30,  # request/response (HTTP API, WebSocket); its event function renders HEIC
    "tunnel": 30,  # request/response
    "search": 30,  # request/response
    "functions": 30,  # request/response (functions API), and the deployer/recorder/batch/authorizer
    "image_processor": 100,  # asynchronous: Pillow, pi-heif, psycopg
    "analyzer": 100,  # asynchronous: anthropic, openai, langsmith SDKs, Pillow, psycopg
    # Asynchronous; search's packages. It embeds with lambdas/collections/voyage_http.py, not the
    # voyageai SDK, which cannot load without numpy and its OpenBLAS (113 MB at the smallest).
    "embedder": 30,
    "migrations": 100,  # deploy-time trigger: psycopg
}
# Native modules no function loads, as globs inside the asset. Pillow imports each only for its
# feature (AVIF files, drawing text with FreeType, Tk) and reports the feature missing without it;
# no function accepts AVIF (lambdas/common/image_types.py), draws text or has a display.
PRUNED = ("PIL/_avif.*.so", "PIL/_imagingft.*.so", "PIL/_imagingtk.*.so")


# Groups that ship bytecode when this machine has a CPython PYTHON_VERSION to compile it with (the
# GitHub workflows synthesize with it; `make setup` here may not): Lambda's /var/task is read-only,
# so without .pyc every cold start compiles each module it imports. The request/response groups,
# whose cold starts callers wait for; bytecode adds about a third to an asset's size.
PRECOMPILED = REQUEST_RESPONSE_GROUPS
LAMBDA_TASK_ROOT = "/var/task"

# Packages beside lambdas/common that only some groups use, and those groups: bundled into (and
# hashed for) those assets only, so no other function carries them or is rebuilt when they change.
SHARED_PACKAGES: dict[str, frozenset[str]] = {
    "collections": frozenset({"analyzer", "image_processor", "embedder", "search", "migrations"}),
}


class BundlingError(RuntimeError):
    pass


def source_packages(group: str) -> list[str]:
    """The subpackages of lambdas/ the group's asset holds, its own last."""
    return ["common", *(name for name, groups in SHARED_PACKAGES.items() if group in groups), group]


def _source_files(group: str, lambdas_dir: Path) -> list[Path]:
    files = [lambdas_dir / "__init__.py"]
    for directory in (lambdas_dir / name for name in source_packages(group)):
        files.extend(
            p
            for p in sorted(directory.rglob("*"))
            if p.is_file() and "__pycache__" not in p.parts and p.suffix != ".pyc"
        )
    return files


def requirement_files(group: str, lambdas_dir: Path = LAMBDAS_DIR) -> list[Path]:
    candidates = (lambdas_dir / "common" / "requirements.txt", lambdas_dir / group / "requirements.txt")
    return [p for p in candidates if p.is_file()]


def asset_hash(group: str, lambdas_dir: Path = LAMBDAS_DIR, *, bytecode: bool | None = None) -> str:
    """`bytecode`: whether the asset ships .pyc (default: ships_bytecode(group) on this machine)."""
    bytecode = ships_bytecode(group) if bytecode is None else bytecode
    digest = hashlib.sha256(f"{BUNDLING_VERSION}|{PLATFORMS}|{PYTHON_VERSION}|{group}|{bytecode}".encode())
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


def _pip_install(function_name: str, requirements: list[Path], target: Path, lambdas_dir: Path) -> None:
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


def install_requirements(function_name: str, group: str, target: Path, lambdas_dir: Path = LAMBDAS_DIR) -> None:
    requirements = requirement_files(group, lambdas_dir)
    if not requirements:
        return
    _pip_install(function_name, requirements, target, lambdas_dir)
    for name in RUNTIME_PROVIDED:
        for path in list(target.glob(name)) + list(target.glob(f"{name}-*.dist-info")):
            shutil.rmtree(path)


def _needed(path: Path) -> list[str]:
    """DT_NEEDED entries of a 64-bit little-endian ELF shared object (aarch64 wheels are), else []."""
    data = path.read_bytes()
    if data[:6] != b"\x7fELF\x02\x01":
        return []
    shoff, shentsize, shnum = (
        int.from_bytes(data[0x28:0x30], "little"),
        int.from_bytes(data[0x3A:0x3C], "little"),
        int.from_bytes(data[0x3C:0x3E], "little"),
    )
    sections = [data[shoff + i * shentsize : shoff + (i + 1) * shentsize] for i in range(shnum)]
    names: list[str] = []
    for section in sections:
        if int.from_bytes(section[4:8], "little") != 6:  # SHT_DYNAMIC
            continue
        offset, size = int.from_bytes(section[0x18:0x20], "little"), int.from_bytes(section[0x20:0x28], "little")
        strtab = sections[int.from_bytes(section[0x28:0x2C], "little")]
        strings = int.from_bytes(strtab[0x18:0x20], "little")
        for entry in range(offset, offset + size, 16):
            tag, value = (
                int.from_bytes(data[entry : entry + 8], "little"),
                int.from_bytes(data[entry + 8 : entry + 16], "little"),
            )
            if tag == 1:  # DT_NEEDED
                end = data.index(b"\0", strings + value)
                names.append(data[strings + value : end].decode())
    return names


def _needed_closure(target: Path, vendored: dict[str, Path]) -> set[str]:
    needed: set[str] = set()
    pending = [p for p in target.rglob("*.so*") if p.is_file() and p.parent.suffix != ".libs"]
    while pending:
        for name in _needed(pending.pop()):
            if name in vendored and name not in needed:
                needed.add(name)
                pending.append(vendored[name])
    return needed


def prune(target: Path) -> list[str]:
    """Remove PRUNED modules, and the vendored libraries (`*.libs/`) only they needed. Libraries
    nothing names in NEEDED (loaded with dlopen) are left alone. Returns what was removed."""
    vendored = {p.name: p for p in target.glob("*.libs/*") if p.is_file()}
    before = _needed_closure(target, vendored)
    removed = []
    for pattern in PRUNED:
        for path in target.glob(pattern):
            if path.is_dir():
                shutil.rmtree(path)
            else:
                path.unlink()
            removed.append(str(path.relative_to(target)))
    for name in sorted(before - _needed_closure(target, vendored)):
        vendored[name].unlink()
        removed.append(str(vendored[name].relative_to(target)))
    return removed


def directory_size(path: Path) -> int:
    return sum(p.stat().st_size for p in path.rglob("*") if p.is_file())


def check_budget(function_name: str, group: str, target: Path) -> float:
    """The asset's unzipped size in MB; BundlingError when it crosses the group's budget."""
    size = directory_size(target) / MB
    budget = ASSET_BUDGETS_MB.get(group, MAX_ASSET_MB)
    if size > budget:
        raise BundlingError(
            f"bundling {function_name}: asset is {size:.1f} MB unzipped, over its {budget:g} MB budget "
            f"(ASSET_BUDGETS_MB[{group!r}] in infrastructure/constructs/bundling.py)"
        )
    return size


def ships_bytecode(group: str) -> bool:
    return group in PRECOMPILED and bytecode_python() is not None


@functools.cache
def bytecode_python() -> str | None:
    """An interpreter whose bytecode Lambda's runtime loads (CPython PYTHON_VERSION): the one
    running the synth, or `python{PYTHON_VERSION}` on PATH; None if neither is."""
    running = f"{sys.version_info.major}.{sys.version_info.minor}"
    if platform.python_implementation() == "CPython" and running == PYTHON_VERSION:
        return sys.executable
    candidate = shutil.which(f"python{PYTHON_VERSION}")
    if candidate and _implementation_and_version(candidate) == ("CPython", PYTHON_VERSION):
        return candidate
    return None


def _implementation_and_version(python: str) -> tuple[str, str] | None:
    code = "import platform, sys; print(platform.python_implementation(), '%d.%d' % sys.version_info[:2])"
    try:
        result = subprocess.run([python, "-c", code], capture_output=True, text=True, timeout=60, check=False)
    except (OSError, subprocess.TimeoutExpired):
        return None
    words = result.stdout.split()
    return (words[0], words[1]) if result.returncode == 0 and len(words) == 2 else None


def compile_bytecode(target: Path, python: str) -> None:
    """Unchecked-hash .pyc beside every module (Lambda never compares them with a source mtime,
    which zipping does not keep exactly), naming /var/task paths in tracebacks as the sources
    would. A file that does not compile (some packages ship templates named .py) keeps its
    source only: the rest still loads without compiling."""
    result = subprocess.run(
        [python, "-m", "compileall", "-q", "-j", "0", "-s", str(target), "-p", LAMBDA_TASK_ROOT,
         "--invalidation-mode", "unchecked-hash", str(target)],
        capture_output=True, text=True, check=False,
    )  # fmt: skip
    if result.returncode != 0:
        failed = (result.stdout + result.stderr).strip().splitlines()[-1:]
        print(f"bundling: some modules in {target.name} were not precompiled: {failed}", file=sys.stderr)


def copy_sources(group: str, target: Path, lambdas_dir: Path = LAMBDAS_DIR) -> None:
    package_dir = target / "lambdas"
    package_dir.mkdir(parents=True, exist_ok=True)
    shutil.copy2(lambdas_dir / "__init__.py", package_dir / "__init__.py")
    for name in source_packages(group):
        shutil.copytree(lambdas_dir / name, package_dir / name, ignore=_IGNORED, dirs_exist_ok=True)


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
        prune(target)
        copy_sources(self._group, target, self._lambdas_dir)
        python = bytecode_python()
        if python is not None and ships_bytecode(self._group):
            compile_bytecode(target, python)
        check_budget(self._function_name, self._group, target)
        return True


def bundling_options(function_name: str, group: str, lambdas_dir: Path = LAMBDAS_DIR) -> BundlingOptions:
    return BundlingOptions(
        # Only used if local bundling declined, which it never does; CDK requires an image.
        image=DockerImage.from_registry("public.ecr.aws/sam/build-python3.12"),
        local=LocalPipBundling(function_name, group, lambdas_dir),
    )
