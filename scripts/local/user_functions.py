"""Functions created at run time through the Lambda API (the platform's user functions), run in
worker processes like the templates' functions, never in the runtime's own process.

moto keeps the control plane (functions, code, versions, aliases, configuration, concurrency,
event invoke configs); this module reads moto's in-process Lambda backend to find what an `Invoke`
names, and runs it:

- the code zip is extracted once per code SHA-256 into the runtime's scratch directory; absolute
  paths, `..` and symbolic links are refused, and so is more than Lambda's 250 MB unzipped;
- workers are pooled per function, executed version, code and configuration, kept warm, retired
  when `$LATEST` changes or the function goes, at most MAX_POOLS pools (least recently used go
  first), each with at most the function's reserved concurrency (up to MAX_WORKERS) workers;
- a worker gets exactly the function's environment plus what the Lambda runtime sets
  (AWS_LAMBDA_FUNCTION_VERSION = the executed version, memory size, log group and stream, region,
  fake credentials, AWS_ENDPOINT_URL at moto) and nothing of the runtime's own environment; it is
  killed at the function's timeout, and its data segment is capped at the memory size;
- each invocation's lines, framed by Lambda's START / END / REPORT lines, go to moto's CloudWatch
  Logs (`/aws/lambda/{name}`, one stream per worker, named like Lambda's
  `YYYY/MM/DD/[{version}]{hex}`) as well as to the runtime's log stream.
"""

from __future__ import annotations

import contextlib
import hashlib
import io
import json
import math
import queue
import random
import shutil
import stat
import threading
import time
import uuid
import zipfile
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path, PurePosixPath
from typing import Any

from scripts.local.assembly import Resource
from scripts.local.functions import MAX_WORKERS, FunctionPool, FunctionSpec, Invocation, InvokeError, LogSink
from scripts.local.intrinsics import ACCOUNT

MAX_POOLS = 16
MAX_UNZIPPED_BYTES = 262_144_000  # Lambda's limit for a function's unzipped code
DEFAULT_RETRIES = 2  # asynchronous invocations, without an event invoke config
DEFAULT_MAX_EVENT_AGE = 21_600
# Variables the Lambda runtime sets whatever the function's configuration says.
_PLAIN_DEFAULTS = {"PATH": "/usr/local/bin:/usr/bin/:/bin:/opt/bin", "LANG": "en_US.UTF-8", "TZ": ":UTC"}


class FunctionNotFound(LookupError):
    """Lambda's ResourceNotFoundException; the message names the function as Lambda does."""


class BadRequest(ValueError):
    """Lambda's InvalidParameterValueException."""


class CodeError(RuntimeError):
    """The function's code cannot be unpacked (Lambda's InvalidZipFileException)."""


class Unsupported(RuntimeError):
    """Something this runtime cannot run (a container image, a runtime other than Python)."""


@dataclass(frozen=True)
class Target:
    """One function version, resolved from a name, ARN and qualifier, as it will run."""

    name: str
    arn: str  # unqualified
    qualifier: str  # as asked ("$LATEST", "3", "live")
    version: str  # executed ("$LATEST", "3")
    handler: str
    runtime: str
    environment: dict[str, str]
    timeout: float
    memory: int
    code: bytes = field(repr=False)
    code_sha: str
    reserved: int | None
    retry_attempts: int = DEFAULT_RETRIES
    max_event_age: int = DEFAULT_MAX_EVENT_AGE
    on_success: str | None = None
    on_failure: str | None = None

    @property
    def log_group(self) -> str:
        return f"/aws/lambda/{self.name}"

    @property
    def config_digest(self) -> str:
        config = [self.handler, self.runtime, self.environment, self.timeout, self.memory, self.reserved]
        return hashlib.sha256(json.dumps(config, sort_keys=True).encode()).hexdigest()[:16]

    @property
    def pool_key(self) -> tuple[str, str, str, str]:
        return (self.name, self.version, self.code_sha, self.config_digest)


def function_arn(region: str, name: str) -> str:
    return f"arn:aws:lambda:{region}:{ACCOUNT}:function:{name}"


def split_name(name_or_arn: str, qualifier: str | None) -> tuple[str, str | None]:
    """(function name, qualifier) from a name, `name:qualifier`, a full or a partial ARN."""
    rest = name_or_arn.split(":function:", 1)[1] if ":function:" in name_or_arn else name_or_arn
    name, _, in_name = rest.partition(":")
    if in_name:
        if qualifier and qualifier != in_name:
            raise BadRequest("The derived qualifier from the function name does not match the specified qualifier.")
        qualifier = in_name
    return name, qualifier or None


