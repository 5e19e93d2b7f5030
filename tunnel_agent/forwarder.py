"""The agent's side of the local app: one tunnelled request replayed against it (blocking, in a
worker thread), and a large answer uploaded with the request's presigned POST form."""

from __future__ import annotations

import http.client
import os
import re
import select
import urllib.error
import urllib.request
from dataclasses import dataclass

from lambdas.tunnel import protocol as p
from tunnel_agent.inspector import DEFAULT_KEEP


@dataclass
class AgentConfig:
    url: str
    token: str
    port: int
    host: str = "127.0.0.1"
    scheme: str = "http"
    host_header: str | None = None  # None: keep the public Host; "rewrite": host:port; else a value
    subdomain: str | None = None
    replace: bool = False  # take the name over from another live agent (which is told and exits)
    concurrency: int = 16
    request_timeout: float = 25.0
    ping_interval: float = 300.0  # API Gateway drops connections idle for 10 minutes
    pong_timeout: float = 30.0
    rotate_after: float = 110 * 60.0  # API Gateway closes every connection after 2 hours
    drain_grace: float = 10.0
    max_backoff: float = 30.0
    handshake_timeout: float = 10.0
    stop_timeout: float = 5.0  # Ctrl-C: how long requests in flight may take to finish
    inspect_port: int | None = None  # the request inspector's first port to try; None: no inspector
    inspect_keep: int = DEFAULT_KEEP


class LocalForwarder:
    """Replays one HttpRequest against the local app (blocking; runs in a worker thread).

    http.client because it does exactly what it is told: no redirects, no decompression, the
    request target sent as given, every response header pair (each Set-Cookie) kept."""

    def __init__(self, config: AgentConfig) -> None:
        self.config = config

    def _host_header(self, original: str | None) -> str:
        target = f"{self.config.host}:{self.config.port}"
        if self.config.host_header == "rewrite" or (self.config.host_header is None and not original):
            return target
        return self.config.host_header or original or target

    def _headers(self, request: p.HttpRequest) -> tuple[str, p.Headers]:
        headers = p.strip_hop_by_hop(request.headers)
        lower = {k.lower(): v for k, v in headers}
        original_host = lower.get("host")
        out = [(k, v) for k, v in headers if k.lower() not in ("host", "content-length")]
        if "x-forwarded-for" not in lower and request.client_ip:
            out.append(("X-Forwarded-For", request.client_ip))
        if "x-forwarded-proto" not in lower:
            out.append(("X-Forwarded-Proto", "https"))
        if "x-forwarded-host" not in lower and original_host:
            out.append(("X-Forwarded-Host", original_host))
        return self._host_header(original_host), out

    def forward(self, request: p.HttpRequest) -> p.Message:
        """The app's answer as the tunnel takes it (a large body uploaded), or an Error."""
        answer = self.answer(request)
        return self.deliverable(request, answer) if isinstance(answer, p.HttpResponse) else answer

    def answer(self, request: p.HttpRequest) -> p.HttpResponse | p.Error:
        """The app's whole answer, or an Error. A body that came through S3 is fetched first and
        kept on the request (the inspector shows it and Replay sends it again)."""
        try:
            if request.body_url:
                with urllib.request.urlopen(request.body_url, timeout=30) as got:  # noqa: S310 - presigned S3 GET
                    request.body, request.body_url = got.read(p.MAX_BODY_BYTES + 1), None
            return self._call_app(request, request.body)
        except (OSError, http.client.HTTPException) as exc:
            kind = "upstream_timeout" if isinstance(exc, TimeoutError) else "upstream_unreachable"
            return p.Error(code=kind, message=f"{type(exc).__name__}: {exc}", request_id=request.request_id)
        except Exception as exc:  # a bad header value, say: answer instead of leaving the client hanging
            return p.Error(code="agent_error", message=f"{type(exc).__name__}: {exc}", request_id=request.request_id)

    def deliverable(self, request: p.HttpRequest, app_response: p.HttpResponse) -> p.Message:
        """The response message: inline, or with its body uploaded through the presigned POST."""
        response = p.HttpResponse(**vars(app_response))  # the app's answer stays whole for the inspector
        if not p.fits_inline(response):
            if not request.response_upload_url or request.response_upload_fields is None:
                return p.Error("response_too_large", "no upload form for a large body", request.request_id)
            try:
                upload_form(request.response_upload_url, request.response_upload_fields, response.body)
            except UploadRefused as exc:
                code = "response_too_large" if exc.code == "EntityTooLarge" else "upload_refused"
                return p.Error(code, str(exc), request.request_id)
            except OSError as exc:
                return p.Error("upload_failed", f"{type(exc).__name__}: {exc}", request.request_id)
            response.body, response.body_in_bucket = b"", True
        return response

    def _call_app(self, request: p.HttpRequest, body: bytes) -> p.HttpResponse:
        host_header, headers = self._headers(request)
        cls = http.client.HTTPSConnection if self.config.scheme == "https" else http.client.HTTPConnection
        conn = cls(self.config.host, self.config.port, timeout=self.config.request_timeout)
        try:
            conn.putrequest(request.method, request.target, skip_host=True, skip_accept_encoding=True)
            conn.putheader("Host", host_header)
            for name, value in headers:
                conn.putheader(name, value)
            if body or request.method in ("POST", "PUT", "PATCH"):
                conn.putheader("Content-Length", str(len(body)))
            conn.endheaders()
            self._send_body(conn, body)
            answer = conn.getresponse()
            data = answer.read(p.MAX_BODY_BYTES + 1)
            if len(data) > p.MAX_BODY_BYTES:
                return p.HttpResponse(
                    request.request_id, 502, [("content-type", "application/json")],
                    p.json_error("response body larger than the tunnel's 5 MiB limit"),
                )  # fmt: skip
            # Content-Length describes the body the gateway sends, except for HEAD, where it is
            # the size a GET would have (and there is no body to measure).
            keep_length = request.method == "HEAD"
            headers_out = [(k, v) for k, v in answer.getheaders() if keep_length or k.lower() != "content-length"]
            return p.HttpResponse(request.request_id, answer.status, p.strip_hop_by_hop(headers_out), data)
        finally:
            conn.close()

    @staticmethod
    def _send_body(conn: http.client.HTTPConnection, body: bytes) -> None:
        """Send the body in chunks, stopping early if the app has already answered (a 401, a 413,
        a redirect before reading an upload): its answer is what the client must get, and an app
        that closes after answering would otherwise turn it into a broken pipe."""
        sock = conn.sock
        view = memoryview(body)
        for start in range(0, len(body), 64 * 1024):
            if sock is None or select.select([sock], [], [], 0)[0]:
                return
            try:
                sock.sendall(view[start : start + 64 * 1024])
            except (BrokenPipeError, ConnectionResetError):
                return  # the app stopped reading: read whatever it answered


