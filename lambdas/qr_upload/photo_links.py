"""The desktop's link to the photo: a CloudFront signed URL, not an S3 presigned GET.

S3 cannot add `X-Content-Type-Options: nosniff` (or a CSP) to a response, and a photo of up to
10 MB does not fit a Lambda response. The distribution in front of the upload bucket reaches only
the photo and rendition prefixes (Origin Access Control), adds nosniff, a `sandbox` CSP, a
Referrer-Policy and `X-Frame-Options` to every answer (a response headers policy), and serves only
URLs signed with the key pair whose private key is in Secrets Manager (a trusted key group).

The signed URL names one object version and the type and disposition S3 must answer with
(`response-content-type`, `response-content-disposition`, forwarded by the cache policy and signed
by Origin Access Control), and the canned policy's signature covers the whole URL: changing the
key, the version, the type, the disposition or the expiry makes CloudFront refuse it (403).
"""

from __future__ import annotations

import datetime
from typing import TYPE_CHECKING
from urllib.parse import quote, urlencode

from botocore.signers import CloudFrontSigner

from lambdas.common.aws import client
from lambdas.common.containers import per_container
from lambdas.common.settings import MissingSetting
from lambdas.qr_upload import names

if TYPE_CHECKING:
    import rsa  # loaded when the first link is signed: about 20 ms that `POST /sessions` need not pay

# Filenames for the disposition, by the format read from the bytes.
FILENAMES = {"JPEG": "photo.jpg", "PNG": "photo.png", "WEBP": "photo.webp", "GIF": "photo.gif", "HEIF": "photo.heic"}


@per_container
def _private_key(secret_arn: str) -> rsa.PrivateKey:
    """Read once per container: the key changes only with a redeploy that replaces it."""
    import rsa

    pem = client("secretsmanager").get_secret_value(SecretId=secret_arn)["SecretString"]
    return rsa.PrivateKey.load_pkcs1(str(pem).encode())


def disposition(fmt: str) -> str:
    return f'attachment; filename="{FILENAMES.get(fmt, "photo.jpg")}"'


def signed_url(
    base_url: str,
    key_pair_id: str,
    secret_arn: str,
    object_key: str,
    *,
    content_type: str,
    fmt: str,
    expires_in: int,
    version_id: str | None = None,
) -> str:
    if not (base_url and key_pair_id and secret_arn):
        raise MissingSetting(
            f"{names.ENV_PHOTO_LINKS_URL}, {names.ENV_PHOTO_KEY_PAIR_ID} and "
            f"{names.ENV_PHOTO_SIGNING_SECRET_ARN} must be set"
        )
    query = {names.CONTENT_TYPE_QUERY: content_type, names.DISPOSITION_QUERY: disposition(fmt)}
    if version_id:
        query = {names.VERSION_QUERY: version_id, **query}
    url = f"{base_url}/{quote(object_key)}?{urlencode(query, quote_via=quote)}"
    import rsa

    private = _private_key(secret_arn)
    signer = CloudFrontSigner(key_pair_id, lambda message: rsa.sign(message, private, "SHA-1"))
    expires = datetime.datetime.now(datetime.UTC) + datetime.timedelta(seconds=expires_in)
    signed: str = signer.generate_presigned_url(url, date_less_than=expires)
    return signed