class CloudWatchWriter:
    """Writes log events to moto's CloudWatch Logs from one background thread (ordered per stream)."""

    def __init__(self, client: Callable[[], Any]) -> None:
        self._client = client
        self._queue: queue.Queue[tuple[str, str, list[tuple[float, str]]] | None] = queue.Queue()
        self._known: set[tuple[str, str]] = set()
        self._thread = threading.Thread(target=self._run, name="cloudwatch-logs", daemon=True)
        self._thread.start()

    def put(self, group: str, stream: str, lines: list[tuple[float, str]]) -> None:
        if lines:
            self._queue.put((group, stream, lines))

    def _run(self) -> None:
        logs = None
        while True:
            item = self._queue.get()
            if item is None:
                return
            group, stream, lines = item
            try:
                logs = logs or self._client()
                if (group, "") not in self._known:
                    with contextlib.suppress(logs.exceptions.ResourceAlreadyExistsException):
                        logs.create_log_group(logGroupName=group)
                    self._known.add((group, ""))
                if (group, stream) not in self._known:
                    with contextlib.suppress(logs.exceptions.ResourceAlreadyExistsException):
                        logs.create_log_stream(logGroupName=group, logStreamName=stream)
                    self._known.add((group, stream))
                logs.put_log_events(
                    logGroupName=group,
                    logStreamName=stream,
                    logEvents=[{"timestamp": int(t * 1000), "message": m} for t, m in lines],
                )
            except Exception:  # noqa: S112 (moto going away at stop; a log write must never break an invocation)
                continue

    def close(self) -> None:
        self._queue.put(None)
        self._thread.join(timeout=5)


