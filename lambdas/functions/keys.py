"""Organization API keys: `{key_id}.{secret}`, scoped to one org, one role, optionally one function.

Only a SHA-256 of the secret is stored (the secret is 32 random bytes, so a fast hash suffices);
the public key id lets an operator list and revoke keys without ever seeing a secret again.
Keys are issued by an operator command (`scripts/functions_keys.py`), never by the API.
"""

from __future__ import annotations

import hashlib
import hmac
import re
import secrets
import string
import time
from dataclasses import dataclass
from typing import Any

from lambdas.common.aws import client
from lambdas.functions.audit import Entry
from lambdas.functions.names import GSI1, GSI1_PK, GSI1_SK

ROLES = ("admin", "developer", "invoker")
_ALPHABET = string.ascii_lowercase + string.digits
_KEY = re.compile(r"^(fk[a-z0-9]{10})\.([A-Za-z0-9_-]{20,128})$")
_KEYS_PARTITION = "KEYS"


@dataclass(frozen=True)
class ApiKey:
    key_id: str
    org: str
    role: str
    function: str | None
    label: str
    created_at: int

    @classmethod
    def from_item(cls, item: dict[str, Any]) -> ApiKey:
        return cls(
            key_id=str(item["key_id"]),
            org=str(item["org"]),
            role=str(item["role"]),
            function=str(item["function"]) if item.get("function") else None,
            label=str(item.get("label", "")),
            created_at=int(item.get("created_at", 0)),
        )


def hash_secret(secret: str) -> str:
    return hashlib.sha256(secret.encode()).hexdigest()


def new_key() -> tuple[str, str, str]:
    """(key_id, the key to show once, the secret's hash to store)."""
    key_id = "fk" + "".join(secrets.choice(_ALPHABET) for _ in range(10))
    secret = secrets.token_urlsafe(32)
    return key_id, f"{key_id}.{secret}", hash_secret(secret)


def parse_key(value: str) -> tuple[str, str] | None:
    """(key_id, secret) from a key, with or without a `Bearer ` prefix; None if it cannot be one."""
    value = value.strip()
    if value[:7].lower() == "bearer ":
        value = value[7:].strip()
    match = _KEY.match(value)
    return (match.group(1), match.group(2)) if match else None


def _key_pk(key_id: str) -> dict[str, Any]:
    return {"pk": {"S": f"KEY#{key_id}"}, "sk": {"S": "KEY"}}


def _plain(item: dict[str, Any]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for name, value in item.items():
        (kind, raw), *_ = value.items()
        out[name] = int(raw) if kind == "N" else raw
    return out


class KeyStore:
    """Keys live in the functions table under `KEY#{key_id}`; the GSI lists them by org."""

    def __init__(self, table: str, ddb: Any = None) -> None:
        self.table = table
        self._ddb = ddb

    @property
    def ddb(self) -> Any:
        return self._ddb or client("dynamodb")

    def create(
        self, org: str, role: str, function: str | None = None, label: str = "", actor: str = "operator"
    ) -> tuple[ApiKey, str]:
        """Store a new key (with its audit row) and return it with the key string, the only time that
        exists in clear."""
        if role not in ROLES:
            raise ValueError(f"role must be one of {', '.join(ROLES)}")
        key_id, key, secret_hash = new_key()
        now = int(time.time())
        item: dict[str, Any] = {
            **_key_pk(key_id),
            "key_id": {"S": key_id},
            "org": {"S": org},
            "role": {"S": role},
            "label": {"S": label},
            "secret_hash": {"S": secret_hash},
            "created_at": {"N": str(now)},
            GSI1_PK: {"S": _KEYS_PARTITION},
            GSI1_SK: {"S": f"{org}#{now:010d}#{key_id}"},
        }
        if function:
            item["function"] = {"S": function}
        entry = Entry(org, actor, "key.issue", key_id, {"role": role, "function": function, "label": label})
        self._transact(
            [{"Put": {"TableName": self.table, "Item": item, "ConditionExpression": "attribute_not_exists(pk)"}}],
            entry,
        )
        return ApiKey(key_id, org, role, function, label, now), key

    def _transact(self, operations: list[dict[str, Any]], entry: Entry) -> None:
        self.ddb.transact_write_items(TransactItems=[*operations, entry.put(self.table)])

    def verify(self, key: str) -> ApiKey | None:
        """The key's record when the key is valid, else None (unknown id, wrong secret, revoked)."""
        parsed = parse_key(key)
        if parsed is None:
            return None
        key_id, secret = parsed
        item = self.ddb.get_item(TableName=self.table, Key=_key_pk(key_id), ConsistentRead=True).get("Item")
        if not item or not hmac.compare_digest(hash_secret(secret), item["secret_hash"]["S"]):
            return None
        return ApiKey.from_item(_plain(item))

    def list(self, org: str | None = None) -> list[ApiKey]:
        condition = f"{GSI1_PK} = :p"
        values: dict[str, Any] = {":p": {"S": _KEYS_PARTITION}}
        if org:
            condition += f" AND begins_with({GSI1_SK}, :o)"
            values[":o"] = {"S": f"{org}#"}
        keys: list[ApiKey] = []
        kwargs: dict[str, Any] = {
            "TableName": self.table,
            "IndexName": GSI1,
            "KeyConditionExpression": condition,
            "ExpressionAttributeValues": values,
        }
        while True:
            page = self.ddb.query(**kwargs)
            keys += [ApiKey.from_item(_plain(item)) for item in page.get("Items", [])]
            if "LastEvaluatedKey" not in page:
                return keys
            kwargs["ExclusiveStartKey"] = page["LastEvaluatedKey"]

    def revoke(self, key_id: str, actor: str = "operator") -> ApiKey | None:
        """Delete the key (with its audit row); its record, or None if there was no such key."""
        item = self.ddb.get_item(TableName=self.table, Key=_key_pk(key_id), ConsistentRead=True).get("Item")
        if not item:
            return None
        key = ApiKey.from_item(_plain(item))
        operation = {
            "Delete": {
                "TableName": self.table,
                "Key": _key_pk(key_id),
                "ConditionExpression": "attribute_exists(pk)",
            }
        }
        try:
            self._transact([operation], Entry(key.org, actor, "key.revoke", key_id, {"role": key.role}))
        except self.ddb.exceptions.TransactionCanceledException:
            return None
        return key
