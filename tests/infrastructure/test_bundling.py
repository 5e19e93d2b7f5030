"""Docker-free bundling, for real: pip builds an aarch64 asset with only what the function needs."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import aws_cdk as cdk
import pytest

from infrastructure.config import get_config
from infrastructure.constructs import bundling
from infrastructure.constructs.bundling import LAMBDAS_DIR, asset_hash
from infrastructure.constructs.python_function import PythonFunction

ELF_MACHINE_AARCH64 = 183
ROOT = LAMBDAS_DIR.parent


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
        defaults=get_config("dev").function_defaults,
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
    # The runtime has these; the asset must not (a dependency may pull botocore in).
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


def test_collections_code_is_in_the_collections_assets_only_and_rebuilds_only_them(tmp_path: Path) -> None:
    lambdas = tmp_path / "lambdas"
    lambdas.mkdir()
    shutil.copy2(LAMBDAS_DIR / "__init__.py", lambdas / "__init__.py")
    for name in ("common", "collections", "tunnel", "search"):
        shutil.copytree(LAMBDAS_DIR / name, lambdas / name, ignore=shutil.ignore_patterns("__pycache__"))
    for group in ("tunnel", "search"):
        bundling.copy_sources(group, tmp_path / group / "asset", lambdas)
    assert (tmp_path / "tunnel" / "asset" / "lambdas" / "common" / "http.py").is_file()
    assert not (tmp_path / "tunnel" / "asset" / "lambdas" / "collections").exists()
    assert (tmp_path / "search" / "asset" / "lambdas" / "collections" / "pg.py").is_file()

    before = {group: asset_hash(group, lambdas) for group in ("tunnel", "search")}
    with (lambdas / "collections" / "pg.py").open("a") as pg:
        pg.write("# edited\n")
    assert asset_hash("tunnel", lambdas) == before["tunnel"]
    assert asset_hash("search", lambdas) != before["search"]


@pytest.mark.slow
def test_a_package_without_an_aarch64_wheel_fails_synthesis_naming_function_and_package(tmp_path: Path) -> None:
    lambdas = _fixture_lambdas(tmp_path, "no-such-package-for-bundling-test==1.0")
    with pytest.raises(Exception, match=r"bundling-fixture-dev.*no-such-package-for-bundling-test"):
        _synth(lambdas, tmp_path / "cdk.out")


@pytest.mark.slow
def test_an_asset_over_its_budget_fails_synthesis_naming_function_and_budget(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    lambdas = _fixture_lambdas(tmp_path, "markupsafe==3.0.3")
    monkeypatch.setitem(bundling.ASSET_BUDGETS_MB, "fixture_fn", 1)  # Powertools alone is more
    with pytest.raises(Exception, match=r"bundling-fixture-dev: asset is [0-9.]+ MB unzipped, over its 1 MB budget"):
        _synth(lambdas, tmp_path / "cdk.out")


@pytest.mark.slow
def test_every_function_asset_fits_its_budget(tmp_path: Path) -> None:
    """Each group bundled once, as synthesis bundles it (pip, pruning, sources, budget check)."""
    shared = {"common", *bundling.SHARED_PACKAGES}
    groups = {p.name for p in LAMBDAS_DIR.iterdir() if (p / "__init__.py").is_file() and p.name not in shared}
    assert groups == set(bundling.ASSET_BUDGETS_MB), "every function group has its budget in ASSET_BUDGETS_MB"
    sizes = {}
    for group in sorted(groups):
        target = tmp_path / group
        bundling.LocalPipBundling(f"budget-{group}", group, LAMBDAS_DIR).try_bundle(str(target))
        sizes[group] = bundling.directory_size(target) / bundling.MB
        shutil.rmtree(target)
    print(sizes)  # pytest -s shows them
    assert all(sizes[g] <= bundling.ASSET_BUDGETS_MB[g] for g in groups)
    assert all(budget <= bundling.MAX_ASSET_MB for budget in bundling.ASSET_BUDGETS_MB.values())
    assert groups >= bundling.REQUEST_RESPONSE_GROUPS
    assert all(
        bundling.ASSET_BUDGETS_MB[g] <= bundling.REQUEST_RESPONSE_MAX_MB for g in bundling.REQUEST_RESPONSE_GROUPS
    )


def test_pillow_without_the_pruned_modules_still_reads_and_writes_what_the_functions_handle(tmp_path: Path) -> None:
    """The pruning, applied to this machine's Pillow: every accepted format still decodes (HEIC through
    pi-heif) and renders, and Pillow reports AVIF and FreeType as missing instead of failing."""
    import PIL

    shutil.copytree(Path(PIL.__file__).parent, tmp_path / "PIL")
    libs = Path(PIL.__file__).parent.parent / "pillow.libs"
    if libs.is_dir():
        shutil.copytree(libs, tmp_path / "pillow.libs")
    removed = bundling.prune(tmp_path)
    assert any("_avif" in r for r in removed) and any("_imagingft" in r for r in removed)
    code = """
import sys
sys.path.insert(0, "tests/lambdas/collections")
from collections_images import encode
from PIL import features
from lambdas.image_processor.imaging import render
assert not features.check("avif") and not features.check("freetype2")
for fmt in ("JPEG", "PNG", "WEBP", "GIF", "HEIF"):
    rendered = render(encode(fmt), 1_150_000)
    assert rendered.thumbnail[:2] == b"\\xff\\xd8" and rendered.width == 640, fmt
print("ok")
"""
    env = {"PATH": os.environ["PATH"], "PYTHONPATH": f"{tmp_path}{os.pathsep}{ROOT}", "PYTHONDONTWRITEBYTECODE": "1"}
    result = subprocess.run(
        [sys.executable, "-c", code], cwd=ROOT, env=env, capture_output=True, text=True, check=False
    )
    assert result.stdout.strip() == "ok", result.stderr


EMBED_PROBE = """
import base64, json, struct, sys, threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

