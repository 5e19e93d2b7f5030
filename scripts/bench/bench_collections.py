"""Collections figures: image processing beside pyvips, vector search recall and latency, cold imports.

    python -m scripts.bench.bench_collections [--vectors 100000] [--queries 200] [--image-runs 9] [--compare]

Prints Markdown tables:
1. A 12-megapixel JPEG (4000x3000, photo-like gradients + noise, q90): our thumbnail + analysis
   copy (`lambdas.image_processor.imaging.render`) against pyvips' `thumbnail_buffer` to 800 px +
   JPEG q85 on the same bytes in the same run; median of --image-runs. Goal: <= 1.2x pyvips.
2. Cold import of each handler module in a fresh interpreter (median of 5) beside the floor
   (boto3 + Powertools), and whether the analyzer/embedder imported an SDK they did not use.
3. Vector search (scripts/bench/bench_vector_search.py): recall@10, p50/p99 at concurrency 1 and 8
   and the speed-up over an exact scan on --vectors synthetic 1024-d vectors, unfiltered and with
   a 10% category filter, and the index build time; --compare adds the alternatives weighed.
"""

from __future__ import annotations

import argparse
import io
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[2]
ENV = {
    "POWERTOOLS_SERVICE_NAME": "collections-bench",
    "POWERTOOLS_METRICS_NAMESPACE": "Bench",
    "POWERTOOLS_TRACE_DISABLED": "true",
    "POWERTOOLS_LOG_LEVEL": "ERROR",
    "AWS_DEFAULT_REGION": "eu-west-1",
}


def photo_jpeg(width: int = 4000, height: int = 3000) -> bytes:
    import numpy as np
    from PIL import Image

    rng = np.random.default_rng(1)
    x = np.linspace(0, 255, width, dtype=np.float32)[None, :]
    y = np.linspace(0, 255, height, dtype=np.float32)[:, None]
    rgb = np.stack([0.7 * x + 0.3 * y, 0.2 * x + 0.8 * y, np.full((height, width), 128, np.float32)], -1)
    rgb += rng.normal(0, 12, rgb.shape).astype(np.float32)
    out = io.BytesIO()
    Image.fromarray(np.clip(rgb, 0, 255).astype("uint8")).save(out, "JPEG", quality=90)
    return out.getvalue()


def median_seconds(fn: Any, runs: int) -> float:
    fn()  # warm-up (imports, allocator)
    times = []
    for _ in range(runs):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def paired_medians(a: Any, b: Any, runs: int) -> tuple[float, float]:
    """Alternate the two so that load from other processes on the machine hits both alike."""
    a(), b()
    times_a: list[float] = []
    times_b: list[float] = []
    for _ in range(runs):
        for fn, times in ((a, times_a), (b, times_b)):
            start = time.perf_counter()
            fn()
            times.append(time.perf_counter() - start)
    return statistics.median(times_a), statistics.median(times_b)


def bench_image(runs: int) -> list[str]:
    import pyvips

    from lambdas.image_processor.imaging import render

    data = photo_jpeg()

    def vips() -> None:
        pyvips.Image.thumbnail_buffer(data, 800).write_to_buffer(".jpg[Q=85]")

    # pyvips may use several threads; Lambda at 1 GB has less than one vCPU, so compare one core each.
    pyvips.concurrency_set(1)
    ours, theirs = paired_medians(lambda: render(data, 64_000_000), vips, runs)
    rendered = render(data, 64_000_000)
    aw, ah = rendered.analysis_size

    def vips_both() -> None:  # the same two outputs as ours, for equal work
        copy = pyvips.Image.thumbnail_buffer(data, aw, height=ah).copy_memory()
        copy.write_to_buffer(".jpg[Q=85]")
        copy.thumbnail_image(800).write_to_buffer(".jpg[Q=85]")

    _, both = paired_medians(lambda: None, vips_both, runs)
    return [
        "| 12-MP JPEG (4000x3000) | median ms | output |",
        "|---|---|---|",
        f"| Pillow: thumbnail + analysis copy (draft mode) | {ours * 1000:.0f} | "
        f"{rendered.thumbnail_size[0]}x{rendered.thumbnail_size[1]} + "
        f"{rendered.analysis_size[0]}x{rendered.analysis_size[1]} |",
        f"| pyvips {pyvips.version(0)}.{pyvips.version(1)}: thumbnail only | {theirs * 1000:.0f} | 800 px |",
        f"| ratio (goal <= 1.2) | {ours / theirs:.2f}x | |",
        f"| pyvips: the same two outputs, for equal work | {both * 1000:.0f} | {aw}x{ah} + 800 px |",
    ]


def cold_import(module: str, after: str = "", runs: int = 5) -> tuple[float, list[str]]:
    code = (
        "import sys, time, json; t = time.perf_counter(); import "
        + module
        + "; "
        + (after or "pass")
        + "; print(json.dumps([time.perf_counter() - t, sorted(m for m in ('anthropic', 'voyageai', 'PIL', "
        "'psycopg', 'numpy') if m in sys.modules)]))"
    )
    import json

    results = []
    for _ in range(runs):
        out = subprocess.run(
            [sys.executable, "-c", code],
            capture_output=True,
            text=True,
            check=True,
            cwd=ROOT,
            env={**os.environ, **ENV, "PYTHONDONTWRITEBYTECODE": "1"},
        )
        results.append(json.loads(out.stdout))
    return statistics.median(r[0] for r in results), results[-1][1]


def bench_imports() -> list[str]:
    floor, _ = cold_import(
        "boto3, aws_lambda_powertools.logging, aws_lambda_powertools.metrics, aws_lambda_powertools.tracing"
    )
    lines = [
        "| cold import (fresh interpreter) | median ms | heavy modules loaded |",
        "|---|---|---|",
        f"| floor: boto3 + Powertools | {floor * 1000:.0f} | |",
    ]
    for module in (
        "lambdas.image_processor.handler",
        "lambdas.analyzer.handler",
        "lambdas.embedder.handler",
        "lambdas.search.handler",
        "lambdas.migrations.handler",
    ):
        seconds, loaded = cold_import(module)
        lines.append(f"| {module} | {seconds * 1000:.0f} | {', '.join(loaded) or '-'} |")
    seconds, loaded = cold_import(
        "lambdas.analyzer.providers",
        "lambdas.analyzer.providers.LocalAnalyzer()",  # what analyzer() builds when no API key is set
    )
    lines.append(f"| analyzer with the local provider selected | {seconds * 1000:.0f} | {', '.join(loaded) or '-'} |")
    return lines


def main() -> None:
    parser = argparse.ArgumentParser(description="collections benchmarks")
    parser.add_argument("--vectors", type=int, default=100_000)
    parser.add_argument("--queries", type=int, default=200)
    parser.add_argument("--image-runs", type=int, default=9)
    parser.add_argument("--skip-search", action="store_true")
    parser.add_argument("--compare", action="store_true", help="search: also the alternatives weighed (slow)")
    args = parser.parse_args()
    for name, value in ENV.items():
        os.environ.setdefault(name, value)
    sections = [bench_image(args.image_runs), bench_imports()]
    if not args.skip_search:
        from scripts.bench import bench_vector_search

        sections.append(bench_vector_search.bench(args.vectors, args.queries, args.compare))
    print("\n\n".join("\n".join(s) for s in sections))


if __name__ == "__main__":
    main()
