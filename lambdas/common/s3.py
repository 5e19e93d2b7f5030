"""An S3 client for presigned URLs and POST forms that browsers can use as they are.

botocore presigns with the deprecated SigV2 unless `signature_version` is set explicitly, and
without an explicit addressing style it presigns against the global endpoint (s3.amazonaws.com),
which answers 307 for buckets outside us-east-1 during their first day: a browser's POST does not
survive that redirect. So: SigV4, virtual-hosted regional URLs. With a custom endpoint
(AWS_ENDPOINT_URL[_S3]: moto, the local runtime) path style is used, since `bucket.127.0.0.1`
does not resolve. Signing is local: no request is made to create a URL.
"""

from __future__ import annotations

import os
from typing import Any

import boto3
from botocore.config import Config

from lambdas.common.containers import per_container


@per_container
def presign_client() -> Any:
    if os.environ.get("AWS_ENDPOINT_URL_S3") or os.environ.get("AWS_ENDPOINT_URL"):
        config = Config(signature_version="s3v4", s3={"addressing_style": "path"})
    else:
        config = Config(signature_version="s3v4", s3={"addressing_style": "virtual"})
    return boto3.client("s3", config=config)
