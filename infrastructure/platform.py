"""Every stack of one environment. `app.py`, the tests and the local runtime all build through here."""

from __future__ import annotations

from aws_cdk import App, Aspects, Environment, Stack

from infrastructure.config import EnvConfig
from infrastructure.monitoring import AlarmRouting
from infrastructure.stacks.alarms import AlarmsStack, alarm_emails
from infrastructure.stacks.collections_compute import CollectionsComputeStack
from infrastructure.stacks.collections_data import CollectionsDataStack
from infrastructure.stacks.dashboards import DashboardsStack
from infrastructure.stacks.functions import FunctionsStack
from infrastructure.stacks.github_oidc import github_oidc_stacks
from infrastructure.stacks.qr_upload import QrUploadStack
from infrastructure.stacks.tunnel import TunnelStack
from lambdas.functions import names
from lambdas.tunnel import names as tunnel_names


def build_platform(app: App, config: EnvConfig, env: Environment | None = None) -> list[Stack]:
    alarms = AlarmsStack(app, config.stack_name("Alarms"), config=config, emails=alarm_emails(app, config), env=env)
    qr_upload = QrUploadStack(app, config.stack_name("QrUpload"), config=config, env=env)
    tunnel = TunnelStack(app, config.stack_name(tunnel_names.STACK_BASE), config=config, env=env)
    data = CollectionsDataStack(app, config.stack_name("CollectionsDataStack"), config=config, env=env)
    compute = CollectionsComputeStack(
        app, config.stack_name("CollectionsComputeStack"), config=config, data=data, env=env
    )
    functions = FunctionsStack(app, config.stack_name(names.STACK_BASE), config=config, env=env)
    systems: list[Stack] = [qr_upload, tunnel, data, compute, functions]

    # Every alarm of these stacks notifies the topic by name, so the topic must exist first.
    routing = AlarmRouting(config)
    for stack in systems:
        stack.add_stack_dependency(alarms, "alarms notify platform-alarms-{env}")
        Aspects.of(stack).add(routing)
    # Dashboards read metric names off the stacks (API ids are imported: see dashboards.py).
    dashboards = DashboardsStack(
        app,
        config.stack_name("Dashboards"),
        config=config,
        systems={
            "qr-upload": [qr_upload],
            "tunnel": [tunnel],
            "collections": [data, compute],
            "functions": [functions],
        },
        env=env,
    )
    return [alarms, *systems, dashboards, *github_oidc_stacks(app, config, env=env)]
