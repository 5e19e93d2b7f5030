"""`LocalRuntime`: one environment's templates brought up on this machine, and taken down again.

    with LocalRuntime("dev") as runtime:
        runtime.outputs["QrUpload-dev"]["DesktopPageUrl"]   # http://127.0.0.1:8000/

Ports: HTTP APIs from `port_base` upward in template order, then WebSocket APIs, then CloudFront
distributions (cloudfront.py); moto at `port_base + 100`; the Lambda API (`lambda_url`: moto's
control plane, Invoke served by the runtime) at `port_base + 101`. The database (if any stack declares RDS) uses a Unix socket.
"""

from __future__ import annotations

import contextlib
import json
import shutil
import socket
import subprocess
import threading
import time
from collections import deque
from collections.abc import Callable
from pathlib import Path
from typing import Any

from scripts.local.apis import Api, LoopThread, PortInUse, read_apis
from scripts.local.assembly import Assembly
from scripts.local.cloudfront import CloudFrontServer, Distribution, read_distributions
from scripts.local.database import Database
from scripts.local.events import EventRouter, S3Notifications, SqsPollers
from scripts.local.functions import FunctionPool, FunctionSpec, build_specs, lambda_environment, scratch_dir
from scripts.local.http_api import HttpApiServer
from scripts.local.intrinsics import Resolver
from scripts.local.invoke import Invoker
from scripts.local.lambda_api import LambdaApiServer
from scripts.local.logs import LogLine, LogStream
from scripts.local.resources import ResourceFactory
from scripts.local.services import MotoServer
from scripts.local.synth import DEFAULT_APP, PROJECT_ROOT, synthesize
from scripts.local.user_functions import UserFunctions
from scripts.local.websocket_api import WebSocketApiServer

MOTO_OFFSET = 100
LAMBDA_OFFSET = 101
_RUNTIME_EVENTS = {
    "http",
    "ws.refused",
    "invoke.exhausted",
    "deliver",
    "deliver.unknown",
    "deliver.unsupported",
    "events.match",
    "lambda",
}


class StartError(RuntimeError):
    pass


