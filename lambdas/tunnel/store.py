"""DynamoDB and S3 access for the tunnel: every read and state change the handlers make.

Tables (names from the environment, attribute names from the spec):

- connections (`connectionId`): `claimedSubdomain`, `publicUrl`, `tokenId`, `createdAt`, `ttl`,
  `inflight` (requests the forwarder is waiting on, for the per-tunnel cap), and
  `publicSubdomain` once the agent has sent Ready. GSI `subdomain-index` (`publicSubdomain`,
  `createdAt`) is therefore sparse: a connection is routable only when it can receive posts, and
  the newest one wins while an agent hands over to a fresh connection. GSI `token-index`
  (`tokenId`, keys only) finds a token's open connections when it is revoked.
- pending requests (`requestId`): `connectionId`, `apiGatewayRequestId`, `status`
  (pending|completed|failed|timeout), `responseData`, `createdAt`, `ttl`. GSI `connection-index`
  (`connectionId`, keys only) lets `$disconnect` fail a dead agent's requests without a Scan.
- tokens (`pk`, `sk`): `TOKEN`/{tokenId} holds `secretHash`, `label`, `createdAt`, `subdomains`,
  optionally `expiresAt` (epoch seconds; an expired token is refused at connect and when routing);
  `SUBDOMAIN#{name}`/`CLAIM` holds the owning `tokenId`. Listing tokens is one Query.
"""

from __future__ import annotations

import contextlib
import time
from dataclasses import dataclass
from typing import Any

from lambdas.common.aws import client
from lambdas.common.s3 import presign_client
from lambdas.tunnel import names
from lambdas.tunnel.protocol import CONNECTION_TTL_SECS, PENDING_REQUEST_TTL_SECS

TOKEN_PK = "TOKEN"  # noqa: S105 - a partition key, not a secret
CLAIM_SK = "CLAIM"

PENDING, COMPLETED, FAILED, TIMEOUT = "pending", "completed", "failed", "timeout"


def expired(token: dict[str, Any], now: float | None = None) -> bool:
    """Whether a token item (as `plain`) carries an expiry that has passed."""
    expires_at = token.get("expiresAt")
    return expires_at is not None and int(expires_at) <= (time.time() if now is None else now)


def _s(value: str) -> dict[str, str]:
    return {"S": value}


def _n(value: int) -> dict[str, str]:
    return {"N": str(value)}


def plain(item: dict[str, Any]) -> dict[str, Any]:
    """A DynamoDB item as plain Python values (only the types this module writes)."""
    out: dict[str, Any] = {}
    for key, value in item.items():
        if "S" in value:
            out[key] = value["S"]
        elif "N" in value:
            out[key] = int(value["N"])
        elif "SS" in value:
            out[key] = sorted(value["SS"])
        elif "BOOL" in value:
            out[key] = value["BOOL"]
    return out


class SubdomainTaken(Exception):
    pass


class TokenRevoked(Exception):
    pass


class ConnectionMissing(Exception):
    pass


class NameLimit(Exception):
    """The token already holds MAX_NAMES names."""


# Names one token may hold: bounds the token item (DynamoDB's 400 KB) and what one token squats.
MAX_NAMES = 20


