"""Agent tokens: `{token_id}.{secret}`; only a SHA-256 of the secret is ever stored.

The secret is 32 random bytes, so a fast hash is enough (no password-style stretching needed), and
the public token id lets the operator list and revoke tokens without ever seeing a secret again.
"""

from __future__ import annotations

import hashlib
import hmac
import re
import secrets
import string

_ID_ALPHABET = string.ascii_lowercase + string.digits
_TOKEN = re.compile(r"^([a-z0-9]{10})\.([A-Za-z0-9_-]{20,128})$")
SUBDOMAIN = re.compile(r"^[a-z0-9](?:[a-z0-9-]{1,61}[a-z0-9])$")
RANDOM_SUBDOMAIN_LENGTH = 12


def hash_secret(secret: str) -> str:
    return hashlib.sha256(secret.encode()).hexdigest()


def new_token() -> tuple[str, str, str]:
    """(token_id, full token to hand to the user once, secret hash to store)."""
    token_id = "".join(secrets.choice(_ID_ALPHABET) for _ in range(10))
    secret = secrets.token_urlsafe(32)
    return token_id, f"{token_id}.{secret}", hash_secret(secret)


def parse_token(token: str) -> tuple[str, str] | None:
    """(token_id, secret) or None when the string cannot be a token."""
    match = _TOKEN.match(token.strip())
    return (match.group(1), match.group(2)) if match else None


def secret_matches(secret: str, stored_hash: str) -> bool:
    return hmac.compare_digest(hash_secret(secret), stored_hash)


def random_subdomain() -> str:
    # Starts with a letter so it is never all digits (reads better, never looks like an IP part).
    first = secrets.choice(string.ascii_lowercase)
    return first + "".join(secrets.choice(_ID_ALPHABET) for _ in range(RANDOM_SUBDOMAIN_LENGTH - 1))


def valid_subdomain(name: str) -> bool:
    return bool(SUBDOMAIN.match(name))
