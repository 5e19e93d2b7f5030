"""Every stack of one environment. `app.py`, the tests and the local runtime all build through here."""

from __future__ import annotations

from aws_cdk import App, Environment, Stack

from infrastructure.config import EnvConfig
from infrastructure.stacks.collections_compute import CollectionsComputeStack
from infrastructure.stacks.collections_data import CollectionsDataStack
from infrastructure.stacks.functions import FunctionsStack
from infrastructure.stacks.github_oidc import github_oidc_stacks
from infrastructure.stacks.qr_upload import QrUploadStack
from infrastructure.stacks.tunnel import TunnelStack
from lambdas.functions import names


def build_platform(app: App, config: EnvConfig, env: Environment | None = None) -> list[Stack]:
    stacks: list[Stack] = [
        QrUploadStack(app, config.stack_name("QrUpload"), config=config, env=env),
        TunnelStack(app, config.stack_name("Tunnel"), config=config, env=env),
    ]
    data = CollectionsDataStack(app, config.stack_name("CollectionsDataStack"), config=config, env=env)
    stacks += [
        data,
        CollectionsComputeStack(app, config.stack_name("CollectionsComputeStack"), config=config, data=data, env=env),
        FunctionsStack(app, config.stack_name(names.STACK_BASE), config=config, env=env),
    ]
    stacks += github_oidc_stacks(app, config, env=env)
    return stacks
