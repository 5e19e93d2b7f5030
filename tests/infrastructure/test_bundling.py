"""Docker-free bundling, for real: pip builds an aarch64 asset with only what the function needs."""

from __future__ import annotations

import shutil
from pathlib import Path

import aws_cdk as cdk
import pytest

from infrastructure.config import get_config
from infrastructure.constructs.bundling import LAMBDAS_DIR, asset_hash
from infrastructure.constructs.python_function import PythonFunction

ELF_MACHINE_AARCH64 = 183


def _fixture_lambdas(root: Path, requirement: str) -> Path:
    """A lambdas/ tree with the real `common`, the function under test and a sibling function."""
    lambdas = root / "lambdas"
    lambdas.mkdir()
    shutil.copy2(LAMBDAS_DIR / "__init__.py", lambdas / "__init__.py")
    shutil.copytree(LAMBDAS_DIR / "common", lambdas / "common", ignore=shutil.ignore_patterns("__pycache__"))
    for group in ("fixture_fn", "other_fn"):
        (lambdas / group).mkdir()
        (lambdas / group / "__init__.py").write_text("")
        (lambdas / group / "handler.py").write_text("def handler(event, context):\n    return event\n")
    (lambdas / "fixture_fn" / "requirements.txt").write_text(requirement + "\n")
    return lambdas


def _synth(lambdas: Path, outdir: Path) -> Path:
    app = cdk.App(outdir=str(outdir))
    stack = cdk.Stack(app, "BundlingFixture")
    PythonFunction(
        stack,
        "Fixture",
        config=get_config("dev"),
        function_name="bundling-fixture-dev",
        group="fixture_fn",
        handler="lambdas.fixture_fn.handler.handler",
        description="bundling fixture",
        service="fixture",
        lambdas_dir=lambdas,
    )
    app.synth()
    return outdir / f"asset.{_staged_hash(outdir)}"


def _staged_hash(outdir: Path) -> str:
    (asset,) = [p for p in outdir.iterdir() if p.is_dir() and p.name.startswith("asset.")]
    return asset.name.removeprefix("asset.")


def _elf_machine(path: Path) -> int:
    header = path.read_bytes()[:20]
    assert header[:4] == b"\x7fELF", f"{path} is not an ELF file"
    return int.from_bytes(header[18:20], "little")


@pytest.mark.slow
def test_asset_has_aarch64_dependency_common_and_nothing_else(tmp_path: Path) -> None:
    lambdas = _fixture_lambdas(tmp_path, "markupsafe==3.0.3")
    asset = _synth(lambdas, tmp_path / "cdk.out")

    extensions = list((asset / "markupsafe").glob("*.so"))
    assert extensions, "markupsafe's compiled speedups are missing"
    assert all(_elf_machine(so) == ELF_MACHINE_AARCH64 for so in extensions)
    assert all("cpython-312" in so.name for so in extensions)

    assert (asset / "lambdas" / "__init__.py").is_file()
    assert (asset / "lambdas" / "common" / "http.py").is_file()
    assert (asset / "lambdas" / "fixture_fn" / "handler.py").is_file()
    assert not (asset / "lambdas" / "other_fn").exists()
    # Powertools' tracer pulls botocore in; the runtime has it, so the asset must not.
    assert (asset / "aws_lambda_powertools").is_dir()
    for provided in ("boto3", "botocore", "s3transfer"):
        assert not (asset / provided).exists(), f"{provided} was bundled"
        assert not list(asset.glob(f"{provided}-*.dist-info"))

    # Unchanged sources: the next synth reuses the asset instead of bundling again.
    marker = asset / "marker-from-first-synth"
    marker.write_text("kept")
    assert _synth(lambdas, tmp_path / "cdk.out") == asset
    assert marker.exists()

    # A change in a sibling function does not change this function's asset.
    before = asset_hash("fixture_fn", lambdas)
    (lambdas / "other_fn" / "handler.py").write_text("def handler(event, context):\n    return None\n")
    assert asset_hash("fixture_fn", lambdas) == before
    (lambdas / "fixture_fn" / "handler.py").write_text("def handler(event, context):\n    return None\n")
    assert asset_hash("fixture_fn", lambdas) != before


@pytest.mark.slow
def test_a_package_without_an_aarch64_wheel_fails_synthesis_naming_function_and_package(tmp_path: Path) -> None:
    lambdas = _fixture_lambdas(tmp_path, "no-such-package-for-bundling-test==1.0")
    with pytest.raises(Exception, match=r"bundling-fixture-dev.*no-such-package-for-bundling-test"):
        _synth(lambdas, tmp_path / "cdk.out")