@dataclass(frozen=True)
class TokenStore:
    table: str
    # Operator tools may pass their own client (e.g. the local runtime's moto); handlers do not.
    ddb: Any = None

    def _ddb(self) -> Any:
        return self.ddb or client("dynamodb")

    def put(self, token_id: str, secret_hash: str, label: str, expires_at: int | None = None) -> None:
        item = {
            "pk": _s(TOKEN_PK),
            "sk": _s(token_id),
            "secretHash": _s(secret_hash),
            "label": _s(label),
            "createdAt": _n(int(time.time())),
        }
        if expires_at is not None:
            item["expiresAt"] = _n(expires_at)
        self._ddb().put_item(
            TableName=self.table,
            Item=item,
            ConditionExpression="attribute_not_exists(pk)",
        )

    def get(self, token_id: str) -> dict[str, Any] | None:
        item = (
            self._ddb()
            .get_item(TableName=self.table, Key={"pk": _s(TOKEN_PK), "sk": _s(token_id)}, ConsistentRead=True)
            .get("Item")
        )
        return plain(item) if item else None

    def list(self) -> list[dict[str, Any]]:
        items: list[dict[str, Any]] = []
        kwargs: dict[str, Any] = {
            "TableName": self.table,
            "KeyConditionExpression": "pk = :pk",
            "ExpressionAttributeValues": {":pk": _s(TOKEN_PK)},
            "ProjectionExpression": "sk, label, createdAt, subdomains, expiresAt",
        }
        while True:
            page = self._ddb().query(**kwargs)
            items.extend(plain(i) for i in page.get("Items", []))
            if "LastEvaluatedKey" not in page:
                return items
            kwargs["ExclusiveStartKey"] = page["LastEvaluatedKey"]

    def revoke(self, token_id: str) -> bool:
        """Delete the token and release its subdomains; False if there was no such token."""
        ddb = self._ddb()
        try:
            old = ddb.delete_item(
                TableName=self.table,
                Key={"pk": _s(TOKEN_PK), "sk": _s(token_id)},
                ConditionExpression="attribute_exists(pk)",
                ReturnValues="ALL_OLD",
            )["Attributes"]
        except ddb.exceptions.ConditionalCheckFailedException:
            return False
        for name in plain(old).get("subdomains", []):
            # A claim already released, or taken over after a revoke, is left alone.
            with contextlib.suppress(ddb.exceptions.ConditionalCheckFailedException):
                ddb.delete_item(
                    TableName=self.table,
                    Key={"pk": _s(f"SUBDOMAIN#{name}"), "sk": _s(CLAIM_SK)},
                    ConditionExpression="tokenId = :t",
                    ExpressionAttributeValues={":t": _s(token_id)},
                )
        return True

    def owner(self, subdomain: str) -> str | None:
        """The id of the token that owns `subdomain`, None if no live token claims it."""
        item = (
            self._ddb()
            .get_item(
                TableName=self.table,
                Key={"pk": _s(f"SUBDOMAIN#{subdomain}"), "sk": _s(CLAIM_SK)},
                ConsistentRead=True,
            )
            .get("Item")
        )
        return item["tokenId"]["S"] if item else None

    def claim(self, subdomain: str, token_id: str, *, random: bool = False) -> None:
        """Claim `subdomain` for the token: the first token wins and keeps it across connections.

        One transaction, so a token revoked meanwhile cannot end up owning a name. A token holds at
        most MAX_NAMES names (NameLimit); `random` records the name as the token's random one,
        reused by every later connect that asks for no name."""
        ddb = self._ddb()
        token_update = "ADD subdomains :s SET randomSubdomain = :s1" if random else "ADD subdomains :s"
        values: dict[str, Any] = {":s": {"SS": [subdomain]}, ":max": _n(MAX_NAMES), ":name": _s(subdomain)}
        if random:
            values[":s1"] = _s(subdomain)
        try:
            ddb.transact_write_items(
                TransactItems=[
                    {
                        "Put": {
                            "TableName": self.table,
                            "Item": {
                                "pk": _s(f"SUBDOMAIN#{subdomain}"),
                                "sk": _s(CLAIM_SK),
                                "tokenId": _s(token_id),
                                "claimedAt": _n(int(time.time())),
                            },
                            "ConditionExpression": "attribute_not_exists(pk) OR tokenId = :t",
                            "ExpressionAttributeValues": {":t": _s(token_id)},
                        }
                    },
                    {
                        "Update": {
                            "TableName": self.table,
                            "Key": {"pk": _s(TOKEN_PK), "sk": _s(token_id)},
                            "UpdateExpression": token_update,
                            "ConditionExpression": "attribute_exists(pk) AND (attribute_not_exists(subdomains)"
                            " OR size(subdomains) < :max OR contains(subdomains, :name))",
                            "ExpressionAttributeValues": values,
                        }
                    },
                ]
            )
        except ddb.exceptions.TransactionCanceledException as exc:
            reasons = [r.get("Code") for r in exc.response.get("CancellationReasons", [])]
            if reasons and reasons[0] == "ConditionalCheckFailed":
                raise SubdomainTaken(subdomain) from None
            if len(reasons) > 1 and reasons[1] == "ConditionalCheckFailed":
                if self.get(token_id) is not None:
                    raise NameLimit(token_id) from None
                raise TokenRevoked(token_id) from None
            raise


