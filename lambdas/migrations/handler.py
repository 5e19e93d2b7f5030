"""Deploy-time migration: invoked once per deployment by a CDK Trigger inside the VPC.

The only code that uses the master credentials: it applies the migrations, then sets each
function role's password from that function's secret (roles.py). A failure raises, which fails
the Trigger and so the deployment: the new code never runs against a schema it does not expect.
"""

from __future__ import annotations

import os
from typing import Any

from aws_lambda_powertools import Logger

from lambdas.collections import pg
from lambdas.common.entry import entry
from lambdas.migrations.roles import ROLE_SECRETS_ENV, role_secrets_from_env, set_passwords
from lambdas.migrations.runner import apply_migrations

logger = Logger()


@entry(logger)
def handler(event: dict[str, Any], context: Any) -> dict[str, Any]:
    conn = pg.connection()
    applied = apply_migrations(conn)
    roles = set_passwords(conn, role_secrets_from_env(os.environ.get(ROLE_SECRETS_ENV)))
    logger.info("migrations applied", extra={"applied": applied, "role_passwords_set": roles})
    return {"applied": applied, "roles": roles}
