"""Lambda functions from the templates, run unmodified in warm worker subprocesses.

Each function gets exactly its template environment (references resolved to local resources) plus
what the Lambda runtime itself provides (AWS_REGION, AWS_LAMBDA_*, _HANDLER, credentials), with
fake credentials and AWS_ENDPOINT_URL pointing at moto. Workers are spawned on demand up to the
function's reserved concurrency (at most MAX_WORKERS) and kept warm, like Lambda containers.
"""

from __future__ import annotations

import contextlib
import json
import os
import queue
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from scripts.local.assembly import Resource
from scripts.local.intrinsics import Resolver

WORKER_SCRIPT = Path(__file__).with_name("worker.py")
PROJECT_ROOT = Path(__file__).resolve().parents[2]
MAX_WORKERS = 4
LogSink = Callable[[str, str], None]  # (function name, raw line)


class InvokeError(RuntimeError):
    pass


@dataclass
class Invocation:
    request_id: str
    result: Any = None
    error: dict[str, Any] | None = None
    duration_ms: float = 0.0  # inside the handler
    started: float = 0.0
    finished: float = 0.0

    @property
    def failed(self) -> bool:
        return self.error is not None


@dataclass
class FunctionSpec:
    resource: Resource
    name: str
    arn: str
    handler: str
    task_root: Path
    environment: dict[str, str]
    timeout: float
    max_workers: int
    retry_attempts: int = 2  # Lambda's default for asynchronous invocations
    on_failure: str | None = None
    on_success: str | None = None
    dead_letter: str | None = None
    extra: dict[str, Any] = field(default_factory=dict)


def task_root(resource: Resource, handler: str, scratch: Path, assembly_dir: Path | None = None) -> Path:
    """The directory to import `handler` from: its asset's source directory or the nearest parent
    holding the handler's module (the platform's assets are `lambdas/` but bundle it as a package)."""
    code = resource.properties.get("Code") or {}
    if "ZipFile" in code:  # inline code (CDK's own custom-resource helpers)
        root = scratch / resource.logical_id
        root.mkdir(parents=True, exist_ok=True)
        (root / f"{handler.rpartition('.')[0].replace('.', '/')}.py").write_text(str(code["ZipFile"]))
        return root
    asset = resource.metadata.get("aws:asset:path")
    start = Path(asset) if asset else PROJECT_ROOT
    if not start.is_absolute():
        start = (assembly_dir or PROJECT_ROOT) / start
    module = Path(*handler.rpartition(".")[0].split("."))
    for candidate in (start, *start.parents):
        if (candidate / module).with_suffix(".py").is_file() or (candidate / module / "__init__.py").is_file():
            return candidate
    return start


