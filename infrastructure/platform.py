"""Every stack of one environment. `app.py`, the tests and the local runtime all build through here."""

from __future__ import annotations

from aws_cdk import App, Environment, Stack

from infrastructure.config import EnvConfig
from infrastructure.stacks.qr_upload import QrUploadStack


def build_platform(app: App, config: EnvConfig, env: Environment | None = None) -> list[Stack]:
    stacks: list[Stack] = [
        QrUploadStack(app, config.stack_name("QrUpload"), config=config, env=env),
    ]
    return stacks
