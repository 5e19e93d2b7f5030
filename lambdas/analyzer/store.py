"""The analyzer's reads and writes of `analyses`."""

from __future__ import annotations

import json
from typing import Any

from lambdas.analyzer.contract import Analysis
from lambdas.collections.names import IMAGE_PROCESSED_FIELDS


def item_state(conn: Any, item_id: str) -> tuple[str, str | None] | None:
    """(user_id, image_sha256 of the current bytes), or None when the item is gone."""
    row = conn.execute("SELECT user_id, image_sha256 FROM items WHERE item_id = %s", (item_id,)).fetchone()
    return (str(row[0]), row[1]) if row else None


def set_current(conn: Any, item_id: str, image_sha256: str, version: int) -> bool:
    """Point the item at the analysis of its current bytes (its status back to `processed` if it
    was deferred). False when the bytes changed meanwhile (the processor published a newer event,
    which will do this) or the item is gone. Writes nothing when the item already points there,
    so a redelivered event changes nothing."""
    with conn.transaction():
        row = conn.execute(
            "SELECT status, image_sha256, analysis_version FROM items WHERE item_id = %s FOR UPDATE", (item_id,)
        ).fetchone()
        if row is None or row[0] == "failed" or row[1] not in (None, image_sha256):
            return False
        if (row[0], row[1], row[2]) != ("processed", image_sha256, version):
            conn.execute(
                "UPDATE items SET analysis_version = %s, image_sha256 = %s, status = 'processed', updated_at = now()"
                " WHERE item_id = %s",
                (version, image_sha256, item_id),
            )
    return True


_TODAY = "(now() AT TIME ZONE 'UTC')::date"


def charge(conn: Any, user_id: str, item_id: str, image_sha256: str, daily_budget: int) -> bool:
    """Charge one analysis of these bytes to the user's budget for today (UTC). True if charged
    now or already (a redelivery, a retry after a failed call); False when the budget is spent."""
    with conn.transaction():
        conn.execute("SELECT pg_advisory_xact_lock(hashtextextended(%s, 1))", (user_id,))
        if conn.execute(
            f"SELECT 1 FROM analysis_charges WHERE item_id = %s AND image_sha256 = %s AND day = {_TODAY}",  # noqa: S608
            (item_id, image_sha256),
        ).fetchone():
            return True
        [used] = conn.execute(
            f"SELECT count(*) FROM analysis_charges WHERE user_id = %s AND day = {_TODAY}",  # noqa: S608
            (user_id,),
        ).fetchone()
        if used >= daily_budget:
            return False
        conn.execute(
            f"INSERT INTO analysis_charges (item_id, image_sha256, day, user_id) VALUES (%s, %s, {_TODAY}, %s)",  # noqa: S608
            (item_id, image_sha256, user_id),
        )
    return True


def defer(conn: Any, item_id: str, image_sha256: str) -> None:
    """Mark the item `deferred` while its bytes are still these and nothing describes them."""
    conn.execute(
        "UPDATE items SET status = 'deferred', updated_at = now() WHERE item_id = %s AND status = 'processed'"
        " AND image_sha256 = %s AND analysis_version IS NULL",
        (item_id, image_sha256),
    )


def deferred_items(conn: Any, limit: int) -> list[dict[str, Any]]:
    """Deferred items, oldest first, as the processor described them in ImageProcessed."""
    rows = conn.execute(
        f"SELECT {', '.join(IMAGE_PROCESSED_FIELDS)} FROM items"  # noqa: S608 - column names from a constant
        " WHERE status = 'deferred' ORDER BY updated_at LIMIT %s",
        (limit,),
    ).fetchall()
    items = [dict(zip(IMAGE_PROCESSED_FIELDS, row, strict=True)) for row in rows]
    return [{**item, "item_id": str(item["item_id"])} for item in items]  # a uuid column


def existing_version(
    conn: Any, item_id: str, image_sha256: str, provider: str, model: str, prompt_version: str
) -> int | None:
    """The version already made from this exact image, prompt, provider and model, if any."""
    row = conn.execute(
        "SELECT version FROM analyses WHERE item_id = %s AND image_sha256 = %s AND prompt_version = %s"
        " AND provider = %s AND model = %s",
        (item_id, image_sha256, prompt_version, provider, model),
    ).fetchone()
    return row[0] if row else None


