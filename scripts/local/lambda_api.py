"""The Lambda API on its own port (`LocalRuntime.lambda_url`), for boto3's Lambda client.

Every control-plane request (CreateFunction, UpdateFunctionCode, PublishVersion, CreateAlias,
PutFunctionConcurrency, TagResource, GetFunction for the waiters...) goes unchanged to moto and
moto's answer comes back. `Invoke` is served here, as Lambda serves it:

- the function is the templates' (run by the `Invoker`) or one created at run time (moto's
  backend, run by `UserFunctions` in a worker process); an alias picks a version by its weights;
- `RequestResponse`: 200 with the payload and `X-Amz-Executed-Version`; a function error adds
  `X-Amz-Function-Error: Unhandled` and the payload is `{"errorMessage", "errorType",
  "stackTrace"}` (a timeout: `Sandbox.Timedout`, "Task timed out after N.NN seconds");
  `LogType=Tail` adds `X-Amz-Log-Result`, the last 4 KB of the invocation's log, base64;
- `Event`: 202, then the function runs with the retries, maximum event age and destinations of
  its event invoke config (PutFunctionEventInvokeConfig), Lambda's defaults without one (2 retries);
- `DryRun`: 204 without running;
- errors in Lambda's shape, so boto3 raises the same exceptions: unknown function or qualifier
  404 ResourceNotFoundException, payload over 6 MB (1 MB for `Event`) 413
  RequestTooLargeException, a payload that is not JSON 400 InvalidRequestContentException,
  reserved concurrency 0 429 TooManyRequestsException.

Not emulated: IAM (any caller may invoke anything), ClientContext, response streaming, function
URLs, layers, SnapStart, provisioned concurrency, throttling beyond reserved concurrency 0 (calls
over a function's concurrency wait for a worker instead of getting 429), a dead-letter queue in a
function's own configuration (moto does not keep it; event invoke config destinations work).
"""

from __future__ import annotations

import base64
import json
import time
import uuid
from typing import Any
from urllib.parse import unquote

import aiohttp
from aiohttp import web
from yarl import URL

from scripts.local.apis import LoopThread, serve
from scripts.local.functions import Invocation, InvokeError
from scripts.local.invoke import Invoker, record
from scripts.local.user_functions import (
    BadRequest,
    CodeError,
    FunctionNotFound,
    Target,
    Unsupported,
    UserFunctions,
    report_lines,
    split_name,
)

SYNC_PAYLOAD_LIMIT = 6 * 1024 * 1024
ASYNC_PAYLOAD_LIMIT = 1024 * 1024
RESPONSE_LIMIT = 6 * 1024 * 1024
TAIL_BYTES = 4096
_HOP_HEADERS = {"host", "content-length", "transfer-encoding", "connection", "keep-alive", "expect"}


def _error(status: int, kind: str, message: str, request_id: str, **extra: Any) -> web.Response:
    body = {"Type": "User" if status < 500 else "Service", "message": message, **extra}
    return web.json_response(body, status=status, headers={"x-amzn-ErrorType": kind, "x-amzn-RequestId": request_id})


def _tail(lines: list[str]) -> str:
    text = ("\n".join(lines) + "\n").encode()
    return base64.b64encode(text[-TAIL_BYTES:]).decode()