@dataclass(frozen=True)
class ConnectionStore:
    table: str
    ddb: Any = None  # operator tools may pass their own client; handlers do not

    def _ddb(self) -> Any:
        return self.ddb or client("dynamodb")

    def put(
        self, connection_id: str, subdomain: str, public_url: str, token_id: str, expires_at: int | None = None
    ) -> None:
        now = int(time.time())
        item = {
            "connectionId": _s(connection_id),
            "claimedSubdomain": _s(subdomain),
            "publicUrl": _s(public_url),
            "tokenId": _s(token_id),
            "createdAt": _n(now),
            names.TTL_ATTRIBUTE: _n(now + CONNECTION_TTL_SECS),
        }
        if expires_at is not None:  # the token's expiry: routing stops there even if the socket stays
            item["expiresAt"] = _n(int(expires_at))
        self._ddb().put_item(TableName=self.table, Item=item)

    def mark_ready(self, connection_id: str) -> dict[str, Any] | None:
        """Make the connection routable; None if it is unknown (already disconnected)."""
        ddb = self._ddb()
        try:
            attrs = ddb.update_item(
                TableName=self.table,
                Key={"connectionId": _s(connection_id)},
                UpdateExpression="SET publicSubdomain = claimedSubdomain, readyAt = :now",
                ConditionExpression="attribute_exists(connectionId)",
                ExpressionAttributeValues={":now": _n(int(time.time()))},
                ReturnValues="ALL_NEW",
            )["Attributes"]
        except ddb.exceptions.ConditionalCheckFailedException:
            return None
        return plain(attrs)

    def find(self, subdomain: str) -> str | None:
        """The newest ready connection serving `subdomain`."""
        items = (
            self._ddb()
            .query(
                TableName=self.table,
                IndexName=names.SUBDOMAIN_INDEX,
                KeyConditionExpression="publicSubdomain = :s",
                ExpressionAttributeValues={":s": _s(subdomain)},
                ScanIndexForward=False,
                Limit=1,
            )
            .get("Items", [])
        )
        return items[0]["connectionId"]["S"] if items else None

    def acquire(self, connection_id: str, limit: int) -> dict[str, Any] | None:
        """Count one more request in flight on the connection if fewer than `limit` are: the
        connection's item then, else None (full). Raises ConnectionMissing if it is gone."""
        ddb = self._ddb()
        try:
            attrs = ddb.update_item(
                TableName=self.table,
                Key={"connectionId": _s(connection_id)},
                UpdateExpression="ADD inflight :one",
                ConditionExpression="attribute_exists(connectionId) AND (attribute_not_exists(inflight) OR inflight < :limit)",
                ExpressionAttributeValues={":one": _n(1), ":limit": _n(limit)},
                ReturnValues="ALL_NEW",
            )["Attributes"]
        except ddb.exceptions.ConditionalCheckFailedException:
            exists = ddb.get_item(
                TableName=self.table, Key={"connectionId": _s(connection_id)}, ProjectionExpression="connectionId"
            ).get("Item")
            if not exists:
                raise ConnectionMissing(connection_id) from None
            return None
        return plain(attrs)

    def release(self, connection_id: str) -> None:
        """One request fewer in flight (never recreates a connection deleted meanwhile)."""
        ddb = self._ddb()
        with contextlib.suppress(ddb.exceptions.ConditionalCheckFailedException):
            ddb.update_item(
                TableName=self.table,
                Key={"connectionId": _s(connection_id)},
                UpdateExpression="ADD inflight :minus",
                ConditionExpression="attribute_exists(connectionId)",
                ExpressionAttributeValues={":minus": _n(-1)},
            )

    def for_token(self, token_id: str) -> list[str]:
        """Ids of the token's open connections (GSI `token-index`: no Scan)."""
        ids: list[str] = []
        kwargs: dict[str, Any] = {
            "TableName": self.table,
            "IndexName": names.TOKEN_INDEX,
            "KeyConditionExpression": "tokenId = :t",
            "ExpressionAttributeValues": {":t": _s(token_id)},
        }
        while True:
            page = self._ddb().query(**kwargs)
            ids.extend(i["connectionId"]["S"] for i in page.get("Items", []))
            if "LastEvaluatedKey" not in page:
                return ids
            kwargs["ExclusiveStartKey"] = page["LastEvaluatedKey"]

    def delete(self, connection_id: str) -> dict[str, Any] | None:
        old = (
            self._ddb()
            .delete_item(TableName=self.table, Key={"connectionId": _s(connection_id)}, ReturnValues="ALL_OLD")
            .get("Attributes")
        )
        return plain(old) if old else None