class UserFunctions:
    def __init__(
        self,
        region: str,
        moto_url: str,
        scratch: Path,
        sink: LogSink,
        logs_client: Callable[[], Any],
    ) -> None:
        self.region = region
        self.moto_url = moto_url
        self.scratch = scratch
        self.sink = sink
        self.cloudwatch = CloudWatchWriter(logs_client)
        self._pools: OrderedDict[tuple[str, str, str, str], FunctionPool] = OrderedDict()
        self._lock = threading.Lock()
        self._code_locks: dict[str, threading.Lock] = {}
        self._closed = False

    # --- finding what to run ---------------------------------------------------------------
    def _storage(self) -> Any:
        from moto.backends import get_backend

        return get_backend("lambda")[ACCOUNT][self.region]._lambdas

    def exists(self, name_or_arn: str) -> bool:
        try:
            name, _ = split_name(name_or_arn, None)
        except BadRequest:
            return False
        return name in self._storage()._functions

    def find(self, name_or_arn: str, qualifier: str | None = None) -> Target:
        name, qualifier = split_name(name_or_arn, qualifier)
        storage = self._storage()
        arn = function_arn(self.region, name)
        missing = FunctionNotFound(f"Function not found: {arn}" + (f":{qualifier}" if qualifier else ""))
        group = storage._functions.get(name)
        if group is None:
            raise missing
        version = qualifier or "$LATEST"
        if not version.isdigit() and version != "$LATEST":
            alias = storage._aliases.get(arn, {}).get(version)
            if alias is None:
                raise missing
            version = weighted_version(str(alias.function_version), alias.routing_config)
        fn = group["latest"] if version == "$LATEST" else _version(group, version)
        if fn is None:
            raise missing
        return self._target(fn, group, name, arn, qualifier or "$LATEST", version)

    def _target(self, fn: Any, group: dict[str, Any], name: str, arn: str, qualifier: str, version: str) -> Target:
        if getattr(fn, "package_type", "Zip") != "Zip":
            raise Unsupported("the local runtime runs .zip functions only, not container images")
        runtime = str(fn.run_time or "python3.12")
        if not runtime.startswith("python"):
            raise Unsupported(f"the local runtime runs Python functions only, not {runtime}")
        configs = fn.event_invoke_config or (group["latest"].event_invoke_config if group.get("latest") else [])
        config = configs[-1].config if configs else {}  # moto appends on every put: the last one holds
        destinations = config.get("DestinationConfig") or {}
        code = bytes(getattr(fn, "code_bytes", b"") or b"")
        reserved = fn.reserved_concurrency if group.get("latest") is None else group["latest"].reserved_concurrency
        return Target(
            name=name,
            arn=arn,
            qualifier=qualifier,
            version=version,
            handler=str(fn.handler or "lambda_function.lambda_handler"),
            runtime=runtime,
            environment={str(k): str(v) for k, v in (fn.environment_vars or {}).items()},
            timeout=float(fn.timeout or 3),
            memory=int(fn.memory_size or 128),
            code=code,
            code_sha=getattr(fn, "code_digest", "") or hashlib.sha256(code).hexdigest(),
            reserved=int(reserved) if reserved not in (None, "") else None,
            retry_attempts=int(config.get("MaximumRetryAttempts", DEFAULT_RETRIES)),
            max_event_age=int(config.get("MaximumEventAgeInSeconds", DEFAULT_MAX_EVENT_AGE)),
            on_success=(destinations.get("OnSuccess") or {}).get("Destination"),
            on_failure=(destinations.get("OnFailure") or {}).get("Destination"),
        )

    # --- code --------------------------------------------------------------------------------
    def task_root(self, target: Target) -> Path:
        """The function's code, unpacked once per SHA-256 (like /var/task)."""
        root = self.scratch / "functions" / target.code_sha
        with self._lock:
            lock = self._code_locks.setdefault(target.code_sha, threading.Lock())
        with lock:
            if root.is_dir():
                return root
            if not target.code:
                raise CodeError("the function has no code")
            staging = root.with_name(f"{target.code_sha}.{uuid.uuid4().hex}")
            try:
                unpack(target.code, staging)
                staging.rename(root)
            finally:
                shutil.rmtree(staging, ignore_errors=True)
        return root

    # --- running -----------------------------------------------------------------------------
    def environment(self, target: Target, task_root: Path) -> dict[str, str]:
        return {
            **_PLAIN_DEFAULTS,
            **target.environment,
            "AWS_REGION": self.region,
            "AWS_DEFAULT_REGION": self.region,
            "AWS_ACCESS_KEY_ID": "testing",  # moto's fake credentials
            "AWS_SECRET_ACCESS_KEY": "testing",
            "AWS_SESSION_TOKEN": "testing",
            "AWS_ENDPOINT_URL": self.moto_url,
            "AWS_EXECUTION_ENV": f"AWS_Lambda_{target.runtime}",
            "AWS_LAMBDA_FUNCTION_NAME": target.name,
            "AWS_LAMBDA_FUNCTION_VERSION": target.version,
            "AWS_LAMBDA_FUNCTION_MEMORY_SIZE": str(target.memory),
            "AWS_LAMBDA_LOG_GROUP_NAME": target.log_group,
            "AWS_LAMBDA_INITIALIZATION_TYPE": "on-demand",
            "LAMBDA_TASK_ROOT": str(task_root),
            "_HANDLER": target.handler,
        }

    def _pool(self, target: Target) -> FunctionPool:
        with self._lock:
            if self._closed:
                raise InvokeError("runtime stopped")
            pool = self._pools.get(target.pool_key)
            if pool is not None:
                self._pools.move_to_end(target.pool_key)
                return pool
        task_root = self.task_root(target)  # outside the lock: unpacking may take a while
        spec = FunctionSpec(
            resource=Resource("", target.name, "AWS::Lambda::Function", {}, {}),
            name=target.name,
            arn=target.arn,
            handler=target.handler,
            task_root=task_root,
            environment={},
            timeout=target.timeout,
            max_workers=max(1, min(MAX_WORKERS, target.reserved or MAX_WORKERS)),
            worker_args=("--memory-mb", str(target.memory), "--strict-json"),
            extra={"memory": str(target.memory)},
        )
        version = target.version

        def worker_env() -> dict[str, str]:
            day = datetime.now(UTC).strftime("%Y/%m/%d")
            return {"AWS_LAMBDA_LOG_STREAM_NAME": f"{day}/[{version}]{uuid.uuid4().hex}"}

        retired: list[FunctionPool] = []
        with self._lock:
            pool = self._pools.get(target.pool_key)
            if pool is None:
                # The same function and version with other code or configuration is stale.
                for key in [k for k in self._pools if k[:2] == target.pool_key[:2]]:
                    retired.append(self._pools.pop(key))
                while len(self._pools) >= MAX_POOLS:
                    idle = next((k for k, p in self._pools.items() if not p.busy), next(iter(self._pools)))
                    retired.append(self._pools.pop(idle))
                pool = FunctionPool(spec, self.environment(target, task_root), self.sink, worker_env)
                self._pools[target.pool_key] = pool
        for old in retired:
            old.retire()
        return pool

    def invoke(self, target: Target, event: Any, request_id: str | None = None) -> tuple[Invocation, list[str]]:
        """Run one invocation; returns it and its log as Lambda writes it (START ... REPORT)."""
        request_id = request_id or str(uuid.uuid4())
        for attempt in range(2):
            pool = self._pool(target)
            try:
                invocation = pool.invoke(event, request_id)
                break
            except InvokeError:  # retired between lookup and use: the next lookup makes a new pool
                if attempt or self._closed:
                    raise
        lines = report_lines(invocation, target.version, target.memory)
        self.cloudwatch.put(target.log_group, invocation.log_stream, lines)
        return invocation, [text for _, text in lines]

    def sweep(self) -> None:
        """Retire pools whose function, version, code or configuration is gone."""
        with self._lock:
            keys = list(self._pools)
        stale = []
        for key in keys:
            name, version = key[0], key[1]
            try:
                current = self.find(name, version).pool_key
            except (LookupError, BadRequest, Unsupported, RuntimeError):
                current = None
            if current != key:
                stale.append(key)
        with self._lock:
            retired = [self._pools.pop(k) for k in stale if k in self._pools]
        for pool in retired:
            pool.retire()

    def close(self) -> None:
        with self._lock:
            self._closed = True
            pools = list(self._pools.values())
            self._pools.clear()
        for pool in pools:
            pool.close()
        self.cloudwatch.close()