class LocalRuntime:
    def __init__(
        self,
        env: str = "dev",
        *,
        port_base: int = 8000,
        app: str = DEFAULT_APP,
        context: dict[str, Any] | None = None,
        set_env: dict[str, dict[str, str]] | None = None,
        region: str = "us-east-1",
        log_out: Any = None,
        colour: bool = False,
        progress: Callable[[str], None] | None = None,
        retry_delay: float = 1.0,
        migrate: list[str] | None = None,
    ) -> None:
        """`migrate`: a command that applies the schema (it gets DATABASE_URL), run when the stacks
        declare a database but no deploy-time Trigger that would apply it."""
        self.env = env
        self.port_base = port_base
        self.app = app
        self.context = context or {}
        self.set_env = set_env or {}
        self.region = region
        self.retry_delay = retry_delay
        self.migrate = migrate
        self.progress = progress or (lambda _message: None)
        self.logs = LogStream(log_out, colour=colour)
        # Bounded: `make local` may run for days.
        self._timeline: deque[tuple[float, str, dict[str, Any]]] = deque(maxlen=20_000)
        self.moto_url = f"http://127.0.0.1:{port_base + MOTO_OFFSET}"
        self.lambda_url = f"http://127.0.0.1:{port_base + LAMBDA_OFFSET}"
        self.apis: list[Api] = []
        self.distributions: list[Distribution] = []
        self.outputs: dict[str, dict[str, Any]] = {}
        self.skipped: list[str] = []
        self.database: Database | None = None
        self._scratch: Path | None = None
        self._moto: MotoServer | None = None
        self._loop: LoopThread | None = None
        self._servers: list[HttpApiServer | WebSocketApiServer | LambdaApiServer | CloudFrontServer] = []
        self._functions: UserFunctions | None = None
        self._pools: dict[str, FunctionPool] = {}
        self._invoker: Invoker | None = None
        self._pollers: SqsPollers | None = None
        self._factory: ResourceFactory | None = None
        self._stopped = threading.Event()

    # --- public attributes ---------------------------------------------------------------
    @property
    def http_apis(self) -> dict[str, str]:
        return {a.name: f"http://{a.address}" for a in self.apis if a.protocol == "HTTP"}

    @property
    def websocket_apis(self) -> dict[str, str]:
        return {a.name: f"ws://{a.address}/{a.stage}" for a in self.apis if a.protocol == "WEBSOCKET"}

    @property
    def ports(self) -> list[int]:
        return (
            [a.port for a in self.apis]
            + [d.port for d in self.distributions]
            + [self.port_base + MOTO_OFFSET, self.port_base + LAMBDA_OFFSET]
        )

    @property
    def timeline(self) -> list[tuple[float, str, dict[str, Any]]]:
        """What happened, in order (S3 notifications, invocations, @connections posts): a snapshot."""
        return list(self._timeline)

    @property
    def invoker(self) -> Invoker:
        assert self._invoker is not None, "start() first"
        return self._invoker

    def client(self, service: str) -> Any:
        """A boto3 client on the runtime's moto (fake credentials); `lambda` on the Lambda API."""
        assert self._factory is not None, "start() first"
        return self._factory.client(service)

    def output(self, name: str) -> Any:
        """The local value of the first CfnOutput called `name` in any stack."""
        for values in self.outputs.values():
            if name in values:
                return values[name]
        raise KeyError(name)

    def trace(self, kind: str, info: dict[str, Any]) -> None:
        self._timeline.append((time.time(), kind, info))
        if kind in _RUNTIME_EVENTS:
            self.logs.add(LogLine(time.time(), "runtime", "INFO", "", _describe(kind, info), json.dumps(info)))

    # --- lifecycle -----------------------------------------------------------------------
    def __enter__(self) -> LocalRuntime:
        self.start()
        return self

    def __exit__(self, *_exc: object) -> None:
        self.stop()

    def start(self) -> LocalRuntime:
        if self._scratch is not None:  # already started (e.g. `with LocalRuntime(...).start():`)
            return self
        try:
            self._start()
        except BaseException:
            self.stop()
            raise
        return self

    def _start(self) -> None:
        _check_ports_free([self.port_base, self.port_base + MOTO_OFFSET, self.port_base + LAMBDA_OFFSET])  # early
        self._scratch = scratch = scratch_dir()
        self.progress(f"synthesizing {self.env} (bundling skipped)")
        assembly = Assembly.load(synthesize(scratch / "cdk.out", self.env, self.app, self.context))
        resolver = Resolver(assembly, self.region, self.moto_url)
        self._assign_ports(resolver)
        moto, factory, resources = self._provision(assembly, resolver)
        specs, invoker = self._wire_functions(resolver, resources, moto, factory, scratch)
        self._serve(resolver, factory, invoker, scratch)
        self._warm(specs)
        self._run_triggers(resolver, resources)
        self._publish_outputs(assembly, resolver, moto, factory)

    def _assign_ports(self, resolver: Resolver) -> None:
        """APIs on the first ports, CloudFront distributions on the next; their addresses resolve to them."""
        self.apis = read_apis(resolver)
        for offset, api in enumerate(self.apis):
            api.port = self.port_base + offset
            resolver.api_addresses[api.id] = api.address
        self.distributions = read_distributions(resolver)
        for offset, distribution in enumerate(self.distributions, start=len(self.apis)):
            distribution.port = self.port_base + offset
            resolver.cdn_addresses[distribution.domain] = distribution.address
            resolver.record(distribution.resource, DomainName=distribution.domain)
        _check_ports_free(self.ports)

    def _provision(self, assembly: Assembly, resolver: Resolver) -> tuple[MotoServer, ResourceFactory, list[Any]]:
        """moto, PostgreSQL if a stack has a database, and every resource the emulator creates."""
        self.progress(f"starting moto on {self.moto_url}")
        self._moto = moto = MotoServer("127.0.0.1", self.port_base + MOTO_OFFSET)
        moto.start()
        self._factory = factory = ResourceFactory(resolver, self.moto_url, self.region, {"lambda": self.lambda_url})
        resources = [r for r in assembly.resources() if resolver.exists(r)]
        databases = [r for r in resources if r.type in ("AWS::RDS::DBInstance", "AWS::RDS::DBCluster")]
        if databases:
            self.progress("starting PostgreSQL with pgvector")
            props = databases[0].properties
            self.database = Database(str(props.get("DBName") or props.get("DatabaseName") or "postgres"))
            self.database.start()
            resolver.database = self.database.credentials()
        self.progress("creating buckets, tables, queues, buses, parameters, secrets")
        factory.create_all(resources)
        self.skipped = factory.skipped
        if self.database is not None:
            self._database_secrets(resolver, resources)
        return moto, factory, resources

    def _wire_functions(
        self, resolver: Resolver, resources: list[Any], moto: MotoServer, factory: ResourceFactory, scratch: Path
    ) -> tuple[dict[str, FunctionSpec], Invoker]:
        """A pool per function, the invoker, and what invokes it: S3 notifications, EventBridge, SQS."""
        self._pools = {}
        specs = build_specs(resolver, resources, self.set_env, scratch / "inline")
        for spec in specs.values():
            env = lambda_environment(spec, self.region, self.moto_url, self.lambda_url)
            self._pools[spec.name] = FunctionPool(spec, env, self.logs)
        self._invoker = invoker = Invoker(specs, self._pools, resolver, factory, self.trace, self.retry_delay)
        router = EventRouter(resolver, invoker, self.region)
        notifications = S3Notifications(resolver, invoker, self.region, router)
        moto.on_s3_object(notifications.on_object)
        moto.on_put_events(router.on_put_events)
        self._pollers = SqsPollers(resolver, invoker, self.region)
        self._pollers.start()
        return specs, invoker

    def _serve(self, resolver: Resolver, factory: ResourceFactory, invoker: Invoker, scratch: Path) -> None:
        """The Lambda API (with the user functions it creates), then every HTTP and WebSocket API and
        CloudFront distribution."""
        self._functions = functions = UserFunctions(
            self.region, self.moto_url, scratch, self.logs, lambda: factory.client("logs")
        )
        self._loop = loop = LoopThread()
        lambda_api = LambdaApiServer(
            self.port_base + LAMBDA_OFFSET, self.moto_url, invoker, functions, loop, self.retry_delay
        )
        self.progress(f"serving the Lambda API on {self.lambda_url}")
        loop.run(lambda_api.start())
        self._servers.append(lambda_api)
        invoker.other_functions = lambda_api.invoke_async
        for api in self.apis:
            server: HttpApiServer | WebSocketApiServer = (
                HttpApiServer(api, invoker, loop) if api.protocol == "HTTP" else WebSocketApiServer(api, invoker, loop)
            )
            self.progress(f"serving {api.protocol} API {api.name} on {api.address}")
            loop.run(server.start())
            self._servers.append(server)
        for distribution in self.distributions:
            cdn = CloudFrontServer(distribution, resolver, factory.client("s3"), loop)
            self.progress(
                f"serving CloudFront distribution {distribution.resource.logical_id} on {distribution.address}"
            )
            loop.run(cdn.start())
            self._servers.append(cdn)

    def _warm(self, specs: dict[str, FunctionSpec]) -> None:
        self.progress(f"warming {len(self._pools)} functions")
        for name, pool in self._pools.items():
            if "inline" not in str(specs[name].task_root):  # CDK's deploy-time helpers never run locally
                pool.prewarm()

    def _publish_outputs(
        self, assembly: Assembly, resolver: Resolver, moto: MotoServer, factory: ResourceFactory
    ) -> None:
        for stack, name, body in assembly.outputs():
            self.outputs.setdefault(stack, {})[name] = resolver.resolve(body["Value"], stack)
        # Operator commands find tables and URLs from DescribeStacks, locally as on AWS.
        moto.publish_outputs(self.outputs, factory.client("cloudformation"))

    def _database_secrets(self, resolver: Resolver, resources: list[Any]) -> None:
        assert self.database is not None and self._factory is not None
        credentials = json.dumps(self.database.credentials())
        for resource in resources:
            if resource.type == "AWS::SecretsManager::SecretTargetAttachment":
                secret = resolver.find(str(resolver.resolve(resource.properties["SecretId"], resource.stack)))
                if secret is not None:
                    self._factory.put_secret_value(secret, credentials)
            elif resource.type in ("AWS::RDS::DBInstance", "AWS::RDS::DBCluster") and resource.properties.get(
                "ManageMasterUserPassword"
            ):
                name = f"rds!{resolver.name(resource)}"
                arn = self._factory.client("secretsmanager").create_secret(Name=name, SecretString=credentials)["ARN"]
                resolver.record(resource, **{"MasterUserSecret.SecretArn": arn})

    def _run_triggers(self, resolver: Resolver, resources: list[Any]) -> None:
        """Deploy-time work: the project's own custom resources (a ServiceToken naming one of its
        functions) get their Create and their `Data` becomes their attributes; CDK Triggers'
        handlers run once, as CloudFormation would run them."""
        for resource in resources:
            if resource.type == "AWS::CloudFormation::CustomResource" or (
                resource.type.startswith("Custom::") and resource.type != "Custom::Trigger"
            ):
                self._create_custom_resource(resolver, resource)
        triggers = [r for r in resources if r.type == "Custom::Trigger"]
        for trigger in triggers:
            handler = str(resolver.resolve(trigger.properties.get("HandlerArn", ""), trigger.stack))
            self.progress(f"running trigger {trigger.logical_id}")
            invocation = self.invoker.invoke(handler, {"RequestType": "Create"})
            if invocation.failed:
                raise StartError(f"trigger {trigger}: {invocation.error}")
        if self.database is not None and not triggers and self.migrate:
            self.progress(f"applying migrations ({' '.join(self.migrate[1:])})")
            env = {"DATABASE_URL": self.database.url, "PATH": "/usr/bin:/bin"}
            result = subprocess.run(
                self.migrate, cwd=PROJECT_ROOT, env=env, capture_output=True, text=True, check=False
            )
            if result.returncode != 0:
                raise StartError(f"migrations failed: {(result.stderr or result.stdout).strip().splitlines()[-1:]}")

    def _create_custom_resource(self, resolver: Resolver, resource: Any) -> None:
        props = resolver.resolve(resource.properties, resource.stack)
        spec = self.invoker.function_for(str(props.get("ServiceToken", "")))
        if spec is None or not spec.handler.startswith("lambdas."):
            return  # CDK's own deploy-time helpers have no local meaning
        self.progress(f"creating custom resource {resource.logical_id}")
        event = {
            "RequestType": "Create",
            "RequestId": f"local-{resource.logical_id}",
            "StackId": resource.stack,
            "LogicalResourceId": resource.logical_id,
            "ResourceType": resource.type,
            "ResourceProperties": {k: v for k, v in props.items() if k != "ServiceToken"},
        }
        invocation = self.invoker.invoke(spec.arn, event)
        answer = invocation.result if isinstance(invocation.result, dict) else {}
        if invocation.failed or answer.get("Status") != "SUCCESS":
            raise StartError(f"custom resource {resource}: {invocation.error or answer.get('Reason')}")
        resolver.record(
            resource, Ref=str(answer.get("PhysicalResourceId", resource.logical_id)), **answer.get("Data", {})
        )

    def stop(self) -> None:
        if self._stopped.is_set():
            return
        self._stopped.set()
        if self._loop is not None:
            for server in self._servers:
                with contextlib.suppress(Exception):  # keep stopping the rest
                    self._loop.run(server.stop(), timeout=10)
        if self._invoker is not None:
            self._invoker.stop()
        if self._pollers is not None:
            self._pollers.stop()
        for pool in self._pools.values():
            pool.close()
        if self._functions is not None:
            self._functions.close()
        if self._loop is not None:
            self._loop.stop()
        if self._moto is not None:
            self._moto.stop()
        if self.database is not None:
            self.database.stop()
        if self._scratch is not None:
            shutil.rmtree(self._scratch, ignore_errors=True)


def _check_ports_free(ports: list[int]) -> None:
    for port in ports:
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
            probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            try:
                probe.bind(("127.0.0.1", port))
            except OSError:
                raise PortInUse(f"port {port} is already in use (try --port-base)") from None


def _describe(kind: str, info: dict[str, Any]) -> str:
    if kind == "http":
        return f"{info['method']} {info['path']} -> {info['status']} ({info['ms']} ms) [{info['api']}]"
    if kind == "lambda":
        version = f":{info['version']}" if info.get("version") else ""
        error = f" {info['error']}" if info.get("error") else ""
        return f"Invoke {info['function']}{version} {info['type']} -> {info['status']}{error} ({info['ms']} ms)"
    return f"{kind} " + " ".join(f"{k}={v}" for k, v in info.items())