@dataclass(frozen=True)
class PendingStore:
    table: str

    def put(self, request_id: str, connection_id: str, api_gateway_request_id: str) -> None:
        now = int(time.time())
        client("dynamodb").put_item(
            TableName=self.table,
            Item={
                "requestId": _s(request_id),
                "connectionId": _s(connection_id),
                "apiGatewayRequestId": _s(api_gateway_request_id),
                "createdAt": _n(now),
                names.TTL_ATTRIBUTE: _n(now + PENDING_REQUEST_TTL_SECS),
                "status": _s(PENDING),
            },
        )

    def get(self, request_id: str) -> dict[str, Any] | None:
        # Strongly consistent: an eventually consistent read could miss a response just written.
        item = (
            client("dynamodb")
            .get_item(TableName=self.table, Key={"requestId": _s(request_id)}, ConsistentRead=True)
            .get("Item")
        )
        return plain(item) if item else None

    def finish(
        self,
        request_id: str,
        status: str,
        *,
        response_data: str | None = None,
        error: str | None = None,
        connection_id: str | None = None,
    ) -> bool:
        """Move a pending request to `status` once; False if it was already finished (or unknown,
        or owned by another connection: an agent may only answer requests sent to it)."""
        ddb = client("dynamodb")
        attribute_names = {"#status": "status"}
        values: dict[str, Any] = {":new": _s(status), ":pending": _s(PENDING)}
        sets = ["#status = :new"]
        condition = "#status = :pending"
        if response_data is not None:
            sets.append("responseData = :data")
            values[":data"] = _s(response_data)
        if error is not None:
            sets.append("errorMessage = :err")
            values[":err"] = _s(error)
        if connection_id is not None:
            condition += " AND connectionId = :conn"
            values[":conn"] = _s(connection_id)
        try:
            ddb.update_item(
                TableName=self.table,
                Key={"requestId": _s(request_id)},
                UpdateExpression="SET " + ", ".join(sets),
                ConditionExpression=condition,
                ExpressionAttributeNames=attribute_names,
                ExpressionAttributeValues=values,
            )
        except ddb.exceptions.ConditionalCheckFailedException:
            return False
        return True

    def for_connection(self, connection_id: str) -> list[str]:
        ids: list[str] = []
        kwargs: dict[str, Any] = {
            "TableName": self.table,
            "IndexName": names.CONNECTION_INDEX,
            "KeyConditionExpression": "connectionId = :c",
            "ExpressionAttributeValues": {":c": _s(connection_id)},
        }
        while True:
            page = client("dynamodb").query(**kwargs)
            ids.extend(i["requestId"]["S"] for i in page.get("Items", []))
            if "LastEvaluatedKey" not in page:
                return ids
            kwargs["ExclusiveStartKey"] = page["LastEvaluatedKey"]

    def delete(self, request_id: str) -> None:
        client("dynamodb").delete_item(TableName=self.table, Key={"requestId": _s(request_id)})


@dataclass(frozen=True)
class BodyStore:
    """Bodies too large for one WebSocket message: `requests/{id}` and `responses/{id}`."""

    bucket: str

    @staticmethod
    def request_key(request_id: str) -> str:
        return f"{names.REQUESTS_PREFIX}{request_id}"

    @staticmethod
    def response_key(request_id: str) -> str:
        return f"{names.RESPONSES_PREFIX}{request_id}"

    def put_request_body(self, request_id: str, body: bytes, expires: int) -> str:
        s3 = client("s3")
        key = self.request_key(request_id)
        s3.put_object(Bucket=self.bucket, Key=key, Body=body)
        url: str = presign_client().generate_presigned_url(
            "get_object", Params={"Bucket": self.bucket, "Key": key}, ExpiresIn=expires
        )
        return url

    def response_upload_form(self, request_id: str, expires: int, max_bytes: int) -> tuple[str, dict[str, str]]:
        """(URL, form fields) of a presigned POST for the response body: exactly this key, at most
        `max_bytes` (S3 answers 400 EntityTooLarge past it; a presigned PUT could not bound it)."""
        post: dict[str, Any] = presign_client().generate_presigned_post(
            Bucket=self.bucket,
            Key=self.response_key(request_id),
            Conditions=[["content-length-range", 1, max_bytes]],
            ExpiresIn=expires,
        )
        return str(post["url"]), {str(k): str(v) for k, v in post["fields"].items()}

    def get_response_body(self, request_id: str, max_bytes: int) -> bytes | None:
        """The uploaded response body, or None if it is missing or larger than `max_bytes`."""
        s3 = client("s3")
        try:
            obj = s3.get_object(Bucket=self.bucket, Key=self.response_key(request_id))
        except s3.exceptions.NoSuchKey:
            return None
        if obj["ContentLength"] > max_bytes:
            obj["Body"].close()
            return None
        data: bytes = obj["Body"].read()
        return data

    def delete(self, request_id: str) -> None:
        client("s3").delete_objects(
            Bucket=self.bucket,
            Delete={
                "Objects": [{"Key": self.request_key(request_id)}, {"Key": self.response_key(request_id)}],
                "Quiet": True,
            },
        )
