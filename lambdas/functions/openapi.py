"""The API's OpenAPI document: generated from the resolver's routes by Powertools at build time
(`python -m lambdas.functions.openapi` rewrites `openapi.json`), served as a file at run time so the
function needs neither pydantic nor the generation cost on a cold start. A test keeps the two equal.
"""

from __future__ import annotations

from functools import cache
from pathlib import Path

DOCUMENT = Path(__file__).with_name("openapi.json")


@cache
def document() -> str:
    return DOCUMENT.read_text()


def generate() -> str:
    from aws_lambda_powertools.event_handler.openapi.models import HTTPBearer

    from lambdas.functions.api import app, include_all_routes  # the routes and their summaries

    include_all_routes()
    return (
        app.get_openapi_json_schema(
            security_schemes={
                "orgKey": HTTPBearer(description="An organization key, issued by an operator (shown once)")
            },
            security=[{"orgKey": []}],
            title="Functions API",
            version="1",
            description="User-defined functions per organization, run as AWS Lambda functions: registry, "
            "code, immutable versions, the live alias with canary and rollback, invocation. Every route under "
            "/v1/orgs/{org} needs `Authorization: Bearer <key>`, an organization key issued by an operator.",
        )
        + "\n"
    )


if __name__ == "__main__":
    DOCUMENT.write_text(generate())
    print(f"wrote {DOCUMENT}")
