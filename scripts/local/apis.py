"""What the HTTP and WebSocket servers share: the Api model read from the templates (routes,
integrations, authorizers, stage, CORS), the event loop thread they run on, and a listening-site
helper."""

from __future__ import annotations

import asyncio
import logging
import re
import threading
from collections.abc import Coroutine
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any, TypeVar

from aiohttp import web
from aiohttp.http_exceptions import HttpProcessingError

from scripts.local.assembly import Resource
from scripts.local.intrinsics import Resolver

T = TypeVar("T")
_FUNCTION_IN_URI = re.compile(r"functions/(arn:[^/]+)/invocations")


class PortInUse(OSError):
    pass


@dataclass
class Authorizer:
    """An `AWS::ApiGatewayV2::Authorizer` (REQUEST authorizers run locally; JWT ones do not)."""

    id: str
    name: str
    type: str  # REQUEST or JWT
    function: str | None  # the authorizer function's ARN
    identity_sources: list[str]  # "$request.header.Authorization", "$request.querystring.key", ...
    ttl: int  # AuthorizerResultTtlInSeconds; 0 = no caching
    payload_version: str = "2.0"
    simple_responses: bool = False


@dataclass
class Route:
    key: str  # "GET /sessions/{id}", "$default", "$connect", "ANY /{proxy+}"
    function: str | None  # function ARN, None for non-Lambda integrations
    payload_version: str = "2.0"
    authorization: str = "NONE"
    returns_response: bool = False
    authorizer: Authorizer | None = None


@dataclass
class Api:
    resource: Resource
    id: str
    name: str
    protocol: str  # HTTP or WEBSOCKET
    stage: str = "$default"
    route_selection: str = "$request.method $request.path"
    cors: dict[str, Any] | None = None
    routes: list[Route] = field(default_factory=list)
    port: int = 0

    @property
    def address(self) -> str:
        return f"127.0.0.1:{self.port}"


def read_apis(resolver: Resolver) -> list[Api]:
    """Every AWS::ApiGatewayV2::Api with its routes, in template order (HTTP first: stable ports)."""
    apis = _read_api_resources(resolver)
    _apply_stages(resolver, apis)
    _add_routes(resolver, apis, _read_integrations(resolver), _read_authorizers(resolver))
    return sorted(apis.values(), key=lambda a: a.protocol != "HTTP")  # stable sort keeps template order


def _read_api_resources(resolver: Resolver) -> dict[str, Api]:
    apis: dict[str, Api] = {}
    for resource in resolver.assembly.resources("AWS::ApiGatewayV2::Api"):
        if not resolver.exists(resource):
            continue
        props = resolver.resolve(resource.properties, resource.stack)
        api_id = resolver.name(resource)
        apis[api_id] = Api(
            resource=resource,
            id=api_id,
            name=str(props.get("Name", resource.logical_id)),
            protocol=str(props.get("ProtocolType", "HTTP")),
            route_selection=str(props.get("RouteSelectionExpression", "$request.method $request.path")),
            cors=props.get("CorsConfiguration"),
        )
    return apis


def _apply_stages(resolver: Resolver, apis: dict[str, Api]) -> None:
    """Each API's stage: a named stage wins over `$default`."""
    for resource in resolver.assembly.resources("AWS::ApiGatewayV2::Stage"):
        props = resolver.resolve(resource.properties, resource.stack)
        api = apis.get(str(props.get("ApiId")))
        if api is not None and (api.stage == "$default" or props.get("StageName") != "$default"):
            api.stage = str(props.get("StageName", "$default"))


def _read_integrations(resolver: Resolver) -> dict[str, dict[str, Any]]:
    """Integration properties by integration id."""
    return {
        resolver.ref(resource): resolver.resolve(resource.properties, resource.stack)
        for resource in resolver.assembly.resources("AWS::ApiGatewayV2::Integration")
    }


def _read_authorizers(resolver: Resolver) -> dict[str, Authorizer]:
    authorizers: dict[str, Authorizer] = {}
    for resource in resolver.assembly.resources("AWS::ApiGatewayV2::Authorizer"):
        props = resolver.resolve(resource.properties, resource.stack)
        sources = props.get("IdentitySource") or []
        authorizer_id = resolver.ref(resource)
        authorizers[authorizer_id] = Authorizer(
            id=authorizer_id,
            name=str(props.get("Name", resource.logical_id)),
            type=str(props.get("AuthorizerType", "REQUEST")),
            function=_function_in_uri(str(props.get("AuthorizerUri", ""))),
            identity_sources=[str(s).strip() for s in ([sources] if isinstance(sources, str) else sources)],
            ttl=int(props.get("AuthorizerResultTtlInSeconds", 300 if "IdentitySource" in props else 0)),
            payload_version=str(props.get("AuthorizerPayloadFormatVersion", "2.0")),
            simple_responses=bool(props.get("EnableSimpleResponses", False)),
        )
    return authorizers


