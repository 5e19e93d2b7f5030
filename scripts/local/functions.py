"""Lambda functions from the templates, run unmodified in warm worker subprocesses.

Each function gets exactly its template environment (references resolved to local resources) plus
what the Lambda runtime itself provides (AWS_REGION, AWS_LAMBDA_*, _HANDLER, credentials), with
fake credentials, AWS_ENDPOINT_URL pointing at moto and AWS_ENDPOINT_URL_LAMBDA at the runtime's
Lambda API. Workers are spawned on demand up to the function's reserved concurrency (at most
MAX_WORKERS) and kept warm, like Lambda containers. A worker's first invocation waits for its
handler's import (Lambda's init phase, up to INIT_LIMIT, not counted in the timeout); at the
timeout the worker's whole process group is killed. Each `Invocation` carries the lines its
invocation wrote (and, on a cold start, the import's), its peak memory and its init time.
`user_functions.py` runs functions created at run time on the same machinery.
"""

from __future__ import annotations

import contextlib
import json
import os
import queue
import signal
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from scripts.local.assembly import Resource
from scripts.local.intrinsics import Resolver

WORKER_SCRIPT = Path(__file__).with_name("worker.py")
MARKER = "\x1e"  # worker.py ends each invocation's output with this and the request id
PROJECT_ROOT = Path(__file__).resolve().parents[2]
MAX_WORKERS = 4
INIT_LIMIT = 10.0  # Lambda's init phase: not counted in the function's timeout
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
    logs: list[tuple[float, str]] = field(default_factory=list)  # (time, line) written by this invocation
    max_memory_mb: int = 0  # the worker's peak resident memory during the invocation
    init_ms: float | None = None  # the module import, on a cold start
    log_stream: str = ""  # the worker's AWS_LAMBDA_LOG_STREAM_NAME

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
    worker_args: tuple[str, ...] = ()  # worker.py options (memory limit, strict JSON)
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
    """One worker process. Lines it writes to stderr go to `sink` as they come and are kept (with
    their time) until an invocation takes them: each `Invocation` carries its own log lines."""

    def __init__(self, spec: FunctionSpec, base_env: dict[str, str], sink: LogSink) -> None:
        self.spec = spec
        self.answers: queue.Queue[dict[str, Any]] = queue.Queue()
        self.init_ms: float | None = None  # process start to handler imported
        self._ready = threading.Event()
        self._spawned = time.time()
        self._cold = True
        self._logs = threading.Condition()
        self._pending: deque[tuple[float, str]] = deque(maxlen=10_000)
        self._marker: str | None = None
        self._logs_closed = False
        self.log_stream = base_env.get("AWS_LAMBDA_LOG_STREAM_NAME", "")
        self.process = subprocess.Popen(
            [sys.executable, "-u", str(WORKER_SCRIPT), spec.handler, str(spec.task_root), *spec.worker_args],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            env=base_env,
            text=True,
            errors="replace",
            bufsize=1,
            start_new_session=True,  # Ctrl-C reaches the runtime only; it stops workers itself
        )
        self._threads = [
            threading.Thread(target=self._read_answers, daemon=True),
            threading.Thread(target=self._read_logs, args=(sink,), daemon=True),
        ]
        for thread in self._threads:
            thread.start()

    def _read_answers(self) -> None:
        assert self.process.stdout is not None
        with contextlib.suppress(OSError, ValueError):
            for line in self.process.stdout:
                try:
                    answer = json.loads(line)
                except ValueError:
                    continue
                if "ready" in answer:
                    self.init_ms = round((time.time() - self._spawned) * 1000, 2)
                    self._ready.set()
                    continue
                self.answers.put(answer)
        self._ready.set()
        self.answers.put({"eof": True})

    def _read_logs(self, sink: LogSink) -> None:
        assert self.process.stderr is not None
        try:
            for raw in self.process.stderr:
                text, marked, request_id = raw.rstrip("\n").partition(MARKER)
                if text or not marked:
                    sink(self.spec.name, text)
                    with self._logs:
                        self._pending.append((time.time(), text))
                if marked:
                    with self._logs:
                        self._marker = request_id
                        self._logs.notify_all()
        except (OSError, ValueError):
            pass
        finally:
            with self._logs:
                self._logs_closed = True
                self._logs.notify_all()

    def _take_logs(self, request_id: str | None = None, wait: float = 1.0) -> list[tuple[float, str]]:
        """The lines written since the last call; with `request_id`, once its marker arrived."""
        with self._logs:
            if request_id is not None:
                self._logs.wait_for(lambda: self._marker == request_id or self._logs_closed, timeout=wait)
            lines = list(self._pending)
            self._pending.clear()
        return lines

    def invoke(self, event: Any, request_id: str) -> Invocation:
        if self._cold:  # the import runs first, with its own limit, and its output precedes START
            self._ready.wait(INIT_LIMIT)
            init_logs = self._take_logs("init")
        else:
            init_logs = self._take_logs()
        invocation = Invocation(request_id=request_id, started=time.time(), log_stream=self.log_stream)
        invocation.logs = init_logs
        deadline = invocation.started + self.spec.timeout
        request = {
            "id": request_id,
            "request_id": request_id,
            "event": event,
            "deadline": deadline,
            "arn": self.spec.arn,
            "trace_id": f"Root=1-{int(time.time()):08x}-{uuid.uuid4().hex[:24]};Parent={uuid.uuid4().hex[:16]};Sampled=0",
        }
        _reset_peak_memory(self.process.pid)
        assert self.process.stdin is not None
        try:
            self.process.stdin.write(json.dumps(request, default=str) + "\n")
            self.process.stdin.flush()
        except (OSError, ValueError):
            pass  # it exited (while importing the handler): the answers end with eof
        while True:
            try:
                answer = self.answers.get(timeout=max(0.0, deadline - time.time()))
            except queue.Empty:
                invocation.max_memory_mb = _peak_memory_mb(self.process.pid)
                self.kill()
                invocation.error = {
                    "errorType": "Sandbox.Timedout",
                    "errorMessage": f"RequestId: {request_id} Error: Task timed out after {self.spec.timeout:.2f} seconds",
                }
                invocation.duration_ms = self.spec.timeout * 1000
                break
            if answer.get("eof"):
                self.kill()
                invocation.error = {
                    "errorType": "Runtime.ExitError",
                    "errorMessage": f"RequestId: {request_id} Error: Runtime exited with error: "
                    f"exit status {self.process.returncode}",
                }
                invocation.duration_ms = (time.time() - invocation.started) * 1000
                break
            if answer.get("id") == request_id:
                invocation.max_memory_mb = _peak_memory_mb(self.process.pid)
                invocation.result = answer.get("result")
                invocation.error = answer.get("error")
                invocation.duration_ms = float(answer.get("duration_ms", 0.0))
                if invocation.error and invocation.error.get("errorType") == "Runtime.OutOfMemory":
                    invocation.max_memory_mb = int(self.spec.extra.get("memory", 128))
                break
        invocation.logs += self._take_logs(request_id)
        invocation.finished = time.time()
        if self._cold:
            invocation.init_ms, self._cold = self.init_ms, False
        return invocation

    @property
    def alive(self) -> bool:
        return self.process.poll() is None

    def kill(self) -> None:
        if self.process.poll() is None:
            # The whole session: whatever the handler started dies with it, as with a Lambda sandbox.
            with contextlib.suppress(OSError):
                os.killpg(self.process.pid, signal.SIGKILL)
            with contextlib.suppress(OSError):
                self.process.kill()
        with contextlib.suppress(subprocess.TimeoutExpired):
            self.process.wait(timeout=5)
        for thread in self._threads:  # let the readers drain what the process wrote before it died
            if thread is not threading.current_thread():
                thread.join(timeout=1)
        for stream in (self.process.stdin, self.process.stdout, self.process.stderr):
            try:
                if stream is not None:
                    stream.close()
            except (OSError, ValueError):
                pass


