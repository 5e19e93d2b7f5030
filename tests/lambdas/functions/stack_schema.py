"""The Functions stack's own DynamoDB tables and test zips, for the handler and CLI tests.

Tables are created from the synthesized template (the schema the stack deploys), never from a
hand copy of it: a key or index changed in the stack changes what these tests run against.
"""

from __future__ import annotations

import io
import stat
import zipfile
from functools import cache
from typing import Any


@cache
def _tables() -> dict[str, dict[str, Any]]:
    from tests.infrastructure.synth import synthesize

    template = synthesize("dev").template_json("Functions-dev")
    found: dict[str, dict[str, Any]] = {}
    for resource in template["Resources"].values():
        if resource["Type"] != "AWS::DynamoDB::GlobalTable":
            continue
        props = resource["Properties"]
        kind = "main" if any(k["AttributeName"] == "sk" for k in props["KeySchema"]) else "idempotency"
        table: dict[str, Any] = {
            "KeySchema": props["KeySchema"],
            "AttributeDefinitions": props["AttributeDefinitions"],
            "BillingMode": "PAY_PER_REQUEST",
        }
        if props.get("GlobalSecondaryIndexes"):
            table["GlobalSecondaryIndexes"] = [
                {k: index[k] for k in ("IndexName", "KeySchema", "Projection")}
                for index in props["GlobalSecondaryIndexes"]
            ]
        found[kind] = table
    assert set(found) == {"main", "idempotency"}, f"unexpected tables in Functions-dev: {sorted(found)}"
    return found


def create_functions_table(ddb: Any, name: str) -> None:
    ddb.create_table(TableName=name, **_tables()["main"])


def create_idempotency_table(ddb: Any, name: str) -> None:
    ddb.create_table(TableName=name, **_tables()["idempotency"])


def zip_of(entries: dict[str, bytes], symlink: str | None = None) -> bytes:
    """A zip of `entries`, plus a symbolic link named `symlink` (pointing outside) if given."""
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
        for name, data in entries.items():
            archive.writestr(name, data)
        if symlink:
            info = zipfile.ZipInfo(symlink)
            info.external_attr = (stat.S_IFLNK | 0o777) << 16
            archive.writestr(info, "/etc/passwd")
    return buffer.getvalue()


def bomb(handler_source: bytes) -> bytes:
    """260 MB of zeros in about 250 KB (with a handler module, so only the size is wrong)."""
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
        archive.writestr("main.py", handler_source)
        with archive.open("zeros.bin", "w", force_zip64=True) as member:
            for _ in range(65):
                member.write(b"\0" * (4 * 1024 * 1024))
    return buffer.getvalue()
