"""Deploy-time migration: invoked once per deployment by a CDK Trigger inside the VPC.

A failure raises, which fails the Trigger and so the deployment: the new code never runs
against a schema it does not expect.
"""

from __future__ import annotations

from typing import Any

from aws_lambda_powertools import Logger

from lambdas.common import pg
from lambdas.migrations.runner import apply_migrations

logger = Logger()


@logger.inject_lambda_context
def handler(event: dict[str, Any], context: Any) -> dict[str, Any]:
    conn = pg.connection()
    applied = apply_migrations(conn)
    logger.info("migrations applied", extra={"applied": applied})
    return {"applied": applied}