def reusable(
    conn: Any, user_id: str, image_sha256: str, provider: str, model: str, prompt_version: str
) -> tuple[str, int, bool] | None:
    """An analysis another item already has of the same bytes (same prompt, provider and model):
    (item_id, version, whether that item is the same user's). The user's own items come first."""
    row = conn.execute(
        "SELECT a.item_id, a.version, i.user_id = %(user)s FROM analyses a JOIN items i USING (item_id)"
        " WHERE a.image_sha256 = %(sha)s AND a.prompt_version = %(pv)s AND a.provider = %(provider)s"
        " AND a.model = %(model)s ORDER BY i.user_id = %(user)s DESC, a.created_at LIMIT 1",
        {"user": user_id, "sha": image_sha256, "pv": prompt_version, "provider": provider, "model": model},
    ).fetchone()
    return (str(row[0]), int(row[1]), bool(row[2])) if row else None


def copy_analysis(conn: Any, item_id: str, source_item_id: str, source_version: int) -> int:
    """Store another item's analysis of the same bytes as this item's next version. Only the
    model's output is copied (category, texts, details, provider, model, prompt, image hash): no
    reference to the source item, its user or its key; no tokens, since no model was called."""
    with conn.transaction():
        conn.execute("SELECT pg_advisory_xact_lock(hashtextextended(%s, 0))", (item_id,))
        row = conn.execute(
            """
            INSERT INTO analyses (item_id, version, category, subcategories, headline, summary, raw,
                                  provider, model, prompt_version, image_sha256, input_tokens, output_tokens)
            SELECT %(item_id)s, (SELECT coalesce(max(version), 0) + 1 FROM analyses WHERE item_id = %(item_id)s),
                   category, subcategories, headline, summary, raw, provider, model, prompt_version,
                   image_sha256, 0, 0
            FROM analyses WHERE item_id = %(source)s AND version = %(version)s
            ON CONFLICT (item_id, image_sha256, prompt_version, provider, model) DO NOTHING
            RETURNING version
            """,
            {"item_id": item_id, "source": source_item_id, "version": source_version},
        ).fetchone()
    if row:
        return int(row[0])
    src = conn.execute(
        "SELECT image_sha256, provider, model, prompt_version FROM analyses WHERE item_id = %s AND version = %s",
        (source_item_id, source_version),
    ).fetchone()
    version = existing_version(conn, item_id, src[0], src[1], src[2], src[3])
    assert version is not None
    return version


def category_of(conn: Any, item_id: str, version: int) -> str:
    row = conn.execute(
        "SELECT category FROM analyses WHERE item_id = %s AND version = %s", (item_id, version)
    ).fetchone()
    return str(row[0])


def insert_analysis(conn: Any, item_id: str, image_sha256: str, analysis: Analysis) -> int:
    """Store as the item's next version; under a racing duplicate delivery, the first one wins."""
    data = analysis.data
    with conn.transaction():
        # Serializes version numbering per item without locking the whole table.
        conn.execute("SELECT pg_advisory_xact_lock(hashtextextended(%s, 0))", (item_id,))
        row = conn.execute(
            """
            INSERT INTO analyses (item_id, version, category, subcategories, headline, summary, raw,
                                  provider, model, prompt_version, image_sha256, input_tokens, output_tokens)
            SELECT %(item_id)s, coalesce(max(version), 0) + 1, %(category)s, %(subcategories)s,
                   %(headline)s, %(summary)s, %(raw)s, %(provider)s, %(model)s, %(prompt_version)s,
                   %(sha)s, %(tin)s, %(tout)s
            FROM analyses WHERE item_id = %(item_id)s
            ON CONFLICT (item_id, image_sha256, prompt_version, provider, model) DO NOTHING
            RETURNING version
            """,
            {
                "item_id": item_id,
                "category": data["category"],
                "subcategories": data["subcategories"],
                "headline": data["headline"],
                "summary": data["summary"],
                "raw": json.dumps(data),
                "provider": analysis.provider,
                "model": analysis.model,
                "prompt_version": analysis.prompt_version,
                "sha": image_sha256,
                "tin": analysis.input_tokens,
                "tout": analysis.output_tokens,
            },
        ).fetchone()
    if row:
        return int(row[0])
    version = existing_version(conn, item_id, image_sha256, analysis.provider, analysis.model, analysis.prompt_version)
    assert version is not None
    return version
