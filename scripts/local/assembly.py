"""The synthesized cloud assembly: stacks in deployment order, their resources, outputs and exports."""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any


@dataclass(frozen=True)
class Resource:
    stack: str
    logical_id: str
    type: str
    properties: dict[str, Any]
    metadata: dict[str, Any]
    condition: str | None = None

    @property
    def key(self) -> tuple[str, str]:
        return (self.stack, self.logical_id)

    def __str__(self) -> str:
        return f"{self.stack}/{self.logical_id}"


@dataclass
class StackTemplate:
    name: str
    template: dict[str, Any]
    dependencies: list[str] = field(default_factory=list)

    @property
    def resources(self) -> dict[str, Resource]:
        return {
            logical_id: Resource(
                stack=self.name,
                logical_id=logical_id,
                type=body["Type"],
                properties=body.get("Properties") or {},
                metadata=body.get("Metadata") or {},
                condition=body.get("Condition"),
            )
            for logical_id, body in (self.template.get("Resources") or {}).items()
        }


class Assembly:
    def __init__(self, stacks: list[StackTemplate], directory: Path | None = None) -> None:
        self.stacks = stacks
        self.directory = directory  # relative asset paths are relative to it
        self._by_name = {s.name: s for s in stacks}
        self._resources = {s.name: s.resources for s in stacks}

    @classmethod
    def load(cls, directory: Path) -> Assembly:
        """Read `manifest.json`; stacks come out in dependency order (a stack after those it imports from)."""
        manifest = json.loads((directory / "manifest.json").read_text())
        found: dict[str, StackTemplate] = {}
        for artifact_id, artifact in (manifest.get("artifacts") or {}).items():
            if artifact.get("type") != "aws:cloudformation:stack":
                continue
            props = artifact["properties"]
            name = props.get("stackName") or artifact.get("displayName") or artifact_id
            template = json.loads((directory / props["templateFile"]).read_text())
            deps = [d for d in artifact.get("dependencies") or [] if not d.endswith(".assets")]
            found[artifact_id] = StackTemplate(name=name, template=template, dependencies=deps)
        ordered: list[StackTemplate] = []
        done: set[str] = set()

        def visit(artifact_id: str) -> None:
            if artifact_id in done or artifact_id not in found:
                return
            done.add(artifact_id)
            for dep in found[artifact_id].dependencies:
                visit(dep)
            ordered.append(found[artifact_id])

        for artifact_id in found:  # manifest order is the app's construction order: stable
            visit(artifact_id)
        return cls(ordered, directory)

    def stack(self, name: str) -> StackTemplate:
        return self._by_name[name]

    def resource(self, stack: str, logical_id: str) -> Resource:
        try:
            return self._resources[stack][logical_id]
        except KeyError:
            raise KeyError(f"{stack}: no resource {logical_id!r}") from None

    def resources(self, *types: str) -> Iterator[Resource]:
        for stack in self.stacks:
            for resource in self._resources[stack.name].values():
                if not types or resource.type in types:
                    yield resource

    def outputs(self) -> Iterator[tuple[str, str, dict[str, Any]]]:
        for stack in self.stacks:
            for name, body in (stack.template.get("Outputs") or {}).items():
                yield stack.name, name, body