class UploadRefused(Exception):
    """S3 refused the upload form (EntityTooLarge past the policy's size bound, an expired form)."""

    def __init__(self, status: int, code: str, size: int) -> None:
        super().__init__(f"S3 refused the {size}-byte response body: HTTP {status} {code}")
        self.code = code


def upload_form(url: str, fields: dict[str, str], body: bytes) -> None:
    """POST `body` with the presigned form: multipart/form-data, every field before the file."""
    boundary = f"tunnel-{os.urandom(12).hex()}"
    parts = [
        f'--{boundary}\r\nContent-Disposition: form-data; name="{name}"\r\n\r\n{value}\r\n'.encode()
        for name, value in fields.items()
    ]
    head = f'--{boundary}\r\nContent-Disposition: form-data; name="file"; filename="body"\r\n'
    head += "Content-Type: application/octet-stream\r\n\r\n"
    data = b"".join([*parts, head.encode(), body, f"\r\n--{boundary}--\r\n".encode()])
    # `url` is the presigned POST the tunnel signed for this request (https on AWS).
    post = urllib.request.Request(  # noqa: S310 - the tunnel's presigned POST URL
        url, data=data, method="POST", headers={"Content-Type": f"multipart/form-data; boundary={boundary}"}
    )
    try:
        with urllib.request.urlopen(post, timeout=20) as done:  # noqa: S310 - the same presigned POST
            done.read()
    except urllib.error.HTTPError as exc:
        detail = exc.read(4096).decode("utf-8", "replace")
        match = re.search(r"<Code>([^<]+)</Code>", detail)
        raise UploadRefused(exc.code, match.group(1) if match else "error", len(body)) from None