class Worker:
    def __init__(self, spec: FunctionSpec, base_env: dict[str, str], sink: LogSink) -> None:
        self.spec = spec
        self.answers: queue.Queue[dict[str, Any]] = queue.Queue()
        self.process = subprocess.Popen(
            [sys.executable, "-u", str(WORKER_SCRIPT), spec.handler, str(spec.task_root)],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            env=base_env,
            text=True,
            bufsize=1,
            start_new_session=True,  # Ctrl-C reaches the runtime only; it stops workers itself
        )
        threading.Thread(target=self._read_answers, daemon=True).start()
        threading.Thread(target=self._read_logs, args=(sink,), daemon=True).start()

    def _read_answers(self) -> None:
        assert self.process.stdout is not None
        for line in self.process.stdout:
            try:
                self.answers.put(json.loads(line))
            except ValueError:
                continue
        self.answers.put({"eof": True})

    def _read_logs(self, sink: LogSink) -> None:
        assert self.process.stderr is not None
        for line in self.process.stderr:
            sink(self.spec.name, line.rstrip("\n"))

    def invoke(self, event: Any, request_id: str) -> Invocation:
        invocation = Invocation(request_id=request_id, started=time.time())
        deadline = invocation.started + self.spec.timeout
        request = {
            "id": request_id,
            "request_id": request_id,
            "event": event,
            "deadline": deadline,
            "arn": self.spec.arn,
            "trace_id": f"Root=1-{int(time.time()):08x}-{uuid.uuid4().hex[:24]};Parent={uuid.uuid4().hex[:16]};Sampled=0",
        }
        assert self.process.stdin is not None
        try:
            self.process.stdin.write(json.dumps(request, default=str) + "\n")
            self.process.stdin.flush()
        except OSError:
            raise InvokeError(f"{self.spec.name}: worker exited") from None
        while True:
            try:
                answer = self.answers.get(timeout=max(0.0, deadline - time.time()))
            except queue.Empty:
                self.kill()
                invocation.error = {
                    "errorType": "Sandbox.Timedout",
                    "errorMessage": f"Task timed out after {self.spec.timeout:.2f} seconds",
                }
                break
            if answer.get("eof"):
                invocation.error = {"errorType": "Runtime.ExitError", "errorMessage": "worker process exited"}
                break
            if answer.get("id") == request_id:
                invocation.result = answer.get("result")
                invocation.error = answer.get("error")
                invocation.duration_ms = float(answer.get("duration_ms", 0.0))
                break
        invocation.finished = time.time()
        return invocation

    @property
    def alive(self) -> bool:
        return self.process.poll() is None

    def kill(self) -> None:
        if self.process.poll() is None:
            self.process.kill()
        with contextlib.suppress(subprocess.TimeoutExpired):
            self.process.wait(timeout=5)
        for stream in (self.process.stdin, self.process.stdout, self.process.stderr):
            try:
                if stream is not None:
                    stream.close()
            except OSError:
                pass


class FunctionPool:
    """The warm workers of one function."""

    def __init__(self, spec: FunctionSpec, base_env: dict[str, str], sink: LogSink) -> None:
        self.spec = spec
        self._env = {**base_env, **spec.environment}
        self._sink = sink
        self._idle: list[Worker] = []
        self._all: list[Worker] = []
        self._cond = threading.Condition()
        self._closed = False

    def prewarm(self) -> None:
        with self._cond:
            if not self._all:
                worker = Worker(self.spec, self._env, self._sink)
                self._all.append(worker)
                self._idle.append(worker)

    def _acquire(self) -> Worker:
        with self._cond:
            while True:
                if self._closed:
                    raise InvokeError(f"{self.spec.name}: runtime stopped")
                while self._idle:
                    worker = self._idle.pop()
                    if worker.alive:
                        return worker
                    self._all.remove(worker)
                if len(self._all) < self.spec.max_workers:
                    worker = Worker(self.spec, self._env, self._sink)
                    self._all.append(worker)
                    return worker
                self._cond.wait(timeout=1)

    def _release(self, worker: Worker) -> None:
        with self._cond:
            if worker.alive and not self._closed:
                self._idle.append(worker)
            else:
                if worker in self._all:
                    self._all.remove(worker)
                worker.kill()
            self._cond.notify()

    def invoke(self, event: Any) -> Invocation:
        worker = self._acquire()
        try:
            return worker.invoke(event, str(uuid.uuid4()))
        finally:
            self._release(worker)

    def close(self) -> None:
        with self._cond:
            self._closed = True
            workers = list(self._all)
            self._all.clear()
            self._idle.clear()
            self._cond.notify_all()
        for worker in workers:
            worker.kill()


