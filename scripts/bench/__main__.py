"""`make bench`: run every benchmark module, print the tables and keep them in bench-results/latest.md."""

from __future__ import annotations

import importlib.util
import io
import os
import subprocess
import sys
from contextlib import redirect_stdout
from datetime import UTC, datetime
from pathlib import Path

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


def main() -> int:
    out = io.StringIO()
    with redirect_stdout(out):
        print(
            f"Measured {datetime.now(UTC):%Y-%m-%d %H:%M} UTC on {os.cpu_count()} cores, "
            f"Python {sys.version.split()[0]}.\n"
        )
    failures = 0
    for title, module in MODULES:
        if importlib.util.find_spec(module) is None:
            continue
        print(f"== {title} ({module})", file=sys.stderr, flush=True)
        result = subprocess.run([sys.executable, "-m", module], cwd=ROOT, capture_output=True, text=True)
        out.write(f"## {title}\n\n")
        if result.returncode == 0:
            out.write(result.stdout.strip() + "\n\n")
        else:
            failures += 1
            out.write(f"(failed: {result.stderr.strip().splitlines()[-1:] if result.stderr else 'no output'})\n\n")
            print(result.stderr, file=sys.stderr)
    report = out.getvalue()
    print(report)
    results = ROOT / "bench-results"
    results.mkdir(exist_ok=True)
    (results / "latest.md").write_text(report)
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