def _version(group: dict[str, Any], version: str) -> Any:
    return next((fn for fn in list(group["versions"]) if str(fn.version) == version), None)


def weighted_version(primary: str, routing: Any) -> str:
    """An alias's version for one invocation: each additional version by its weight, else the primary."""
    weights = routing.get("AdditionalVersionWeights") or {} if isinstance(routing, dict) else {}
    draw = random.random()
    for version, weight in weights.items():
        draw -= float(weight)
        if draw < 0:
            return str(version)
    return primary


def unpack(code: bytes, into: Path) -> None:
    """Extract a function's zip, refusing entries that would land outside `into` or link anywhere."""
    try:
        archive = zipfile.ZipFile(io.BytesIO(code))
    except zipfile.BadZipFile as exc:
        raise CodeError(f"not a zip file ({exc})") from None
    with archive:
        total = 0
        for info in archive.infolist():
            path = PurePosixPath(info.filename.replace("\\", "/"))
            if path.is_absolute() or ".." in path.parts or (path.parts and path.parts[0].endswith(":")):
                raise CodeError(f"unsafe path in the zip: {info.filename!r}")
            if stat.S_ISLNK(info.external_attr >> 16):
                raise CodeError(f"symbolic link in the zip: {info.filename!r}")
            total += info.file_size
            if total > MAX_UNZIPPED_BYTES:
                raise CodeError(f"unzipped size must be smaller than {MAX_UNZIPPED_BYTES} bytes")
        into.mkdir(parents=True)
        archive.extractall(into)


def report_lines(invocation: Invocation, version: str, memory: int) -> list[tuple[float, str]]:
    """The invocation's log as Lambda writes it: init output, START, the handler's lines, END, REPORT."""
    rid = invocation.request_id
    init = [(t, m) for t, m in invocation.logs if t < invocation.started]
    own = [(t, m) for t, m in invocation.logs if t >= invocation.started]
    lines = [*init, (invocation.started, f"START RequestId: {rid} Version: {version}"), *own]
    error_type = (invocation.error or {}).get("errorType")
    end = invocation.finished or time.time()
    if error_type == "Sandbox.Timedout":
        stamp = datetime.fromtimestamp(end, UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")
        lines.append((end, f"{stamp} {rid} Task timed out after {invocation.duration_ms / 1000:.2f} seconds"))
    lines.append((end, f"END RequestId: {rid}"))
    report = (
        f"REPORT RequestId: {rid}\tDuration: {invocation.duration_ms:.2f} ms\t"
        f"Billed Duration: {max(1, math.ceil(invocation.duration_ms))} ms\tMemory Size: {memory} MB\t"
        f"Max Memory Used: {invocation.max_memory_mb or 1} MB"
    )
    if invocation.init_ms is not None:
        report += f"\tInit Duration: {invocation.init_ms:.2f} ms"
    if error_type == "Sandbox.Timedout":
        report += "\tStatus: timeout"
    elif error_type in ("Runtime.OutOfMemory", "Runtime.ExitError"):
        report += f"\tStatus: error\tError Type: {error_type}"
    lines.append((end, report))
    return lines