def _peak_memory_mb(pid: int) -> int:
    """The process's peak resident set (VmHWM) in MB, as Lambda's `Max Memory Used`; 0 if unknown."""
    try:
        with open(f"/proc/{pid}/status") as status:
            for line in status:
                if line.startswith("VmHWM:"):
                    return -(-int(line.split()[1]) // 1024)
    except (OSError, ValueError, IndexError):
        pass
    return 0


def _reset_peak_memory(pid: int) -> None:
    with contextlib.suppress(OSError), open(f"/proc/{pid}/clear_refs", "w") as refs:
        refs.write("5")  # resets VmHWM: the peak is then this invocation's


class FunctionPool:
    """The warm workers of one function."""

    def __init__(
        self,
        spec: FunctionSpec,
        base_env: dict[str, str],
        sink: LogSink,
        worker_env: Callable[[], dict[str, str]] | None = None,
    ) -> None:
        self.spec = spec
        self._env = {**base_env, **spec.environment}
        self._worker_env = worker_env or dict  # per worker ("container"): its log stream name
        self._sink = sink
        self._idle: list[Worker] = []
        self._all: list[Worker] = []
        self._cond = threading.Condition()
        self._closed = False
        self.last_used = time.time()

    def prewarm(self) -> None:
        with self._cond:
            if not self._all:
                worker = self._spawn()
                self._all.append(worker)
                self._idle.append(worker)

    def _spawn(self) -> Worker:
        return Worker(self.spec, {**self._env, **self._worker_env()}, self._sink)

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
                    worker = self._spawn()
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

    def invoke(self, event: Any, request_id: str | None = None) -> Invocation:
        worker = self._acquire()
        self.last_used = time.time()
        try:
            return worker.invoke(event, request_id or str(uuid.uuid4()))
        finally:
            self._release(worker)

    @property
    def busy(self) -> bool:
        with self._cond:
            return len(self._all) > len(self._idle)

    def retire(self) -> None:
        """Take no more invocations: idle workers stop now, busy ones when their invocation ends."""
        with self._cond:
            self._closed = True
            idle = list(self._idle)
            self._idle.clear()
            for worker in idle:
                self._all.remove(worker)
            self._cond.notify_all()
        for worker in idle:
            worker.kill()

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


def lambda_environment(
    spec: FunctionSpec, region: str, endpoint_url: str, lambda_url: str | None = None
) -> dict[str, str]:
    """What the Lambda runtime sets around the template's variables (which win on a clash).
    `lambda_url`: the runtime's Lambda API (AWS_ENDPOINT_URL_LAMBDA), for the platform's own
    handlers that create and invoke functions."""
    base = {key: os.environ[key] for key in ("PATH", "LANG", "LC_ALL", "HOME", "TMPDIR") if key in os.environ}
    if lambda_url:
        base["AWS_ENDPOINT_URL_LAMBDA"] = lambda_url
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
