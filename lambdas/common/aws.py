"""boto3 clients created once per container.

boto3 honours AWS_ENDPOINT_URL (and AWS_ENDPOINT_URL_<SERVICE>), which is how tests and the local
runtime point every client at moto without any code here knowing about it.
"""

from __future__ import annotations

from typing import Any

import boto3
from botocore.config import Config

from lambdas.common.containers import per_container

# Lambda's own timeout is the real deadline; keep SDK waits well inside it and let the SDK's
# standard mode retry throttling with jittered backoff.
_CONFIG = Config(
    connect_timeout=3,
    read_timeout=10,
    retries={"max_attempts": 3, "mode": "standard"},
)


@per_container
def client(service: str, endpoint_url: str | None = None) -> Any:
    return boto3.client(service, config=_CONFIG, endpoint_url=endpoint_url)  # type: ignore[call-overload]
