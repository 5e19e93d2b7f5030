"""moto in server mode, in this process, with hooks that see S3 writes and EventBridge PutEvents.

In-process hooks (not polling) keep the S3 upload -> handler latency at a few milliseconds: moto
calls `notifications.send_event` for every object it creates (PUT, POST form, copy, multipart),
and `EventsBackend.put_events` for every PutEvents call. moto's own targets stay untouched; rules
and notifications are dispatched by the runtime from the templates.

One fix to moto (5.2): FIFO queues keep their order when messages come back after their visibility
timeout. moto counted a message group as in flight while any of its messages sat in its pending set,
even one visible again, so of two returning messages of one group the second was delivered first.
A group is in flight only while one of its messages is received and not yet visible again, as on
AWS; receiving starts by forgetting returned messages, so they come back together and in order.

One check moto (5.2) skips: a presigned POST form's signed policy. S3 refuses a form past its
expiry (403 AccessDenied) or a file outside its `content-length-range` (400 EntityTooLarge or
EntityTooSmall); the runtime does too, so size bounds the platform signs are enforced locally.
"""

from __future__ import annotations

import base64
import contextlib
import json
import threading
import warnings
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any
from urllib.request import Request, urlopen

from moto.events.models import EventsBackend
from moto.moto_server.werkzeug_app import DomainDispatcherApplication, MotoRequestHandler, create_backend_app
from moto.s3 import notifications as s3_notifications
from moto.s3.responses import S3Response
from moto.sqs.models import Queue, SQSBackend
from werkzeug.serving import BaseWSGIServer, make_server

from scripts.local import dynamodb_transactions

# (bucket name, key, size, etag, event name like "ObjectCreated:Post")
S3Listener = Callable[[str, str, int, str, str], None]
# (bus name, event entry as PutEvents received it, event id)
EventsListener = Callable[[str, dict[str, Any], str], None]

_s3_listeners: list[S3Listener] = []
_events_listeners: list[EventsListener] = []
_installed = False
_lock = threading.Lock()


def _install_hooks() -> None:
    global _installed
    with _lock:
        if _installed:
            return
        _installed = True
    original_send = s3_notifications.send_event

    def send_event(account_id: str, event_name: Any, bucket: Any, key: Any) -> None:
        original_send(account_id, event_name, bucket, key)
        name = str(getattr(event_name, "value", event_name)).removeprefix("s3:")
        for listener in list(_s3_listeners):
            listener(bucket.name, key.name, int(key.size), key.etag.strip('"'), name)

    s3_notifications.send_event = send_event
    original_put = EventsBackend.put_events

    def put_events(self: EventsBackend, events: list[dict[str, Any]]) -> list[dict[str, Any]]:
        entries = original_put(self, events)
        for event, entry in zip(events, entries, strict=False):
            if "EventId" in entry:
                bus = self._normalize_event_bus_arn(event.get("EventBusName"))
                for listener in list(_events_listeners):
                    listener(bus, event, entry["EventId"])
        return entries

    EventsBackend.put_events = put_events  # type: ignore[method-assign]
    dynamodb_transactions.install()
    _fix_fifo_order()
    _check_post_policies()


def _fix_fifo_order() -> None:
    def pending_message_groups(self: Queue) -> set[str]:
        return {m.group_id for m in self._pending_messages if m.group_id is not None and not m.visible}

    Queue.pending_message_groups = property(pending_message_groups)  # type: ignore[assignment,method-assign]
    original_receive = SQSBackend.receive_message

    def receive_message(self: SQSBackend, queue_name: str, *args: Any, **kwargs: Any) -> Any:
        queue = self.get_queue(queue_name)
        if queue.fifo_queue:
            for message in [m for m in queue._pending_messages if m.visible]:
                queue._pending_messages.discard(message)
        return original_receive(self, queue_name, *args, **kwargs)

    SQSBackend.receive_message = receive_message  # type: ignore[method-assign]


