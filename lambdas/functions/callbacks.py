"""Callback tokens and webhook signatures, both HMAC-SHA256 with a key kept in Secrets Manager for
this purpose only (never a session secret, never in an environment variable).

A callback token is minted per invocation and names it: org, function, invocation, scopes, a
unique `jti`, and an expiry of the function's timeout plus a minute (for an async invocation the
hard cap also allows its maximum event age, and the `/v1/callback` routes further bound it to
timeout plus a minute from the moment the function first reports in). It opens only that
invocation's `/v1/callback/...` routes. Tokens are never logged by the platform.

Webhooks (`callback_url`) are signed with a per-organization key derived from the same secret:
`X-Platform-Signature: t={unix time},v1={hex HMAC-SHA256 of "{t}.{body}"}`; an admin reads the
org's key from `GET /v1/orgs/{org}/webhook-secret`.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import secrets
import time
from dataclasses import dataclass
from typing import Any

from lambdas.common.aws import client
from lambdas.common.containers import per_container
from lambdas.common.settings import need
from lambdas.functions import names
from lambdas.functions.settings import settings

PREFIX = "cb1"
SCOPES = ("input:read", "progress:write", "result:write")
SIGNATURE_HEADER = "X-Platform-Signature"


class TokenInvalid(Exception):
    pass


@per_container
def signing_key() -> bytes:
    arn = need(settings().callback_key_secret_arn, names.ENV_CALLBACK_KEY_SECRET_ARN)
    return client("secretsmanager").get_secret_value(SecretId=arn)["SecretString"].encode()


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).decode().rstrip("=")


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def _sign(message: bytes, purpose: bytes = b"callback-token") -> bytes:
    key = hmac.new(signing_key(), purpose, hashlib.sha256).digest()  # one derived key per purpose
    return hmac.new(key, message, hashlib.sha256).digest()


@dataclass(frozen=True)
class Claims:
    org: str
    fid: str
    iid: str
    scopes: tuple[str, ...]
    jti: str
    iat: int
    exp: int
    run_seconds: int  # timeout + a minute: how long after its first callback the token lives


def mint(org: str, fid: str, iid: str, *, timeout_seconds: int, queue_seconds: int = 0) -> tuple[str, Claims]:
    now = int(time.time())
    run_seconds = timeout_seconds + 60
    claims = Claims(org, fid, iid, SCOPES, secrets.token_hex(12), now, now + queue_seconds + run_seconds, run_seconds)
    body = _b64(json.dumps(claims.__dict__, separators=(",", ":")).encode())
    return f"{PREFIX}.{body}.{_b64(_sign(body.encode()))}", claims


def verify(token: str, iid: str, scope: str, now: float | None = None) -> Claims:
    """The token's claims if it is genuine, unexpired, for invocation `iid` and has `scope`."""
    parts = token.strip().removeprefix("Bearer ").strip().split(".")
    if len(parts) != 3 or parts[0] != PREFIX:
        raise TokenInvalid("not a callback token")
    try:
        signature = _unb64(parts[2])
        data: Any = json.loads(_unb64(parts[1]))
        claims = Claims(**{**data, "scopes": tuple(data["scopes"])})
    except (ValueError, TypeError, KeyError):
        raise TokenInvalid("not a callback token") from None
    if not hmac.compare_digest(signature, _sign(parts[1].encode())):
        raise TokenInvalid("not a callback token")
    if claims.iid != iid:
        raise TokenInvalid("this token belongs to another invocation")
    if scope not in claims.scopes:
        raise TokenInvalid(f"this token does not allow {scope}")
    if (now or time.time()) > claims.exp:
        raise TokenInvalid("the callback token has expired")
    return claims


def webhook_key(org: str) -> str:
    return _sign(f"webhook:{org}".encode(), b"webhook").hex()


def webhook_signature(org: str, body: bytes, at: int | None = None) -> str:
    at = at or int(time.time())
    digest = hmac.new(bytes.fromhex(webhook_key(org)), f"{at}.".encode() + body, hashlib.sha256).hexdigest()
    return f"t={at},v1={digest}"
