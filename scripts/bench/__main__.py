"""`make bench`: run every benchmark module, print the tables and keep them in bench-results/latest.md."""

from __future__ import annotations

import importlib.util
import io
import json
import subprocess
import sys
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from scripts.bench.foundation import GOAL_MARKER

ROOT = Path(__file__).resolve().parents[2]
# Order of the README's sections; modules that do not exist (yet) are skipped.
MODULES = [
    ("Foundation", "scripts.bench.foundation"),
    ("Cold start to the first answer", "scripts.bench.cold_start"),
    ("QR upload handlers", "scripts.bench.bench_qr"),
    ("QR upload, local runtime", "scripts.bench.bench_local_qr"),
    ("HTTP tunnel", "scripts.bench.bench_tunnel"),
    ("Collections", "scripts.bench.bench_collections"),
    ("Functions, local runtime", "scripts.bench.bench_functions"),
]


def split_goals(output: str) -> tuple[str, list[dict[str, Any]]]:
    """A module's output without its goal lines, and those goals (see foundation.report_goal)."""
    goals, kept = [], []
    for line in output.splitlines():
        if line.startswith(GOAL_MARKER):
            goals.append(json.loads(line[len(GOAL_MARKER) :]))
        else:
            kept.append(line)
    return "\n".join(kept).strip(), goals


def goals_table(goals: list[tuple[str, dict[str, Any]]]) -> str:
    lines = ["| section | figure | goal | measured | met |", "|---|---|---|---|---|"]
    for title, goal in goals:
        met = "yes" if goal["met"] else "**no**"
        lines.append(f"| {title} | {goal['figure']} | {goal['goal']} | {goal['measured']} | {met} |")
    return "\n".join(lines)


def main() -> int:
    header = f"Measured {datetime.now(UTC):%Y-%m-%d %H:%M} UTC, Python {sys.version.split()[0]}."
    sections = io.StringIO()
    goals: list[tuple[str, dict[str, Any]]] = []
    failures = 0
    for title, module in MODULES:
        if importlib.util.find_spec(module) is None:
            continue
        print(f"== {title} ({module})", file=sys.stderr, flush=True)
        result = subprocess.run([sys.executable, "-m", module], cwd=ROOT, capture_output=True, text=True)
        sections.write(f"## {title}\n\n")
        if result.returncode == 0:
            text, found = split_goals(result.stdout)
            goals.extend((title, goal) for goal in found)
            sections.write(text + "\n\n")
        else:
            failures += 1
            last = result.stderr.strip().splitlines()[-1:] if result.stderr else "no output"
            sections.write(f"(failed: {last})\n\n")
            print(result.stderr, file=sys.stderr)
    report = f"{header}\n\n## Goals\n\n{goals_table(goals)}\n\n{sections.getvalue()}"
    print(report)
    results = ROOT / "bench-results"
    results.mkdir(exist_ok=True)
    (results / "latest.md").write_text(report)
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