def _add_routes(
    resolver: Resolver,
    apis: dict[str, Api],
    integrations: dict[str, dict[str, Any]],
    authorizers: dict[str, Authorizer],
) -> None:
    for resource in resolver.assembly.resources("AWS::ApiGatewayV2::Route"):
        props = resolver.resolve(resource.properties, resource.stack)
        api = apis.get(str(props.get("ApiId")))
        if api is None:
            continue
        integration = integrations.get(str(props.get("Target", "")).removeprefix("integrations/"), {})
        api.routes.append(
            Route(
                key=str(props["RouteKey"]),
                function=_function_in_uri(str(integration.get("IntegrationUri", ""))),
                payload_version=str(
                    integration.get("PayloadFormatVersion", "2.0" if api.protocol == "HTTP" else "1.0")
                ),
                authorization=str(props.get("AuthorizationType", "NONE")),
                returns_response=bool(props.get("RouteResponseSelectionExpression")),
                authorizer=authorizers.get(str(props.get("AuthorizerId", ""))),
            )
        )


def _function_in_uri(uri: str) -> str | None:
    """The Lambda function an integration or authorizer URI invokes (its ARN or its name)."""
    match = _FUNCTION_IN_URI.search(uri)
    return match.group(1) if match else (uri if uri.startswith("arn:aws:lambda:") else None)


class LoopThread:
    """One asyncio loop in a background thread for every server; blocking work goes to an executor.

    Each function gets its own threads (`executor_for`): a caller waiting for a busy function (a
    tunnel's forwarder holding its workers while the agent answers) then never takes the threads
    another function needs (the tunnel's response handler, whose answers the forwarder waits for),
    nor those of other APIs. `executor` is for the rest."""

    THREADS_PER_FUNCTION = 64

    def __init__(self) -> None:
        self.loop = asyncio.new_event_loop()
        self.executor = ThreadPoolExecutor(max_workers=32, thread_name_prefix="api-invoke")
        self._executors: dict[str, ThreadPoolExecutor] = {}
        self._lock = threading.Lock()
        self._thread = threading.Thread(target=self.loop.run_forever, name="api-loop", daemon=True)
        self._thread.start()

    def executor_for(self, function: str) -> ThreadPoolExecutor:
        with self._lock:
            executor = self._executors.get(function)
            if executor is None:
                name = function.rsplit(":", 1)[-1][:24]
                executor = ThreadPoolExecutor(max_workers=self.THREADS_PER_FUNCTION, thread_name_prefix=f"fn-{name}")
                self._executors[function] = executor
            return executor

    def run(self, coro: Coroutine[Any, Any, T], timeout: float = 30) -> T:
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result(timeout)

    def stop(self) -> None:
        self.loop.call_soon_threadsafe(self.loop.stop)
        self._thread.join(timeout=5)
        with self._lock:
            executors = [self.executor, *self._executors.values()]
        for executor in executors:
            executor.shutdown(wait=False, cancel_futures=True)
        if not self.loop.is_running():
            self.loop.close()


class _OneLineLogger(logging.LoggerAdapter):
    """aiohttp's server logger, but a request it cannot parse (a 20,000-character URL, a bad
    header) is one line instead of a traceback: the client already got aiohttp's 400."""

    def exception(self, msg: object, *args: Any, exc_info: Any = True, **kwargs: Any) -> None:
        error = exc_info if isinstance(exc_info, BaseException) else None
        if isinstance(error, HttpProcessingError):
            text = str(error.message).split(":")[0]
            self.logger.warning("refused a malformed request: %s %s", error.code, text)
            return
        self.logger.exception(msg, *args, exc_info=exc_info, **kwargs)


async def serve(app: web.Application, port: int, **handler_args: Any) -> web.AppRunner:
    runner = web.AppRunner(
        app,
        access_log=None,
        handle_signals=False,
        shutdown_timeout=1,
        logger=_OneLineLogger(logging.getLogger("aiohttp.server"), {}),
        **handler_args,
    )
    await runner.setup()
    try:
        await web.TCPSite(runner, "127.0.0.1", port, reuse_address=True).start()
    except OSError as exc:
        await runner.cleanup()
        raise PortInUse(f"port {port} is already in use ({exc.strerror})") from None
    return runner
