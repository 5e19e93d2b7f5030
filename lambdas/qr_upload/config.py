"""QR-upload settings, read from the environment once per container.

Both functions share this module; each reads only what it needs (the event function never
presigns, so a missing UPLOAD_BUCKET_NAME must not break it).
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from functools import cache
from urllib.parse import urlsplit

from lambdas.common.settings import MissingSetting, env_int, require_env
from lambdas.qr_upload import names


@dataclass(frozen=True)
class Settings:
    table_name: str
    bucket_name: str
    ws_api_endpoint: str
    max_upload_bytes: int
    session_ttl_seconds: int
    upload_url_ttl_seconds: int
    download_url_ttl_seconds: int
    # The desktop's photo links: the CloudFront distribution's https base URL, the id of the
    # public key it trusts, and the secret holding the matching private key.
    photo_links_url: str
    photo_key_pair_id: str
    photo_signing_secret_arn: str

    @property
    def websocket_url(self) -> str:
        """The URL a browser opens: `wss://host/stage` for the AWS form, `ws://` for a local http URL."""
        endpoint = self.ws_api_endpoint
        if "://" not in endpoint:
            return f"wss://{endpoint}"
        parts = urlsplit(endpoint)
        scheme = {"http": "ws", "https": "wss"}.get(parts.scheme, parts.scheme)
        return parts._replace(scheme=scheme).geturl()


def _optional(name: str) -> str:
    return os.environ.get(name, "").strip()


def _positive(name: str, default: int) -> int:
    value = env_int(name, default)
    if value <= 0:
        raise MissingSetting(f"environment variable {name} must be positive, got {value}")
    return value


@cache
def settings() -> Settings:
    return Settings(
        table_name=require_env(names.ENV_SESSIONS_TABLE),
        bucket_name=_optional(names.ENV_UPLOAD_BUCKET),
        ws_api_endpoint=_optional(names.ENV_WS_API_ENDPOINT),
        max_upload_bytes=_positive(names.ENV_MAX_UPLOAD_BYTES, 10 * 1024 * 1024),
        session_ttl_seconds=_positive(names.ENV_SESSION_TTL_SECONDS, 1800),
        upload_url_ttl_seconds=_positive(names.ENV_UPLOAD_URL_TTL_SECONDS, 300),
        download_url_ttl_seconds=_positive(names.ENV_DOWNLOAD_URL_TTL_SECONDS, 300),
        photo_links_url=_optional(names.ENV_PHOTO_LINKS_URL).rstrip("/"),
        photo_key_pair_id=_optional(names.ENV_PHOTO_KEY_PAIR_ID),
        photo_signing_secret_arn=_optional(names.ENV_PHOTO_SIGNING_SECRET_ARN),
    )


def bucket_name() -> str:
    name = settings().bucket_name
    if not name:
        raise MissingSetting(f"environment variable {names.ENV_UPLOAD_BUCKET} is not set")
    return name


def ws_api_endpoint() -> str:
    endpoint = settings().ws_api_endpoint
    if not endpoint:
        raise MissingSetting(f"environment variable {names.ENV_WS_API_ENDPOINT} is not set")
    return endpoint


def photo_links_url() -> str:
    url = settings().photo_links_url
    if not url:
        raise MissingSetting(f"environment variable {names.ENV_PHOTO_LINKS_URL} is not set")
    return url
