"""Powertools' catch-all package initialisers, made lazy: a name is imported when it is first used.

`aws_lambda_powertools.event_handler/__init__.py` imports every resolver Powertools has (AppSync
with asyncio, Bedrock agents, VPC Lattice, ...) and `utilities.data_classes/__init__.py` every
event class (Kafka, SES, CodePipeline, ...), so `from ...event_handler import
APIGatewayHttpResolver` loads a few dozen modules no handler here uses: about 30 ms of every
request/response function's cold start here, more on Lambda, where the asset carries no bytecode
and each of them is compiled first (`make bench`, cold start to the first answer).

`install()` (called by `lambdas/__init__.py`, before any handler imports Powertools) puts in
their place a module with the same path, spec and names, whose names resolve on first use from the
submodule the real initialiser would have imported them from (read from its `from ... import`
lines). An initialiser with any other statement is left alone and runs as usual, so a Powertools
upgrade that changes one can cost time but never break an import.
"""

from __future__ import annotations

import ast
import importlib
import importlib.util
import sys
from pathlib import Path
from typing import Any

PACKAGES = ("aws_lambda_powertools.event_handler", "aws_lambda_powertools.utilities.data_classes")


def install(packages: tuple[str, ...] = PACKAGES) -> None:
    for package in packages:
        if package not in sys.modules:
            _install(package)


def _install(package: str) -> None:
    spec = importlib.util.find_spec(package)
    if spec is None or spec.origin is None or spec.submodule_search_locations is None:
        return
    exports = _exports(package, Path(spec.origin).read_text(encoding="utf-8"))
    if exports is None:
        return
    module = importlib.util.module_from_spec(spec)

    def __getattr__(name: str) -> Any:  # PEP 562: `from package import name` asks this too
        if name not in exports:
            raise AttributeError(f"module {package!r} has no attribute {name!r}")
        submodule, attribute = exports[name]
        value = getattr(importlib.import_module(submodule), attribute)
        setattr(module, name, value)
        return value

    module.__getattr__ = __getattr__  # type: ignore[method-assign]
    module.__all__ = list(exports)  # type: ignore[attr-defined]
    sys.modules[package] = module
    parent, _, child = package.rpartition(".")
    if parent:  # as the import system does: the package is also its parent's attribute
        setattr(sys.modules[parent], child, module)


def _exports(package: str, source: str) -> dict[str, tuple[str, str]] | None:
    """Each exported name's (submodule, attribute), if the initialiser only imports from its own
    submodules and lists `__all__`; None if it does anything else."""
    exports: dict[str, tuple[str, str]] = {}
    for node in ast.parse(source).body:
        if _is_future_all_or_docstring(node):
            continue
        if not isinstance(node, ast.ImportFrom) or not node.module:
            return None
        submodule = f"{package}.{node.module}" if node.level == 1 else node.module
        if node.level > 1 or not submodule.startswith(f"{package}."):
            return None
        exports.update({(a.asname or a.name): (submodule, a.name) for a in node.names})
    return exports


def _is_future_all_or_docstring(node: ast.stmt) -> bool:
    if isinstance(node, ast.ImportFrom):
        return node.module == "__future__"
    if isinstance(node, ast.Assign):
        return [getattr(t, "id", None) for t in node.targets] == ["__all__"]
    return isinstance(node, ast.Expr) and isinstance(node.value, ast.Constant)