class LambdaApiServer:
    def __init__(
        self,
        port: int,
        moto_url: str,
        invoker: Invoker,
        functions: UserFunctions,
        loop: LoopThread,
        retry_delay: float = 1.0,
    ) -> None:
        self.port = port
        self.moto_url = moto_url
        self.invoker = invoker
        self.functions = functions
        self.loop = loop
        self.retry_delay = retry_delay
        self._runner: web.AppRunner | None = None
        self._session: aiohttp.ClientSession | None = None

    async def start(self) -> None:
        app = web.Application(client_max_size=128 * 1024 * 1024)  # CreateFunction with a 50 MB ZipFile, base64
        app.router.add_route("*", "/{tail:.*}", self.handle)
        self._session = aiohttp.ClientSession(auto_decompress=False, timeout=aiohttp.ClientTimeout(total=120))
        self._runner = await serve(app, self.port)

    async def stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()
        if self._session is not None:
            await self._session.close()

    async def handle(self, request: web.Request) -> web.StreamResponse:
        parts = request.rel_url.raw_path.strip("/").split("/")
        if request.method == "POST" and len(parts) == 4 and parts[1] == "functions":
            if parts[0] == "2015-03-31" and parts[3] == "invocations":
                return await self.invoke(request, unquote(parts[2]))
            if parts[0] == "2014-11-13" and parts[3] == "invoke-async":  # InvokeAsync (deprecated): Event
                return await self.invoke(request, unquote(parts[2]), legacy_async=True)
        response = await self.proxy(request)
        if request.method != "GET" and response.status < 300:
            # A function, version or alias changed or went: its warm workers may be stale.
            await self.loop.loop.run_in_executor(self.loop.executor, self.functions.sweep)
        return response

    async def proxy(self, request: web.Request) -> web.Response:
        assert self._session is not None
        headers = {k: v for k, v in request.headers.items() if k.lower() not in _HOP_HEADERS}
        async with self._session.request(
            request.method,
            URL(self.moto_url + request.raw_path, encoded=True),
            headers=headers,
            data=await request.read(),
            allow_redirects=False,
        ) as answer:
            body = await answer.read()
            response = web.Response(status=answer.status, body=body)
            for key, value in answer.headers.items():
                if key.lower() not in _HOP_HEADERS and key.lower() != "content-type":
                    response.headers.add(key, value)
            if "Content-Type" in answer.headers:
                response.content_type = answer.content_type
                if answer.charset:
                    response.charset = answer.charset
            return response

    # --- Invoke ------------------------------------------------------------------------------
    async def invoke(self, request: web.Request, name: str, legacy_async: bool = False) -> web.StreamResponse:
        request_id = str(uuid.uuid4())
        kind = "Event" if legacy_async else request.headers.get("X-Amz-Invocation-Type", "RequestResponse")
        if kind not in ("RequestResponse", "Event", "DryRun"):
            return _error(400, "InvalidParameterValueException", f"Unsupported invocation type {kind}", request_id)
        body = await request.read()
        limit = ASYNC_PAYLOAD_LIMIT if kind == "Event" else SYNC_PAYLOAD_LIMIT
        if len(body) > limit:
            return _error(
                413,
                "RequestTooLargeException",
                f"Request must be smaller than {limit} bytes for the InvokeFunction operation",
                request_id,
            )
        try:
            event = json.loads(body) if body.strip() else {}
        except ValueError as exc:
            return _error(
                400,
                "InvalidRequestContentException",
                f"Could not parse request body into json: Could not parse payload into json: {exc}",
                request_id,
            )
        qualifier = request.query.get("Qualifier") or None
        tail = request.headers.get("X-Amz-Log-Type") == "Tail" and kind == "RequestResponse"
        started = time.time()
        try:
            response = await self.loop.loop.run_in_executor(
                self.loop.executor, self._invoke, name, qualifier, kind, event, request_id, tail
            )
        except FunctionNotFound as exc:
            response = _error(404, "ResourceNotFoundException", str(exc), request_id)
        except BadRequest as exc:
            response = _error(400, "InvalidParameterValueException", str(exc), request_id)
        except CodeError as exc:
            response = _error(
                502, "InvalidZipFileException", f"Lambda was unable to unzip the deployment package: {exc}", request_id
            )
        except (Unsupported, InvokeError) as exc:
            response = _error(500, "ServiceException", str(exc), request_id)
        if legacy_async and response.status == 202:
            response = web.json_response({"Status": 202}, status=202, headers={"x-amzn-RequestId": request_id})
        self.invoker.trace(
            "lambda",
            {
                "function": split_name(name, None)[0] if ":" in name else name,
                "qualifier": qualifier or "",
                "type": kind,
                "status": response.status,
                "version": response.headers.get("X-Amz-Executed-Version", ""),
                "error": response.headers.get("X-Amz-Function-Error", response.headers.get("x-amzn-ErrorType", "")),
                "ms": round((time.time() - started) * 1000),
            },
        )
        return response

    def _invoke(
        self, name: str, qualifier: str | None, kind: str, event: Any, request_id: str, tail: bool
    ) -> web.Response:
        """Blocking: runs on the loop's executor."""
        function, qualifier = split_name(name, qualifier)
        spec = self.invoker.function_for(function) if self.invoker.function_for(name.split(":function:")[-1]) else None
        if spec is None and not self.functions.exists(function) and self.invoker.function_for(function) is not None:
            spec = self.invoker.function_for(function)
        if spec is not None:
            if qualifier not in (None, "$LATEST"):
                raise FunctionNotFound(f"Function not found: {spec.arn}:{qualifier}")
            return self._invoke_declared(spec.name, kind, event, request_id, tail, int(spec.extra.get("memory", 128)))
        target = self.functions.find(function, qualifier)
        headers = {"x-amzn-RequestId": request_id}
        if kind == "DryRun":
            return web.Response(status=204, headers=headers)
        if target.reserved == 0:
            return _error(
                429,
                "TooManyRequestsException",
                "Rate Exceeded.",
                request_id,
                Reason="ReservedFunctionConcurrentInvocationLimitExceeded",
            )
        if kind == "Event":
            self.invoker.submit(self._run_async, target, event, request_id, time.time())
            return web.Response(status=202, headers=headers)
        invocation, lines = self.functions.invoke(target, event, request_id)
        return self._answer(invocation, target.version, lines if tail else None, headers)

    def _invoke_declared(
        self, name: str, kind: str, event: Any, request_id: str, tail: bool, memory: int
    ) -> web.Response:
        headers = {"x-amzn-RequestId": request_id}
        if kind == "DryRun":
            return web.Response(status=204, headers=headers)
        if kind == "Event":
            self.invoker.invoke_async(name, event)
            return web.Response(status=202, headers=headers)
        invocation = self.invoker.invoke(name, event)
        headers["x-amzn-RequestId"] = invocation.request_id
        lines = [text for _, text in report_lines(invocation, "$LATEST", memory)] if tail else None
        return self._answer(invocation, "$LATEST", lines, headers)

    def _answer(
        self, invocation: Invocation, version: str, lines: list[str] | None, headers: dict[str, str]
    ) -> web.Response:
        headers = {**headers, "X-Amz-Executed-Version": version}
        if lines is not None:
            headers["X-Amz-Log-Result"] = _tail(lines)
        if invocation.failed:
            headers["X-Amz-Function-Error"] = "Unhandled"
            payload = json.dumps(_error_payload(invocation))
        else:
            payload = json.dumps(invocation.result, default=str)
            if len(payload) > RESPONSE_LIMIT:
                headers["X-Amz-Function-Error"] = "Unhandled"
                payload = json.dumps(
                    {
                        "errorMessage": f"Response payload size exceeded maximum allowed payload size "
                        f"({RESPONSE_LIMIT} bytes).",
                        "errorType": "Function.ResponseSizeTooLarge",
                    }
                )
        return web.Response(status=200, body=payload.encode(), content_type="application/json", headers=headers)

    # --- asynchronous invocations ------------------------------------------------------------
    def invoke_async(self, arn: str, event: Any) -> bool:
        """A destination or event source naming a function created at run time; False if unknown."""
        try:
            target = self.functions.find(arn)
        except (LookupError, BadRequest, Unsupported):
            return False
        self.invoker.submit(self._run_async, target, event, str(uuid.uuid4()), time.time())
        return True

    def _run_async(self, target: Target, event: Any, request_id: str, queued: float) -> None:
        attempts = 1 + target.retry_attempts
        invocation = Invocation(request_id)
        condition, done = "RetriesExhausted", 0
        while done < attempts:
            # Throttled (reserved concurrency 0) events are not held for their maximum age locally.
            if time.time() - queued > target.max_event_age or target.reserved == 0:
                condition = "EventAgeExceeded"
                break
            try:
                invocation, _ = self.functions.invoke(target, event, request_id)
            except (InvokeError, CodeError, Unsupported) as exc:
                if self.invoker.stopping:
                    return
                invocation = Invocation(request_id, error={"errorType": type(exc).__name__, "errorMessage": str(exc)})
            done += 1
            if not invocation.failed:
                if target.on_success:
                    self.invoker.deliver(
                        target.on_success,
                        record(target.arn, event, invocation, "Success", done, target.qualifier, target.version),
                    )
                return
            if done < attempts and self.invoker.wait_stopping(self.retry_delay * done):
                return
        self.invoker.trace("invoke.exhausted", {"function": target.name, "attempts": done, "condition": condition})
        if target.on_failure:
            self.invoker.deliver(
                target.on_failure,
                record(target.arn, event, invocation, condition, done, target.qualifier, target.version),
            )


def _error_payload(invocation: Invocation) -> dict[str, Any]:
    error = dict(invocation.error or {})
    payload: dict[str, Any] = {
        "errorMessage": str(error.get("errorMessage", "")),
        "errorType": str(error.get("errorType", "Unhandled")),
    }
    if "stackTrace" in error:
        payload["stackTrace"] = error["stackTrace"]
    if not payload["errorType"].startswith(("Sandbox.", "Runtime.")):
        payload["requestId"] = invocation.request_id
    return payload
