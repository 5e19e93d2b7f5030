"""Names shared by the `QrUpload-{env}` stack, its signed-photo-links construct and its handlers.

Light on purpose (standard library only): the stack, the construct and every handler import it.
"""

from __future__ import annotations

from lambdas.common import naming

SYSTEM = "qr-upload"


def resource_name(env: str) -> str:
    """`qr-upload-{env}`: the APIs, the bucket (with account and region) and the photo links."""
    return naming.env_scoped(SYSTEM, env)


# --- the QR upload's Lambda functions (`qr-upload-{short}-{env}`) ---------------------------------
HTTP_API = "http-api"
WEBSOCKET_EVENT = "websocket-event"


def service_name(short: str) -> str:
    return naming.service_name(SYSTEM, short)


def function_name(short: str, env: str) -> str:
    return naming.function_name(SYSTEM, short, env)


# --- DynamoDB: one item per session ---------------------------------------------------------------
SESSION_ID = "sessionId"
EXPIRES_AT = "expiresAt"  # the TTL attribute, and the end of the session
# Sparse: only sessions with a desktop connected have a wsConnectionId.
CONNECTION_INDEX = "wsConnectionId-index"
CONNECTION_INDEX_KEY = "wsConnectionId"

# --- S3 keys in the upload bucket -----------------------------------------------------------------
UPLOAD_PREFIX = "session-uploads/"  # phones' presigned POSTs; the only prefix that notifies
RENDITION_PREFIX = "session-renditions/"  # JPEG renditions of HEIC/HEIF photos, for the desktop

# --- the desktop's signed photo links -------------------------------------------------------------
# The query parameters the signer puts in a URL; the distribution forwards (and keys on) exactly these.
VERSION_QUERY = "versionId"
CONTENT_TYPE_QUERY = "response-content-type"
DISPOSITION_QUERY = "response-content-disposition"
SIGNED_QUERY = (VERSION_QUERY, CONTENT_TYPE_QUERY, DISPOSITION_QUERY)

# --- environment variables of the QR upload's functions -------------------------------------------
ENV_SESSIONS_TABLE = "SESSIONS_TABLE_NAME"
ENV_UPLOAD_BUCKET = "UPLOAD_BUCKET_NAME"
# The `@connections` endpoint, `{api-id}.execute-api.{region}.amazonaws.com/{stage}`: the same key
# the tunnel's functions read.
ENV_WS_API_ENDPOINT = "WS_API_ENDPOINT"
ENV_MAX_UPLOAD_BYTES = "MAX_UPLOAD_BYTES"
ENV_SESSION_TTL_SECONDS = "SESSION_TTL_SECONDS"
ENV_UPLOAD_URL_TTL_SECONDS = "UPLOAD_URL_TTL_SECONDS"
ENV_DOWNLOAD_URL_TTL_SECONDS = "DOWNLOAD_URL_TTL_SECONDS"
ENV_PHOTO_LINKS_URL = "PHOTO_LINKS_URL"
ENV_PHOTO_KEY_PAIR_ID = "PHOTO_KEY_PAIR_ID"
ENV_PHOTO_SIGNING_SECRET_ARN = "PHOTO_SIGNING_SECRET_ARN"  # noqa: S105 - the secret's ARN, not a secret

# --- stack outputs --------------------------------------------------------------------------------
OUTPUT_HTTP_API_URL = "HttpApiUrl"
OUTPUT_DESKTOP_PAGE_URL = "DesktopPageUrl"
OUTPUT_WEBSOCKET_URL = "WebSocketUrl"
OUTPUT_UPLOAD_BUCKET = "UploadBucketName"
OUTPUT_PHOTO_LINKS_URL = "PhotoLinksUrl"
OUTPUT_SESSIONS_TABLE = "SessionsTableName"
