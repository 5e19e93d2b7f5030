"""One warm Lambda "container": imports one handler once, then serves invocations one at a time.

Run as a script (`python worker.py HANDLER TASK_ROOT [--memory-mb N] [--strict-json]`) with exactly
the function's environment. Requests arrive as JSON lines on stdin; answers go as JSON lines to the
original stdout, while fd 1 itself is pointed at stderr so that everything the handler prints or
logs (Powertools writes to stdout) reaches the runtime's log stream, as it reaches CloudWatch on AWS.
After the import and after each invocation a marker line (`\\x1e` + `init` or the request id)
follows the handler's output on stderr, so the runtime knows which lines belong to which invocation.

`--memory-mb N` caps the process's data segment (RLIMIT_DATA: heap and private writable mappings,
not reserved address space, so threads still start) at the function's memory size; a handler that
goes over gets `Runtime.OutOfMemory` and the process exits, as Lambda replaces a container after an
out-of-memory error. `--strict-json` refuses results JSON cannot encode (`Runtime.MarshalError`).
Standard library only: it must not import the runtime (or anything else) before the handler.
"""

from __future__ import annotations

import importlib
import json
import os
import sys
import time
import traceback
from typing import Any

MARKER = "\x1e"


class LambdaContext:
    def __init__(self, request_id: str, deadline: float, arn: str) -> None:
        env = os.environ
        self.function_name = env.get("AWS_LAMBDA_FUNCTION_NAME", "")
        self.function_version = env.get("AWS_LAMBDA_FUNCTION_VERSION", "$LATEST")
        self.memory_limit_in_mb = int(env.get("AWS_LAMBDA_FUNCTION_MEMORY_SIZE", "128"))
        self.invoked_function_arn = arn
        self.log_group_name = env.get("AWS_LAMBDA_LOG_GROUP_NAME", "")
        self.log_stream_name = env.get("AWS_LAMBDA_LOG_STREAM_NAME", "")
        self.aws_request_id = request_id
        self.identity = None
        self.client_context = None
        self._deadline = deadline

    def get_remaining_time_in_millis(self) -> int:
        return max(0, int((self._deadline - time.time()) * 1000))


def _error(exc: BaseException, error_type: str | None = None) -> dict[str, Any]:
    return {
        "errorMessage": str(exc),
        "errorType": error_type or type(exc).__name__,
        "stackTrace": traceback.format_tb(exc.__traceback__),
    }


def _limit_memory(megabytes: int) -> None:
    import resource

    limit = megabytes * 1024 * 1024
    _soft, hard = resource.getrlimit(resource.RLIMIT_DATA)
    if hard != resource.RLIM_INFINITY:
        limit = min(limit, hard)
    resource.setrlimit(resource.RLIMIT_DATA, (limit, hard))


def _end_of_output(marker: str) -> None:
    """Flush what the handler wrote, then mark where it ends (the runtime waits for the mark)."""
    try:
        sys.stdout.flush()
        sys.stderr.flush()
    except (OSError, ValueError):
        pass
    os.write(2, f"{MARKER}{marker}\n".encode())


def _answers_channel(task_root: str) -> Any:
    """The original stdout, for answers; fd 1 then goes to stderr (the log stream) and the task
    root becomes the import root, like /var/task on Lambda."""
    out = os.fdopen(os.dup(1), "w", buffering=1)
    os.dup2(2, 1)  # handler output -> stderr (the log stream)
    sys.stdout = os.fdopen(1, "w", buffering=1)
    sys.path[0] = task_root  # this script's own directory is not importable
    # The project's editable install (make setup) would find a module the asset lacks in the
    # working tree; on Lambda there is only the asset.
    sys.meta_path[:] = [f for f in sys.meta_path if not getattr(f, "__module__", "").startswith("__editable__")]
    os.chdir(task_root)
    return out


def _import_handler(handler_spec: str) -> tuple[Any, dict[str, Any] | None]:
    """The handler, or the init error every invocation answers with, as Lambda's runtime does."""
    module_name, _, function_name = handler_spec.rpartition(".")
    module_name = module_name.replace("/", ".")  # Lambda accepts "dir/module.function" too
    try:
        return getattr(importlib.import_module(module_name), function_name), None
    except Exception as exc:
        kind = "Runtime.ImportModuleError" if isinstance(exc, ImportError) else "Runtime.HandlerNotFound"
        print(f"[ERROR] {kind}: Unable to import module '{module_name}': {exc}", file=sys.stderr, flush=True)
        return None, _error(exc, kind)


def _invoke(handler: Any, request: dict[str, Any], *, strict: bool) -> tuple[dict[str, Any], bool]:
    """The answer to one request, and whether the process must exit after it (out of memory)."""
    try:
        result = handler(request["event"], LambdaContext(request["request_id"], request["deadline"], request["arn"]))
        marshal_error = _marshal_error(result) if strict else None
        if marshal_error is not None:
            return {"error": marshal_error}, False
        return {"result": result}, False
    except MemoryError:
        message = f"RequestId: {request['request_id']} Error: Runtime exited with error: signal: killed"
        return {"error": {"errorType": "Runtime.OutOfMemory", "errorMessage": message}}, True
    except Exception as exc:
        error = _error(exc)
        print(f"[ERROR] {error['errorType']}: {error['errorMessage']}", file=sys.stderr)
        traceback.print_exc()
        return {"error": error}, False


def _marshal_error(result: Any) -> dict[str, Any] | None:
    """Lambda's answer to a result JSON cannot encode, or None."""
    try:
        json.dumps(result)
    except (TypeError, ValueError) as exc:
        error = _error(exc, "Runtime.MarshalError")
        error["errorMessage"] = f"Unable to marshal response: {exc}"
        error["stackTrace"] = []
        return error
    return None


def main() -> None:
    handler_spec, task_root = sys.argv[1], sys.argv[2]
    options = sys.argv[3:]
    strict = "--strict-json" in options
    if "--memory-mb" in options:
        _limit_memory(int(options[options.index("--memory-mb") + 1]))
    out = _answers_channel(task_root)
    handler, init_error = _import_handler(handler_spec)
    _end_of_output("init")
    out.write(json.dumps({"ready": init_error is None}) + "\n")

    for line in sys.stdin:
        request = json.loads(line)
        os.environ["_X_AMZN_TRACE_ID"] = request["trace_id"]
        started = time.time()
        answer: dict[str, Any] = {"error": init_error}
        exit_after = False
        if handler is not None:
            answer, exit_after = _invoke(handler, request, strict=strict)
        answer["duration_ms"] = round((time.time() - started) * 1000, 2)
        answer["id"] = request["id"]
        _end_of_output(request["id"])
        out.write(json.dumps(answer, default=str) + "\n")
        if exit_after:
            out.flush()
            os._exit(1)


if __name__ == "__main__":
    main()