sys.path[:0] = sys.argv[1:]
vector = [0.5, -0.25, 0.125, 1.0]
answer = json.dumps({"object": "list", "model": "voyage-3.5-lite", "usage": {"total_tokens": 3},
    "data": [{"object": "embedding", "index": 0,
              "embedding": base64.b64encode(struct.pack("<4f", *vector)).decode()}]}).encode()
seen = []

class Voyage(BaseHTTPRequestHandler):
    def log_message(self, *args): pass
    def do_POST(self):
        seen.append(json.loads(self.rfile.read(int(self.headers["content-length"]))))
        self.send_response(200)
        self.send_header("content-type", "application/json")
        self.send_header("content-length", str(len(answer)))
        self.end_headers()
        self.wfile.write(answer)

server = ThreadingHTTPServer(("127.0.0.1", 0), Voyage)
threading.Thread(target=server.serve_forever, daemon=True).start()
import os
os.environ["VOYAGE_BASE_URL"] = f"http://127.0.0.1:{server.server_address[1]}/v1"
import lambdas.embedder.handler
from lambdas.collections.voyage_http import VoyageHttpEmbedder
client = VoyageHttpEmbedder("pa-key", "voyage-3.5-lite", 4, base_url=os.environ["VOYAGE_BASE_URL"], timeout=5)
assert client.embed(["a red tart"], "document") == [vector]
assert seen[0]["input_type"] == "document" and seen[0]["input"] == ["a red tart"]
import importlib.util
present = [m for m in ("voyageai", "numpy", "PIL", "aiohttp", "pydantic") if importlib.util.find_spec(m)]
print("ok", present)
"""


@pytest.mark.slow
def test_the_embedders_requirements_embed_without_the_voyage_sdk(tmp_path: Path) -> None:
    """The embedder's install, built for this machine from the same files: the handler imports,
    and its embeddings call works against a local stand-in with none of the SDK's packages
    present (boto3 and its dependencies stand in for the Lambda runtime's)."""
    import boto3
    import botocore
    import dateutil
    import jmespath
    import s3transfer
    import six
    import urllib3

    packages = tmp_path / "packages"
    command = [sys.executable, "-m", "pip", "install", "--quiet", "--disable-pip-version-check", "--no-compile"]
    command += ["--only-binary=:all:", "--target", str(packages)]
    for requirements in bundling.requirement_files("embedder"):
        command += ["-r", str(requirements)]
    subprocess.run(command, check=True, capture_output=True)
    runtime = tmp_path / "runtime"
    runtime.mkdir()
    for module in (boto3, botocore, s3transfer, jmespath, dateutil, six, urllib3):
        source = Path(module.__file__ or "")
        source = source.parent if source.name == "__init__.py" else source
        (runtime / source.name).symlink_to(source)
    result = subprocess.run(
        [sys.executable, "-S", "-c", EMBED_PROBE, str(packages), str(runtime), str(ROOT)],
        cwd=tmp_path,
        env={"PATH": os.environ["PATH"], "AWS_DEFAULT_REGION": "us-east-1", "PYTHONDONTWRITEBYTECODE": "1"},
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.stdout.strip() == "ok []", result.stderr[-3000:]


def test_bytecode_is_unchecked_hash_pyc_naming_lambdas_task_root(tmp_path: Path) -> None:
    """compile_bytecode with this interpreter (bundling uses a CPython 3.12 when it has one): every
    module gets a .pyc that Lambda loads without comparing a source mtime, whose tracebacks name
    /var/task as the source's would, and which Python really uses instead of the source."""
    import importlib.util
    import marshal

    asset = tmp_path / "asset"
    (asset / "pkg").mkdir(parents=True)
    (asset / "pkg" / "__init__.py").write_text("")
    (asset / "pkg" / "mod.py").write_text("def where():\n    return __file__\n\nVALUE = 42\n")
    (asset / "pkg" / "template.py").write_text("def {{ name }}():\n")  # some packages ship such files
    bundling.compile_bytecode(asset, sys.executable)

    pyc = Path(importlib.util.cache_from_source(str(asset / "pkg" / "mod.py")))
    data = pyc.read_bytes()
    assert int.from_bytes(data[4:8], "little") == 0b01  # hash-based, source never checked
    assert marshal.loads(data[16:]).co_filename == "/var/task/pkg/mod.py"  # noqa: S302 (our own file)
    assert not Path(importlib.util.cache_from_source(str(asset / "pkg" / "template.py"))).exists()
    # The source changed after bundling: an unchecked-hash .pyc is still what runs.
    (asset / "pkg" / "mod.py").write_text("VALUE = 0\n")
    out = subprocess.run(
        [sys.executable, "-c", "import pkg.mod; print(pkg.mod.VALUE)"],
        cwd=asset, capture_output=True, text=True, check=True,
        env={"PATH": os.environ["PATH"], "PYTHONPATH": str(asset), "PYTHONDONTWRITEBYTECODE": "1"},
    )  # fmt: skip
    assert out.stdout.strip() == "42"


def test_whether_an_asset_ships_bytecode_is_part_of_its_hash() -> None:
    assert bundling.PRECOMPILED == bundling.REQUEST_RESPONSE_GROUPS
    assert asset_hash("functions", bytecode=True) != asset_hash("functions", bytecode=False)
    assert not bundling.ships_bytecode("analyzer")  # asynchronous: its cold starts wait for no one
    python = bundling.bytecode_python()
    assert python is None or bundling._implementation_and_version(python) == ("CPython", bundling.PYTHON_VERSION)
    assert bundling.ships_bytecode("functions") == (python is not None)