def build_specs(
    resolver: Resolver, resources: list[Resource], overrides: dict[str, dict[str, str]], scratch: Path
) -> dict[str, FunctionSpec]:
    """One spec per AWS::Lambda::Function, keyed by function name, with async settings applied."""
    specs: dict[str, FunctionSpec] = {}
    by_key: dict[tuple[str, str], FunctionSpec] = {}
    for resource in resources:
        if resource.type != "AWS::Lambda::Function" or not resolver.exists(resource):
            continue
        props = resource.properties
        if not str(props.get("Runtime", "python")).startswith("python"):
            continue  # CDK's Node.js deploy-time providers: CloudFormation machinery, not the app
        name = resolver.name(resource)
        handler = str(resolver.resolve(props.get("Handler", "index.handler"), resource.stack))
        environment = {
            k: str(v)
            for k, v in resolver.resolve(
                (props.get("Environment") or {}).get("Variables") or {}, resource.stack
            ).items()
        }
        for selector in ("*", resource.logical_id, name):
            environment.update(overrides.get(selector, {}))
        dead_letter = (resolver.resolve(props.get("DeadLetterConfig") or {}, resource.stack)).get("TargetArn")
        reserved = props.get("ReservedConcurrentExecutions")
        spec = FunctionSpec(
            resource=resource,
            name=name,
            arn=resolver.arn(resource),
            handler=handler,
            task_root=task_root(resource, handler, scratch, resolver.assembly.directory),
            environment=environment,
            timeout=float(props.get("Timeout", 3)),
            max_workers=max(1, min(MAX_WORKERS, int(reserved))) if reserved is not None else MAX_WORKERS,
            dead_letter=dead_letter,
        )
        spec.extra["memory"] = str(props.get("MemorySize", 128))
        log_config = resolver.resolve(props.get("LoggingConfig") or {}, resource.stack)
        spec.extra["log_group"] = log_config.get("LogGroup") or f"/aws/lambda/{name}"
        specs[name] = spec
        by_key[resource.key] = spec
    for resource in resources:
        if resource.type != "AWS::Lambda::EventInvokeConfig" or not resolver.exists(resource):
            continue
        props = resolver.resolve(resource.properties, resource.stack)
        target = resolver.find(str(props["FunctionName"]))
        if target is None or target.key not in by_key:
            continue
        spec = by_key[target.key]
        spec.retry_attempts = int(props.get("MaximumRetryAttempts", 2))
        destinations = props.get("DestinationConfig") or {}
        spec.on_failure = (destinations.get("OnFailure") or {}).get("Destination")
        spec.on_success = (destinations.get("OnSuccess") or {}).get("Destination")
    return specs


def lambda_environment(spec: FunctionSpec, region: str, endpoint_url: str) -> dict[str, str]:
    """What the Lambda runtime sets around the template's variables (which win on a clash)."""
    base = {key: os.environ[key] for key in ("PATH", "LANG", "LC_ALL", "HOME", "TMPDIR") if key in os.environ}
    return {
        **base,
        "AWS_REGION": region,
        "AWS_DEFAULT_REGION": region,
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
        "AWS_SESSION_TOKEN": "testing",
        "AWS_ENDPOINT_URL": endpoint_url,
        "AWS_EXECUTION_ENV": "AWS_Lambda_python3.12",
        "AWS_LAMBDA_FUNCTION_NAME": spec.name,
        "AWS_LAMBDA_FUNCTION_VERSION": "$LATEST",
        "AWS_LAMBDA_FUNCTION_MEMORY_SIZE": spec.extra.get("memory", "128"),
        "AWS_LAMBDA_LOG_GROUP_NAME": spec.extra.get("log_group", f"/aws/lambda/{spec.name}"),
        "AWS_LAMBDA_LOG_STREAM_NAME": f"local/[$LATEST]{uuid.uuid4().hex}",
        "AWS_LAMBDA_INITIALIZATION_TYPE": "on-demand",
        "AWS_XRAY_CONTEXT_MISSING": "LOG_ERROR",
        "AWS_XRAY_DAEMON_ADDRESS": "127.0.0.1:2000",
        "LAMBDA_TASK_ROOT": str(spec.task_root),
        "_HANDLER": spec.handler,
        "PYTHONUNBUFFERED": "1",
        "TZ": ":UTC",
    }


def scratch_dir() -> Path:
    return Path(tempfile.mkdtemp(prefix="local-runtime-"))