def post_policy_refusal(policy_field: str | None, size: int, now: datetime | None = None) -> tuple[int, str] | None:
    """(status, S3 error code) for a POST form S3 would refuse, else None (no policy: not a form)."""
    if not policy_field:
        return None
    try:
        policy = json.loads(base64.b64decode(policy_field))
        expires = datetime.fromisoformat(str(policy["expiration"]).replace("Z", "+00:00"))
    except (ValueError, KeyError, TypeError):
        return 400, "InvalidPolicyDocument"
    if expires <= (now or datetime.now(UTC)):
        return 403, "AccessDenied"
    for condition in policy.get("conditions", []):
        if isinstance(condition, list) and len(condition) == 3 and condition[0] == "content-length-range":
            if size > int(condition[2]):
                return 400, "EntityTooLarge"
            if size < int(condition[1]):
                return 400, "EntityTooSmall"
    return None


def _check_post_policies() -> None:
    original = S3Response._bucket_response_post

    def bucket_post(self: S3Response, request: Any, bucket_name: str) -> Any:
        form = self.querystring.get("Policy") or self.querystring.get("policy")
        body = self.body.encode() if isinstance(self.body, str) else (self.body or b"")
        refusal = post_policy_refusal(form[0] if form else None, len(body))
        if refusal is None:
            return original(self, request, bucket_name)
        status, code = refusal
        xml = f'<?xml version="1.0" encoding="UTF-8"?><Error><Code>{code}</Code><Message>Invalid according to Policy</Message></Error>'
        return status, {"Content-Type": "application/xml"}, xml

    S3Response._bucket_response_post = bucket_post  # type: ignore[method-assign]


class _QuietHandler(MotoRequestHandler):
    def log_request(self, *args: Any, **kwargs: Any) -> None:  # werkzeug's access log would drown the function logs
        pass


class MotoServer:
    def __init__(self, host: str, port: int) -> None:
        self.host = host
        self.port = port
        self.url = f"http://{host}:{port}"
        self._server: BaseWSGIServer | None = None
        self._thread: threading.Thread | None = None
        self._listeners: list[tuple[list[Any], Any]] = []

    def start(self) -> None:
        _install_hooks()
        app = DomainDispatcherApplication(create_backend_app)
        # Bound here, in the caller's thread, so a port in use raises at once.
        self._server = make_server(self.host, self.port, app, threaded=True, request_handler=_QuietHandler)
        self._thread = threading.Thread(target=self._server.serve_forever, name="moto", daemon=True)
        self._thread.start()
        self.reset()  # moto's state is per process: a previous runtime in this process left some

    def reset(self) -> None:
        with urlopen(Request(f"{self.url}/moto-api/reset", method="POST", data=b""), timeout=10) as response:
            response.read()

    def publish_outputs(self, outputs: dict[str, dict[str, Any]], cloudformation: Any) -> None:
        """Register each stack in moto's CloudFormation with its local outputs only (no resources
        are created from it), so `describe_stacks` answers operator commands as it does on AWS."""
        for stack, values in outputs.items():
            template = {
                # CloudFormation needs one resource; moto only notes that it does not model this type.
                "Resources": {"Outputs": {"Type": "AWS::CloudFormation::WaitConditionHandle"}},
                "Outputs": {name: {"Value": str(value)} for name, value in values.items()},
            }
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                cloudformation.create_stack(StackName=stack, TemplateBody=json.dumps(template))

    def on_s3_object(self, listener: S3Listener) -> None:
        _s3_listeners.append(listener)
        self._listeners.append((_s3_listeners, listener))

    def on_put_events(self, listener: EventsListener) -> None:
        _events_listeners.append(listener)
        self._listeners.append((_events_listeners, listener))

    def stop(self) -> None:
        for registry, listener in self._listeners:
            if listener in registry:
                registry.remove(listener)
        self._listeners.clear()
        if self._server is not None:
            with contextlib.suppress(OSError):
                self.reset()
            self._server.shutdown()
            self._server.server_close()
            self._server = None
        if self._thread is not None:
            self._thread.join(timeout=5)
            self._thread = None


def detail_json(event: dict[str, Any]) -> Any:
    try:
        return json.loads(event.get("Detail") or "{}")
    except ValueError:
        return {}
