"""QR-upload settings: a frozen `Settings.from_env()` read once per container (`settings()`),
forgotten with everything else a container caches by one `clear()` (the shape the tunnel's and
the Functions' settings have).

Both functions share this module; each reads only what it needs (the event function never
presigns, so a missing UPLOAD_BUCKET_NAME fails only where the bucket is asked for).
"""

from __future__ import annotations

from dataclasses import dataclass
from urllib.parse import urlsplit

from lambdas.common.containers import per_container
from lambdas.common.settings import MissingSetting, env_int, env_str, need, require_env
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

    @classmethod
    def from_env(cls) -> Settings:
        return cls(
            table_name=require_env(names.ENV_SESSIONS_TABLE),
            bucket_name=env_str(names.ENV_UPLOAD_BUCKET),
            ws_api_endpoint=env_str(names.ENV_WS_API_ENDPOINT),
            max_upload_bytes=_positive(names.ENV_MAX_UPLOAD_BYTES, 10 * 1024 * 1024),
            session_ttl_seconds=_positive(names.ENV_SESSION_TTL_SECONDS, 1800),
            upload_url_ttl_seconds=_positive(names.ENV_UPLOAD_URL_TTL_SECONDS, 300),
            download_url_ttl_seconds=_positive(names.ENV_DOWNLOAD_URL_TTL_SECONDS, 300),
            photo_links_url=env_str(names.ENV_PHOTO_LINKS_URL).rstrip("/"),
            photo_key_pair_id=env_str(names.ENV_PHOTO_KEY_PAIR_ID),
            photo_signing_secret_arn=env_str(names.ENV_PHOTO_SIGNING_SECRET_ARN),
        )

    def upload_bucket(self) -> str:
        return need(self.bucket_name, names.ENV_UPLOAD_BUCKET)

    def websocket_endpoint(self) -> str:
        return need(self.ws_api_endpoint, names.ENV_WS_API_ENDPOINT)

    def photo_links(self) -> str:
        return need(self.photo_links_url, names.ENV_PHOTO_LINKS_URL)


def _positive(name: str, default: int) -> int:
    value = env_int(name, default)
    if value <= 0:
        raise MissingSetting(f"environment variable {name} must be positive, got {value}")
    return value


@per_container
def settings() -> Settings:
    return Settings.from_env()
