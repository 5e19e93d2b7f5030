"""Functions CLI: deploy, version, promote and invoke your organization's Python functions.

    export FUNCTIONS_API_URL=https://ID.execute-api.REGION.amazonaws.com FUNCTIONS_API_KEY=fk... FUNCTIONS_ORG=acme
    platform-functions create hello --source hello.py          # one file: sent inline
    platform-functions update hello --source ./hello/ --memory 256   # a directory: zipped, uploaded
    platform-functions invoke hello --qualifier draft --payload '{"name": "Ana"}'
    platform-functions publish hello && platform-functions promote hello 1
    platform-functions list | show NAME | versions NAME | rollback NAME | delete NAME --yes
    platform-functions invoke hello --async --wait --idempotency-key order-17   # or --dry-run
    platform-functions batch hello --payloads events.jsonl --wait              # at most 25
    platform-functions invocations hello | invocation ID | logs hello --follow
    platform-functions run grader --subject essay-9 --input @essay.json && results grader essay-9 --verify
    platform-functions audit | usage

(`make setup` installs `platform-functions` into .venv/bin; `python scripts/functions.py ARGS` is the
same command.)

`--api`, `--key` and `--org` may be given before or after the command, or as the environment
variables above; keys come from `functions-keys` (an operator's command). Commands that
change a function wait for the platform to finish (`--no-wait` skips, `--wait-timeout` bounds it),
showing progress on stderr; results go to stdout, as JSON with `--json`. Every error is one line on
stderr: exit 1 for errors from the API or in what was asked, 2 for a malformed command line, 130
when interrupted. Standard library only, so it starts fast.
"""

from __future__ import annotations

import argparse
import datetime as dt
import email.utils
import http.client
import io
import json
import os
import re
import sys
import time
import urllib.error
import urllib.parse
import urllib.request
import uuid
import zipfile
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TextIO

from lambdas.functions.names import FUNCTION_NAME_PATTERN, LIVE_ALIAS, ORG_PATTERN  # standard library only

EXIT_ERROR = 1
EXIT_USAGE = 2
EXIT_INTERRUPTED = 130

PROG = "platform-functions"  # the console script (pyproject), named in --help and in printed hints

ENV_API_URL = "FUNCTIONS_API_URL"
ENV_API_KEY = "FUNCTIONS_API_KEY"
ENV_ORG = "FUNCTIONS_ORG"

DEFAULT_HANDLER = "main.handler"
MAX_INLINE_SOURCE_BYTES = 256 * 1024  # the API's limit for `source`; bigger files go as a zip
REQUEST_TIMEOUT = 35.0  # API Gateway answers within 30 s, invocations included
UPLOAD_TIMEOUT = 300.0
WAIT_TIMEOUT = 300.0
POLL_INTERVAL = 1.0
INVOCATION_WAIT_TIMEOUT = 900.0  # Lambda's longest run, plus time in the queue
FOLLOW_INTERVAL = 2.0  # `logs --follow` looks for new invocations this often
FOLLOW_PAGE = 50  # newest invocations listed per `logs --follow` poll
PAGE_SIZE = 100
MAX_BATCH = 25  # the API's limit on one batch's payloads
MAX_IDEMPOTENCY_KEY = 128
PENDING_INVOCATION = ("queued", "running")
FAILED_INVOCATION = ("failed", "timed_out")

# Zips are reproducible: the same tree gives the same bytes (so the same code SHA-256, so an
# unchanged publish is recognised as unchanged), whatever the files' times, modes or walk order.
ZIP_DATE_TIME = (1980, 1, 1, 0, 0, 0)
ZIP_FILE_MODE = 0o100644
ZIP_SKIP_DIRS = frozenset({"__pycache__", ".git"})
ZIP_SKIP_SUFFIXES = (".pyc",)

_MODULE = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*(\.[A-Za-z_][A-Za-z0-9_]*)*$")
_INVOCATION_ID = re.compile(r"^iv[0-9A-Za-z]{1,62}$")
_HANDLER = re.compile(r"^([A-Za-z_][A-Za-z0-9_]*(?:\.[A-Za-z_][A-Za-z0-9_]*)*)\.([A-Za-z_][A-Za-z0-9_]*)$")


class CliError(Exception):
    """A problem worth one line to the user (exit 1)."""


class ApiError(CliError):
    def __init__(self, status: int, message: str, retry_after: str | None = None) -> None:
        super().__init__(f"{message} (HTTP {status})" + (f"; retry after {retry_after}" if retry_after else ""))
        self.status = status
        self.retry_after = retry_after


class Interrupted(KeyboardInterrupt):
    """Ctrl-C with a better last line than the default one (what goes on, and how to see it)."""


def one_line(text: str, limit: int = 300) -> str:
    text = " ".join(str(text).split())
    return text if len(text) <= limit else text[: limit - 3] + "..."


# --- HTTP ----------------------------------------------------------------------------------------


def _error_message(status: int, reason: str, raw: bytes) -> str:
    """The message of an error answer: the API's `{"error"}`, API Gateway's `{"message"}`, S3's
    XML `<Code>`/`<Message>`, else the status reason and the start of the body."""
    text = raw.decode("utf-8", "replace")
    try:
        payload = json.loads(text)
    except ValueError:
        payload = None
    message = ""
    if isinstance(payload, dict):
        message = str(payload.get("error") or payload.get("message") or payload.get("Message") or "")
    if not message:
        code, msg = re.search(r"<Code>(.*?)</Code>", text, re.S), re.search(r"<Message>(.*?)</Message>", text, re.S)
        if code or msg:
            message = ": ".join(m.group(1) for m in (code, msg) if m)
    if not message:
        message = " ".join(part for part in (reason, one_line(text, 120)) if part) or "no details"
    if status == 401:
        message += f"; pass --key or set {ENV_API_KEY}"
    elif status == 403 and message.lower() == "forbidden":
        message += f"; the key (--key or {ENV_API_KEY}) was refused"
    return one_line(message)


def _retry_after(value: str | None) -> str | None:
    """`Retry-After` (seconds or an HTTP date) as text for the error line: "17s"."""
    if not value or not value.strip():
        return None
    value = value.strip()
    if value.isdigit():
        return f"{int(value)}s"
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return one_line(value, 60)
    if when.tzinfo is None:
        when = when.replace(tzinfo=dt.UTC)
    return f"{max(0, round((when - dt.datetime.now(dt.UTC)).total_seconds()))}s"


def encode_multipart(fields: dict[str, str], data: bytes, filename: str, content_type: str) -> tuple[bytes, str]:
    """A multipart/form-data body as S3's POST upload wants it: every form field first, then the
    `file` part (S3 ignores anything after it). Returns (body, Content-Type header value)."""
    boundary = "functions-cli-" + uuid.uuid4().hex
    while boundary.encode() in data:  # vanishingly unlikely; never send a body that splits wrong
        boundary = "functions-cli-" + uuid.uuid4().hex
    parts: list[bytes] = []
    for name, value in fields.items():
        parts.append(f'--{boundary}\r\nContent-Disposition: form-data; name="{name}"\r\n\r\n{value}\r\n'.encode())
    parts.append(
        f'--{boundary}\r\nContent-Disposition: form-data; name="file"; filename="{filename}"\r\n'
        f"Content-Type: {content_type}\r\n\r\n".encode()
    )
    parts.append(data)
    parts.append(f"\r\n--{boundary}--\r\n".encode())
    return b"".join(parts), f"multipart/form-data; boundary={boundary}"


class ApiClient:
    """The Functions HTTP API over urllib: JSON in and out, errors as one-line `CliError`s."""

    def __init__(self, base_url: str, key: str, org: str, timeout: float = REQUEST_TIMEOUT) -> None:
        self.base_url = base_url.rstrip("/")
        self.key = key
        self.org = org
        self.timeout = timeout

    def path(self, *parts: str | int) -> str:
        """`/v1/orgs/{org}/{part}/...` with every part URL-quoted."""
        return "/".join(
            ["/v1/orgs", urllib.parse.quote(self.org, safe=""), *(urllib.parse.quote(str(p), safe="") for p in parts)]
        )

    def request(
        self,
        method: str,
        path: str,
        body: Any = None,
        query: dict[str, Any] | None = None,
        headers: dict[str, str] | None = None,
    ) -> Any:
        query = {k: v for k, v in (query or {}).items() if v is not None}
        url = self.base_url + path + ("?" + urllib.parse.urlencode(query) if query else "")
        headers = {
            "Authorization": f"Bearer {self.key}",
            "Accept": "application/json",
            "User-Agent": "functions-cli/1",
            **(headers or {}),
        }
        data = None
        if body is not None:
            data = json.dumps(body).encode()
            headers["Content-Type"] = "application/json"
        raw = self._send(urllib.request.Request(url, data=data, method=method, headers=headers), self.timeout)
        if not raw.strip():
            return None
        try:
            return json.loads(raw)
        except ValueError:
            raise CliError(
                f"the API answered {method} {path} with something that is not JSON: {one_line(raw.decode('utf-8', 'replace'), 120)}"
            ) from None

    def upload(self, url: str, fields: dict[str, str], data: bytes, filename: str = "code.zip") -> None:
        """POST `data` to a presigned S3 POST `url` with its `fields` (no API key: the URL is the grant)."""
        body, content_type = encode_multipart(fields, data, filename, "application/zip")
        headers = {"Content-Type": content_type, "User-Agent": "functions-cli/1"}
        self._send(urllib.request.Request(url, data=body, method="POST", headers=headers), UPLOAD_TIMEOUT)

    def _send(self, request: urllib.request.Request, timeout: float) -> bytes:
        target = f"{urllib.parse.urlsplit(request.full_url).scheme}://{urllib.parse.urlsplit(request.full_url).netloc}"
        try:
            with urllib.request.urlopen(request, timeout=timeout) as answer:
                return bytes(answer.read())
        except urllib.error.HTTPError as exc:
            try:
                raw = exc.read()
            except (OSError, http.client.HTTPException):
                raw = b""
            retry = _retry_after(exc.headers.get("Retry-After")) if exc.code == 429 and exc.headers else None
            raise ApiError(exc.code, _error_message(exc.code, str(exc.reason or ""), raw), retry) from None
        except urllib.error.URLError as exc:
            reason = exc.reason
            if isinstance(reason, TimeoutError):
                raise CliError(f"no answer from {target} within {timeout:g}s") from None
            text = reason.strerror if isinstance(reason, OSError) and reason.strerror else str(reason)
            raise CliError(f"cannot reach {target}: {one_line(text)}") from None
        except TimeoutError:
            raise CliError(f"no answer from {target} within {timeout:g}s") from None
        except (OSError, http.client.HTTPException) as exc:
            raise CliError(f"connection to {target} failed: {type(exc).__name__}: {one_line(str(exc))}") from None

    def collect(self, path: str, field: str, query: dict[str, Any] | None = None) -> list[dict[str, Any]]:
        """Every item of a paginated listing, following `next_cursor`."""
        items: list[dict[str, Any]] = []
        query = {"limit": 100, **(query or {})}
        seen: set[str] = set()
        while True:
            page = self.request("GET", path, query=query) or {}
            items += page.get(field) or []
            cursor = page.get("next_cursor")
            if not cursor or cursor in seen:
                return items
            seen.add(cursor)
            query["cursor"] = cursor

    def page_through(
        self, path: str, field: str, limit: int, query: dict[str, Any] | None = None
    ) -> tuple[list[dict[str, Any]], str | None]:
        """The first `limit` items of a paginated listing, following `next_cursor`; (items, the
        cursor to go on from, or None when the listing is exhausted)."""
        items: list[dict[str, Any]] = []
        query = dict(query or {})
        seen: set[str] = set()
        while True:
            page = self.request("GET", path, query={**query, "limit": min(PAGE_SIZE, limit - len(items))}) or {}
            got = page.get(field) or []
            items += got
            cursor = page.get("next_cursor")
            if not cursor or cursor in seen or not got:
                return items[:limit], None
            if len(items) >= limit:
                return items[:limit], str(cursor)
            seen.add(cursor)
            query["cursor"] = cursor


# --- code --------------------------------------------------------------------------------------


def zip_source(root: str | Path) -> bytes:
    """A reproducible zip of a directory: paths sorted, fixed times and modes; `__pycache__`,
    `.git` and `*.pyc` left out. Symbolic links are refused (what they point to is not the tree)."""
    root = Path(root)
    if not root.is_dir():
        raise CliError(f"{root} is not a directory")
    files: list[str] = []
    for dirpath, dirnames, filenames in os.walk(root):
        here = Path(dirpath)
        dirnames[:] = [d for d in dirnames if d not in ZIP_SKIP_DIRS]
        for name in [*dirnames, *filenames]:
            if (here / name).is_symlink():
                raise CliError(f"{here / name} is a symbolic link; copy the file or directory instead")
        for name in filenames:
            if name.endswith(ZIP_SKIP_SUFFIXES):
                continue
            if not (here / name).is_file():
                raise CliError(f"{here / name} is not a regular file")
            files.append((here / name).relative_to(root).as_posix())
    if not files:
        raise CliError(f"{root} has no files to deploy")
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        for name in sorted(files):
            info = zipfile.ZipInfo(name, date_time=ZIP_DATE_TIME)
            info.create_system = 3  # Unix, wherever the zip is made
            info.external_attr = ZIP_FILE_MODE << 16
            info.compress_type = zipfile.ZIP_DEFLATED
            archive.writestr(info, (root / name).read_bytes(), compresslevel=6)
    return buffer.getvalue()


def _zip_one(name: str, data: bytes) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        info = zipfile.ZipInfo(name, date_time=ZIP_DATE_TIME)
        info.create_system, info.external_attr, info.compress_type = 3, ZIP_FILE_MODE << 16, zipfile.ZIP_DEFLATED
        archive.writestr(info, data, compresslevel=6)
    return buffer.getvalue()


def handler_module(handler: str) -> str:
    match = _HANDLER.match(handler)
    if not match:
        raise CliError(f"invalid handler {handler!r}: expected module.function, e.g. {DEFAULT_HANDLER}")
    return match.group(1)


def check_handler_in_zip(data: bytes, handler: str) -> None:
    module = handler_module(handler).replace(".", "/")
    with zipfile.ZipFile(io.BytesIO(data)) as archive:
        present = set(archive.namelist())
    if f"{module}.py" not in present and f"{module}/__init__.py" not in present:
        raise CliError(f"handler {handler!r} needs {module}.py in the code, which has no such file; pass --handler")


@dataclass(frozen=True)
class Code:
    """What `--source` gives: inline Python text, or a zip; and the handler it implies."""

    inline: str | None
    zip: bytes | None
    handler: str | None  # None: keep the function's (or the API's default)
    source: str


def load_source(path: str, handler: str | None) -> Code:
    """`--source`: a `.py` file goes inline (handler defaults to `{stem}.handler`, and it is
    zipped instead when over the API's 256 KB inline limit), a `.zip` as it is, a directory zipped."""
    given = Path(path)
    if not given.exists():
        raise CliError(f"--source {path}: no such file or directory")
    if handler is not None:
        handler_module(handler)
    if given.is_dir():
        data = zip_source(given)
        if handler:
            check_handler_in_zip(data, handler)
        return Code(None, data, handler, path)
    if given.suffix == ".zip":
        data = given.read_bytes()
        if not zipfile.is_zipfile(io.BytesIO(data)):
            raise CliError(f"--source {path} is not a zip file")
        if handler:
            check_handler_in_zip(data, handler)
        return Code(None, data, handler, path)
    if given.suffix != ".py":
        raise CliError(f"--source {path}: expected a .py file, a .zip file or a directory")
    if handler is None:
        if not _MODULE.match(given.stem) or "." in given.stem:
            raise CliError(
                f"{given.name} is not an importable module name; rename it or pass --handler MODULE.FUNCTION"
            )
        handler = f"{given.stem}.handler"
    raw = given.read_bytes()
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError:
        raise CliError(f"--source {path} is not UTF-8 text") from None
    if len(raw) > MAX_INLINE_SOURCE_BYTES:
        return Code(None, _zip_one(handler_module(handler).replace(".", "/") + ".py", raw), handler, path)
    return Code(text, None, handler, path)


# --- waiting -----------------------------------------------------------------------------------


class Progress:
    """One line of progress on stderr: rewritten in place on a terminal, else one line per status."""

    def __init__(self, label: str, stream: TextIO) -> None:
        self.label = label
        self.stream = stream
        self.tty = bool(getattr(stream, "isatty", lambda: False)())
        self.last: str | None = None
        self.open = False

    def show(self, status: str, elapsed: float) -> None:
        line = f"{self.label}: {status} ({elapsed:.0f}s)"
        if self.tty:
            self.stream.write(f"\r\033[K{line}")
            self.open = True
        elif status != self.last:
            self.stream.write(line + "\n")
        self.last = status
        self.stream.flush()

    def close(self) -> None:
        """On a terminal the line goes away: the command's own summary takes its place."""
        if self.open:
            self.stream.write("\r\033[K")
            self.stream.flush()
            self.open = False


def poll_until(
    check: Callable[[bool], tuple[str, bool]],
    progress: Progress,
    timeout: float,
    interval: float,
    stuck: Callable[[str], str],
) -> float:
    """Call `check(first_round)` -> (status to show, finished) every `interval` seconds until it
    says finished; the seconds waited. After `timeout`, a `CliError` of `stuck(last status)`."""
    started = time.monotonic()
    first = True
    try:
        while True:
            status, finished = check(first)
            first = False
            elapsed = time.monotonic() - started
            progress.show(status, elapsed)
            if finished:
                return elapsed
            if elapsed >= timeout:
                raise CliError(stuck(status))
            time.sleep(max(0.0, min(interval, timeout - elapsed)))
    finally:
        progress.close()


def wait_for(
    first: dict[str, Any],
    fetch: Callable[[], dict[str, Any]],
    pending: Iterable[str],
    progress: Progress,
    timeout: float,
    interval: float,
    what: str,
    hint: str = "",
) -> tuple[dict[str, Any], float]:
    """Poll `fetch` until the item's status leaves `pending`; (item, seconds waited)."""
    pending = set(pending)
    item = first

    def check(first_round: bool) -> tuple[str, bool]:
        nonlocal item
        if not first_round:
            item = fetch()
        status = str(item.get("status"))
        return status, status not in pending

    elapsed = poll_until(
        check,
        progress,
        timeout,
        interval,
        lambda status: f"{what} still {status} after {timeout:g}s (--wait-timeout){hint}",
    )
    return item, elapsed


# --- commands ----------------------------------------------------------------------------------


@dataclass
class Context:
    client: ApiClient
    args: argparse.Namespace
    out: TextIO
    err: TextIO

    def print(self, text: str = "") -> None:
        print(text, file=self.out)

    def json(self, payload: Any) -> None:
        print(json.dumps(payload, indent=2, ensure_ascii=False), file=self.out)

    def function_path(self, *rest: str | int) -> str:
        return self.client.path("functions", self.args.name, *rest)

    def rerun(self, command: str) -> str:
        """A follow-up command to print: the console script's name, as in --help."""
        return f"{PROG} {command}"


def _size(n: Any) -> str:
    if not isinstance(n, int | float):
        return "-"
    for unit in ("B", "KB", "MB"):
        if n < 1024 or unit == "MB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024
    return f"{n:.1f} MB"


def _live(alias: dict[str, Any] | None) -> str:
    if not alias:
        return "-"
    text = str(alias.get("version"))
    canary = alias.get("canary")
    if canary:
        text += f" (+{canary.get('version')} at {_percent(canary.get('weight'))})"
    if alias.get("status") not in (None, "ready"):
        text += f" [{alias.get('status')}]"
    return text


def _percent(weight: Any) -> str:
    try:
        return f"{float(weight) * 100:g}%"
    except (TypeError, ValueError):
        return str(weight)


def config_body(args: argparse.Namespace) -> dict[str, Any]:
    """The create/update fields the command line sets (absent options are left out)."""
    body: dict[str, Any] = {}
    if args.description is not None:
        body["description"] = args.description
    if args.handler is not None:
        body["handler"] = args.handler
    if args.memory is not None:
        body["memory_mb"] = args.memory
    if args.timeout is not None:
        body["timeout_seconds"] = args.timeout
    if args.env is not None:
        body["environment"] = dict(args.env)
    if args.secret_env is not None:
        body["secret_environment"] = dict(args.secret_env)
    if args.tag is not None:
        body["tags"] = list(args.tag)
    return body


def upload_code(ctx: Context, fid: str, data: bytes) -> str:
    """Ask for an upload grant, POST the zip to it; the upload id to apply with PATCH."""
    grant = ctx.client.request("POST", ctx.client.path("functions", fid, "code-upload"), {})
    max_bytes = grant.get("max_bytes")
    if isinstance(max_bytes, int) and len(data) > max_bytes:
        raise CliError(f"the zipped code is {_size(len(data))}, over the {_size(max_bytes)} upload limit")
    ctx.client.upload(grant["url"], grant.get("fields") or {}, data)
    return str(grant["upload_id"])


def settle(
    ctx: Context, item: dict[str, Any], pending: str, path: str, label: str, what: str, action: str
) -> tuple[dict[str, Any], float | None]:
    """Wait while `item` (a function, version or alias) is `pending` unless --no-wait, print it
    for --json, and raise if it ended `failed`; (item as it ended, seconds waited or None).

    `label` names it on the progress line, `what` in the timeout error, `action` in the failure."""
    elapsed = None
    if item.get("status") == pending and not ctx.args.no_wait:
        item, elapsed = wait_for(
            item,
            lambda: ctx.client.request("GET", path),
            (pending,),
            Progress(label, ctx.err),
            ctx.args.wait_timeout,
            ctx.args.poll_interval,
            what,
        )
    if ctx.args.json:
        ctx.json(item)
    if item.get("status") == "failed":
        raise CliError(f"{action} failed: {item.get('error') or 'no details'}")
    return item, elapsed


def finish_deploy(ctx: Context, fn: dict[str, Any]) -> int:
    """Wait for a function's deployment (unless --no-wait) and report how it ended."""
    name = fn.get("name") or ctx.args.name
    path = ctx.client.path("functions", fn.get("id") or name)  # the API takes a function's id or name
    fn, elapsed = settle(ctx, fn, "deploying", path, name, f"{name}: deployment", f"{name}: deployment")
    took = "" if elapsed is None else f" in {elapsed:.0f}s"
    status = fn.get("status")
    if ctx.args.json:
        return 0
    if status == "deployed":
        ctx.print(
            f"{name}: deployed{took} ({fn.get('id')}, revision {fn.get('revision')}, code {_size(fn.get('code_size'))})"
        )
    elif status == "deploying":
        ctx.print(f"{name}: deploying ({fn.get('id')}); follow with: {ctx.rerun(f'show {name}')}")
    elif status == "draft":
        ctx.print(
            f"{name}: draft, no code yet ({fn.get('id')}); add it with: {ctx.rerun(f'update {name} --source PATH')}"
        )
    else:
        raise CliError(f"{name}: ended as {status}: {fn.get('error') or 'no details'}")
    return 0


def _code_fields(code: Code | None, body: dict[str, Any]) -> None:
    if code is not None and code.inline is not None:
        body["source"] = code.inline
    if code is not None and code.handler and "handler" not in body:
        body["handler"] = code.handler


def cmd_create(ctx: Context) -> int:
    args = ctx.args
    if not FUNCTION_NAME_PATTERN.match(args.name):
        raise CliError(f"invalid function name {args.name!r}: a letter, then up to 63 letters, digits, - or _")
    code = load_source(args.source, args.handler) if args.source else None
    if code is not None and code.zip is not None:
        check_handler_in_zip(code.zip, code.handler or DEFAULT_HANDLER)
    body = {"name": args.name, **config_body(args)}
    _code_fields(code, body)
    fn = ctx.client.request("POST", ctx.client.path("functions"), body)
    if code is not None and code.zip is not None:
        try:
            upload_id = upload_code(ctx, fn["id"], code.zip)
            fn = ctx.client.request("PATCH", ctx.client.path("functions", fn["id"]), {"code_upload_id": upload_id})
        except CliError as exc:
            raise CliError(
                f"{exc}; {args.name} was created without code, retry with: {ctx.rerun(f'update {args.name} --source {code.source}')}"
            ) from None
    return finish_deploy(ctx, fn)


def cmd_update(ctx: Context) -> int:
    args = ctx.args
    code = load_source(args.source, args.handler) if args.source else None
    body = config_body(args)
    _code_fields(code, body)
    if code is not None and code.zip is not None:
        body["code_upload_id"] = upload_code(ctx, args.name, code.zip)
    if not body:
        raise CliError("nothing to update: give --source or an option to change (see update --help)")
    fn = ctx.client.request("PATCH", ctx.function_path(), body)
    return finish_deploy(ctx, fn)


def cmd_list(ctx: Context) -> int:
    functions = ctx.client.collect(ctx.client.path("functions"), "functions", {"tag": ctx.args.tag})
    if ctx.args.json:
        ctx.json({"functions": functions, "next_cursor": None})
        return 0
    rows = [
        (
            str(f.get("name")),
            str(f.get("id")),
            str(f.get("status")),
            _live(f.get("live")),
            str(f.get("latest_version") or "-"),
            str(f.get("updated_at") or "-"),
        )
        for f in functions
    ]
    _table(ctx, ("NAME", "ID", "STATUS", "LIVE", "LATEST", "UPDATED"), rows)
    return 0


def _table(ctx: Context, header: Sequence[str], rows: Sequence[Sequence[str]]) -> None:
    widths = [max(len(r[i]) for r in [header, *rows]) for i in range(len(header))]
    for row in [header, *rows]:
        ctx.print("  ".join(cell.ljust(w) for cell, w in zip(row, widths, strict=True)).rstrip())


def cmd_show(ctx: Context) -> int:
    fn = ctx.client.request("GET", ctx.function_path())
    if ctx.args.json:
        ctx.json(fn)
        return 0
    env = fn.get("environment") or {}
    lines = [
        ("name", f"{fn.get('name')} ({fn.get('id')})"),
        ("org", fn.get("org")),
        ("status", fn.get("status")),
        ("error", fn.get("error")),
        ("description", fn.get("description")),
        ("handler", f"{fn.get('handler')} ({fn.get('runtime')})"),
        ("memory", f"{fn.get('memory_mb')} MB, timeout {fn.get('timeout_seconds')} s"),
        ("code", f"sha256 {fn.get('code_sha256') or '-'} ({_size(fn.get('code_size'))})"),
        ("revision", fn.get("revision")),
        ("latest", fn.get("latest_version") or "-"),
        ("live", _live(fn.get("live"))),
        ("environment", ", ".join(f"{k}={v}" for k, v in sorted(env.items())) or "-"),
        ("secrets", ", ".join(fn.get("secret_environment") or []) or "-"),
        ("tags", ", ".join(fn.get("tags") or []) or "-"),
        ("lambda", fn.get("lambda_function") or "-"),
        ("created", f"{fn.get('created_at')} by {fn.get('created_by')}"),
        ("updated", f"{fn.get('updated_at')} by {fn.get('updated_by')}"),
    ]
    for label, value in lines:
        if label == "error" and not value:
            continue
        ctx.print(f"{label + ':':<13}{value if value not in (None, '') else '-'}")
    return 0


def cmd_publish(ctx: Context) -> int:
    body = {} if ctx.args.description is None else {"description": ctx.args.description}
    version = ctx.client.request("POST", ctx.function_path("versions"), body)
    n = version.get("version")
    label = f"{ctx.args.name} version {n}"
    path = ctx.function_path("versions", n)
    version, _ = settle(ctx, version, "publishing", path, label, label, f"{ctx.args.name}: publishing version {n}")
    status = version.get("status")
    if not ctx.args.json:
        unchanged = " (unchanged: code and configuration are those of this version)" if version.get("unchanged") else ""
        ctx.print(
            f"{ctx.args.name}: version {n} {status}{unchanged}; make it live with: {ctx.rerun(f'promote {ctx.args.name} {n}')}"
        )
    return 0


def cmd_versions(ctx: Context) -> int:
    versions = ctx.client.collect(ctx.function_path("versions"), "versions")
    if ctx.args.json:
        ctx.json({"versions": versions, "next_cursor": None})
        return 0
    alias = (ctx.client.request("GET", ctx.function_path()) or {}).get("live") or {}
    canary = alias.get("canary") or {}

    def traffic(v: Any) -> str:
        if canary and v == canary.get("version"):
            return f"canary {_percent(canary.get('weight'))}"
        return LIVE_ALIAS if alias and v == alias.get("version") else ""

    rows = [
        (
            str(v.get("version")),
            str(v.get("status")),
            traffic(v.get("version")),
            str(v.get("code_sha256") or "-")[:12],
            str(v.get("created_at") or "-"),
            str(v.get("description") or ""),
        )
        for v in versions
    ]
    _table(ctx, ("VERSION", "STATUS", "TRAFFIC", "CODE", "CREATED", "DESCRIPTION"), rows)
    return 0


def _finish_alias(ctx: Context, alias: dict[str, Any], done: str) -> int:
    label = f"{ctx.args.name} {LIVE_ALIAS}"
    path = ctx.function_path("aliases", LIVE_ALIAS)
    alias, _ = settle(ctx, alias, "updating", path, label, label, f"{ctx.args.name}: moving {LIVE_ALIAS}")
    if not ctx.args.json:
        ctx.print(f"{ctx.args.name}: {done}; {LIVE_ALIAS} -> version {_live(alias)}")
    return 0


def cmd_promote(ctx: Context) -> int:
    body: dict[str, Any] = {"version": ctx.args.version}
    if ctx.args.canary:
        version, weight = ctx.args.canary
        body["canary"] = {"version": version, "weight": weight}
    alias = ctx.client.request("PUT", ctx.function_path("aliases", LIVE_ALIAS), body)
    return _finish_alias(ctx, alias, "promoted")


def cmd_rollback(ctx: Context) -> int:
    alias = ctx.client.request("POST", ctx.function_path("rollback"), {})
    return _finish_alias(ctx, alias, "rolled back")


def cmd_delete(ctx: Context) -> int:
    if not ctx.args.yes:
        if not sys.stdin.isatty():
            raise CliError(f"refusing to delete {ctx.args.name} without --yes (no terminal to confirm on)")
        answer = input(f"Delete function {ctx.args.name}, its versions and its live alias? [y/N] ")
        if answer.strip().lower() not in ("y", "yes"):
            raise CliError("not deleted")
    result = ctx.client.request("DELETE", ctx.function_path())
    if ctx.args.json:
        ctx.json(result)
    else:
        ctx.print(f"{ctx.args.name}: {(result or {}).get('status', 'deleting')} ({(result or {}).get('id')})")
    return 0


def _read_text(spec: str, option: str, shown: str | None = None) -> tuple[str, str]:
    """The text of `-` (stdin) or a file; (text, how to name it in an error)."""
    if spec == "-":
        return sys.stdin.read(), f"{option} on stdin"
    try:
        return Path(spec).read_text(encoding="utf-8"), spec
    except OSError as exc:
        raise CliError(f"{option} {shown or spec}: {exc.strerror or exc}") from None
    except UnicodeDecodeError:
        raise CliError(f"{option} {shown or spec}: not UTF-8 text") from None


def read_payload(spec: str, option: str = "--payload") -> Any:
    """`--payload` (and `--input`, `--set`): JSON text, `@file` or `-` (stdin)."""
    if spec == "-" or spec.startswith("@"):
        text, where = _read_text(spec if spec == "-" else spec[1:], option, shown=spec)
    else:
        text, where = spec, option
    try:
        return json.loads(text)
    except json.JSONDecodeError as exc:
        raise CliError(f"{where} is not valid JSON: {exc}") from None


def read_batch(spec: str) -> list[Any]:
    """`batch --payloads`: a JSON array of payloads, or JSON lines (one payload a line), from a
    file or `-`; refused when empty or over the API's limit, before anything is sent."""
    text, where = _read_text(spec, "--payloads")
    stripped = text.strip()
    if not stripped:
        raise CliError(f"{where} has no payloads")
    try:
        whole = json.loads(stripped)
        items = whole if isinstance(whole, list) else [whole]  # a single line of JSON lines
    except json.JSONDecodeError as exc:
        if exc.msg != "Extra data" and stripped.startswith("["):
            raise CliError(f"{where} is not a valid JSON array: {exc}") from None
        items = []
        for number, line in enumerate(text.splitlines(), 1):
            if line.strip():
                try:
                    items.append(json.loads(line))
                except json.JSONDecodeError as line_exc:
                    raise CliError(f"{where} line {number} is not valid JSON: {line_exc}") from None
    if not items:
        raise CliError(f"{where} has no payloads (an empty array)")
    if len(items) > MAX_BATCH:
        raise CliError(f"{where} has {len(items)} payloads; a batch takes at most {MAX_BATCH} (split it)")
    return items


def _duration(ms: Any) -> str:
    if not isinstance(ms, int | float) or isinstance(ms, bool):
        return "-"
    return f"{ms:g} ms" if ms < 1000 else f"{ms / 1000:.1f} s"


def _invocation_line(answer: dict[str, Any]) -> str:
    """`--verbose`: invocation id, version, request id, duration (billed)."""
    parts = [f"invocation {answer['invocation_id']}"] if answer.get("invocation_id") else []
    parts += [f"version {answer.get('executed_version')}", f"request {answer.get('request_id')}"]
    took = f"{answer.get('duration_ms')} ms"
    if answer.get("billed_duration_ms") is not None:
        took += f" (billed {answer.get('billed_duration_ms')} ms)"
    return ", ".join([*parts, took])


def report_invocation(ctx: Context, answer: dict[str, Any]) -> int:
    """A finished invocation (sync answer or record): the result as JSON on stdout; failed or
    timed out: one error line, exit 1."""
    if ctx.args.verbose:
        print(_invocation_line(answer), file=ctx.err)
    if ctx.args.json:
        ctx.json(answer)
    status = answer.get("status")
    error = answer.get("error") or {}
    if not isinstance(error, dict):
        error = {"message": str(error)}
    if status == "failed":
        raise CliError(f"{error.get('type') or 'Error'}: {error.get('message') or 'no details'}")
    if status == "timed_out":
        took = answer.get("duration_ms")
        raise CliError(f"timed out: {error.get('message') or (f'after {_duration(took)}' if took else 'no details')}")
    if not ctx.args.json:
        ctx.json(answer.get("result"))
    return 0


def _check_text(check: Any) -> str:
    """One dry-run check as a line, whatever its shape (text, or an object naming it)."""
    if not isinstance(check, dict):
        return one_line(str(check))
    name = check.get("name") or check.get("check")
    detail = check.get("detail") or check.get("message")
    if name is None and detail is None:
        return one_line(json.dumps(check, ensure_ascii=False))
    return one_line(": ".join(str(part) for part in (name, detail) if part is not None))


def _report_dry_run(ctx: Context, answer: dict[str, Any]) -> int:
    if ctx.args.json:
        ctx.json(answer)
    checks = answer.get("checks") or []
    if answer.get("status") != "valid":
        raise CliError(
            f"{ctx.args.name}: dry run {answer.get('status')}: {'; '.join(map(_check_text, checks)) or 'no details'}"
        )
    if not ctx.args.json:
        for check in checks:
            ctx.print(f"ok  {_check_text(check)}")
        ctx.print(f"{ctx.args.name}: valid ({len(checks)} checks passed); nothing was run")
    return 0


def _fetch_invocation(ctx: Context, iid: str) -> dict[str, Any]:
    record: dict[str, Any] = ctx.client.request("GET", ctx.client.path("invocations", iid)) or {}
    return record


def wait_for_invocation(ctx: Context, first: dict[str, Any]) -> dict[str, Any]:
    """Poll an accepted invocation's record until it is no longer queued or running."""
    iid = str(first["invocation_id"])
    see = f"see it with: {ctx.rerun(f'invocation {iid}')}"
    try:
        if first.get("status") not in PENDING_INVOCATION:  # a replay (Idempotency-Key) of a finished one
            first = _fetch_invocation(ctx, iid)
        record, _ = wait_for(
            first,
            lambda: _fetch_invocation(ctx, iid),
            PENDING_INVOCATION,
            Progress(f"{ctx.args.name} {iid}", ctx.err),
            ctx.args.wait_timeout,
            ctx.args.poll_interval,
            f"invocation {iid}",
            f"; {see}",
        )
    except KeyboardInterrupt:
        raise Interrupted(f"interrupted; invocation {iid} goes on, {see}") from None
    return record


def cmd_invoke(ctx: Context) -> int:
    args = ctx.args
    body: dict[str, Any] = {}
    if args.qualifier is not None:
        body["qualifier"] = args.qualifier
    if args.payload is not None:
        body["payload"] = read_payload(args.payload)
    if args.mode != "sync":
        body["mode"] = args.mode
    if args.callback_url is not None:
        body["callback_url"] = args.callback_url
    headers = {"Idempotency-Key": args.idempotency_key} if args.idempotency_key else None
    answer = ctx.client.request("POST", ctx.function_path("invoke"), body, headers=headers) or {}
    if args.mode == "dryrun":
        return _report_dry_run(ctx, answer)
    if args.mode == "sync":
        return report_invocation(ctx, answer)
    iid = answer.get("invocation_id")
    if not iid:
        raise CliError(
            f"{args.name}: the API accepted the invocation without naming it: {one_line(json.dumps(answer))}"
        )
    if args.wait:
        return report_invocation(ctx, wait_for_invocation(ctx, answer))
    if args.json:
        ctx.json(answer)
    else:
        ctx.print(str(iid))
        print(f"{args.name}: {answer.get('status')}; see it with: {ctx.rerun(f'invocation {iid}')}", file=ctx.err)
    return 0


def cmd_batch(ctx: Context) -> int:
    args = ctx.args
    payloads = read_batch(args.payloads)
    body: dict[str, Any] = {"payloads": payloads}
    if args.qualifier is not None:
        body["qualifier"] = args.qualifier
    answer = ctx.client.request("POST", ctx.function_path("batch"), body) or {}
    items = sorted(answer.get("invocations") or [], key=lambda item: int(item.get("index", 0)))
    see = f"see them with: {ctx.rerun(f'invocations {args.name}')}"
    if not args.wait:
        if args.json:
            ctx.json(answer)
        else:
            for item in items:
                ctx.print(str(item.get("invocation_id")))
            print(f"{args.name}: batch {answer.get('batch_id')}, {len(items)} invocations queued; {see}", file=ctx.err)
        return 0

    records = {int(item["index"]): {"status": "queued", **item} for item in items}

    def check(first_round: bool) -> tuple[str, bool]:
        if not first_round:
            for index, record in records.items():
                if record.get("status") in PENDING_INVOCATION:
                    records[index] = {"index": index, **_fetch_invocation(ctx, str(record["invocation_id"]))}
        finished = [r for r in records.values() if r.get("status") not in PENDING_INVOCATION]
        failed = sum(1 for r in finished if r.get("status") in FAILED_INVOCATION)
        status = f"{len(finished)} of {len(records)} finished" + (f", {failed} failed" if failed else "")
        return status, len(finished) == len(records)

    label = f"{args.name} batch {answer.get('batch_id')}"
    try:
        poll_until(
            check,
            Progress(label, ctx.err),
            args.wait_timeout,
            args.poll_interval,
            lambda status: f"{label}: only {status} after {args.wait_timeout:g}s (--wait-timeout); {see}",
        )
    except KeyboardInterrupt:
        raise Interrupted(f"interrupted; the batch goes on, {see}") from None
    ordered = [records[index] for index in sorted(records)]
    if args.json:
        ctx.json({"batch_id": answer.get("batch_id"), "invocations": ordered})
    else:
        rows = [
            (str(r.get("index")), str(r.get("invocation_id")), str(r.get("status")), _duration(r.get("duration_ms")))
            for r in ordered
        ]
        _table(ctx, ("INDEX", "ID", "STATUS", "DURATION"), rows)
    failed = [r for r in ordered if r.get("status") in FAILED_INVOCATION]
    if failed:
        first = f"invocation {failed[0].get('invocation_id')}"
        raise CliError(
            f"{len(failed)} of {len(ordered)} invocations failed or timed out; see why with: {ctx.rerun(first)}"
        )
    return 0


def cmd_invocation(ctx: Context) -> int:
    record = _fetch_invocation(ctx, ctx.args.iid)
    if ctx.args.json:
        ctx.json(record)
        return 0
    error = record.get("error")
    if isinstance(error, dict):
        error = f"{error.get('type') or 'Error'}: {error.get('message') or 'no details'}"
    took = _duration(record.get("duration_ms"))
    if record.get("billed_duration_ms") is not None:
        took += f" (billed {_duration(record.get('billed_duration_ms'))})"
    lines = [
        ("invocation", record.get("invocation_id")),
        ("function", f"{record.get('function_name')} ({record.get('function_id')})"),
        ("status", record.get("status")),
        ("error", error),
        (
            "mode",
            f"{record.get('mode')}, qualifier {record.get('qualifier') or '-'}, version {record.get('executed_version') or '-'}",
        ),
        ("request", record.get("request_id")),
        ("created", record.get("created_at")),
        ("started", record.get("started_at")),
        ("finished", record.get("finished_at")),
        ("duration", took),
        ("payload", f"{_size(record.get('payload_size'))}, sha256 {record.get('payload_sha256') or '-'}"),
        ("batch", record.get("batch_id")),
        ("subject", record.get("subject")),
    ]
    for label, value in lines:
        if label in ("error", "batch", "subject") and not value:
            continue
        ctx.print(f"{label + ':':<13}{value if value not in (None, '') else '-'}")
    if "result" in record and record.get("status") not in PENDING_INVOCATION:
        ctx.print("result:")
        ctx.json(record.get("result"))
    return 0


def cmd_invocations(ctx: Context) -> int:
    items, cursor = ctx.client.page_through(ctx.function_path("invocations"), "invocations", ctx.args.limit)
    if ctx.args.json:
        ctx.json({"invocations": items, "next_cursor": cursor})
        return 0
    rows = [
        (
            str(r.get("invocation_id")),
            str(r.get("status")),
            str(r.get("mode") or "-"),
            str(r.get("executed_version") or "-"),
            _duration(r.get("duration_ms")),
            str(r.get("created_at") or "-"),
        )
        for r in items
    ]
    _table(ctx, ("ID", "STATUS", "MODE", "VERSION", "DURATION", "CREATED"), rows)
    if cursor:
        print(f"(the {len(items)} newest; more with --limit)", file=ctx.err)
    return 0


# --- logs --------------------------------------------------------------------------------------


def _timestamp(value: Any) -> str:
    """A log line's time: epoch milliseconds (CloudWatch's) as ISO 8601 UTC, text as it is."""
    if isinstance(value, int | float) and not isinstance(value, bool):
        when = dt.datetime.fromtimestamp(value / 1000, dt.UTC)
        return when.strftime("%Y-%m-%dT%H:%M:%S.") + f"{when.microsecond // 1000:03d}Z"
    return str(value) if value is not None else "-"


@dataclass
class _Tail:
    """One invocation whose log lines are printed as they come."""

    record: dict[str, Any]
    printed: int = 0
    final_fetches: int = 0  # fetches made while it was finished: done after two (CloudWatch lags)

    @property
    def iid(self) -> str:
        return str(self.record.get("invocation_id"))


def _print_logs(ctx: Context, tail: _Tail, prefixed: bool) -> None:
    """Fetch the invocation's lines and print those not printed yet."""
    if tail.record.get("status") == "queued" and not tail.record.get("request_id"):
        return  # nothing ran yet, and nothing to look its lines up by
    finished = tail.record.get("status") not in PENDING_INVOCATION
    answer = ctx.client.request("GET", ctx.client.path("invocations", tail.iid, "logs")) or {}
    lines = answer.get("lines") or []
    for line in lines[tail.printed :]:
        message = str(line.get("message") or "").rstrip("\n")
        if ctx.args.json:
            print(json.dumps({"invocation_id": tail.iid, **line}, ensure_ascii=False), file=ctx.out, flush=True)
        else:
            prefix = f"{tail.iid}  " if prefixed else ""
            print(f"{prefix}{_timestamp(line.get('timestamp'))}  {message}", file=ctx.out, flush=True)
    tail.printed = max(tail.printed, len(lines))
    if finished:
        tail.final_fetches += 1


def cmd_logs(ctx: Context) -> int:
    args = ctx.args
    if args.invocation is not None and not args.follow:
        _print_logs(ctx, _Tail({"invocation_id": args.invocation, "status": "succeeded"}), prefixed=False)
        return 0
    tails: dict[str, _Tail] = {}
    known: set[str] = set()  # listed before `--follow` started without being shown, or done
    try:
        if args.invocation is not None:
            tails[args.invocation] = _Tail(_fetch_invocation(ctx, args.invocation))
        else:
            first_page = max(args.limit, FOLLOW_PAGE) if args.follow else args.limit
            recent, _ = ctx.client.page_through(ctx.function_path("invocations"), "invocations", first_page)
            known.update(str(r.get("invocation_id")) for r in recent[args.limit :])
            for record in reversed(recent[: args.limit]):  # oldest first
                tails[str(record.get("invocation_id"))] = _Tail(record)
        for tail in tails.values():
            _print_logs(ctx, tail, prefixed=args.invocation is None)
        if not args.follow:
            return 0
        while tails or args.invocation is None:
            time.sleep(args.poll_interval)
            try:
                _follow_round(ctx, tails, known)
            except CliError as exc:  # a long follow outlives a blip: the network, a 5xx, a 429
                if isinstance(exc, ApiError) and exc.status < 500 and exc.status != 429:
                    raise
                print(f"warning: {exc}; trying again", file=ctx.err, flush=True)
        return 0
    except KeyboardInterrupt:
        return EXIT_INTERRUPTED  # how a follow ends: quietly


def _follow_round(ctx: Context, tails: dict[str, _Tail], known: set[str]) -> None:
    """One `--follow` poll: new invocations join, each unfinished one prints its new lines."""
    listed: set[str] = set()
    if ctx.args.invocation is None:
        page = ctx.client.request("GET", ctx.function_path("invocations"), query={"limit": FOLLOW_PAGE}) or {}
        for record in reversed(page.get("invocations") or []):
            iid = str(record.get("invocation_id"))
            listed.add(iid)
            if iid in tails:
                tails[iid].record = record
            elif iid not in known:
                tails[iid] = _Tail(record)
    for iid, tail in list(tails.items()):
        if iid not in listed:
            tail.record = _fetch_invocation(ctx, iid)
        _print_logs(ctx, tail, prefixed=ctx.args.invocation is None)
        if tail.final_fetches >= 2:
            del tails[iid]
            known.add(iid)


# --- results -----------------------------------------------------------------------------------


def _effective(result: dict[str, Any]) -> Any:
    return result.get("updated_result") if result.get("is_edited") else result.get("original_result")


def _show_result(ctx: Context, result: dict[str, Any]) -> None:
    verified = (
        f"yes, by {result.get('verified_by') or '-'} at {result.get('verified_at') or '-'}"
        if result.get("is_verified")
        else "no"
    )
    lines = [
        ("subject", f"{result.get('subject')} (version {result.get('version')})"),
        ("function", result.get("function_id")),
        ("invocation", result.get("invocation_id")),
        ("verified", verified),
        ("edited", "yes" if result.get("is_edited") else "no"),
        ("created", result.get("created_at")),
        ("updated", f"{result.get('updated_at')} by {result.get('updated_by')}" if result.get("updated_at") else None),
    ]
    for label, value in lines:
        ctx.print(f"{label + ':':<13}{value if value not in (None, '') else '-'}")
    ctx.print("result:" + (" (edited)" if result.get("is_edited") else ""))
    ctx.json(_effective(result))
    if result.get("is_edited"):
        ctx.print("original:")
        ctx.json(result.get("original_result"))


def cmd_run(ctx: Context) -> int:
    args = ctx.args
    query = {"subject": args.subject, "qualifier": args.qualifier, "force": "true" if args.force else None}
    body = {} if args.input is None else {"input": read_payload(args.input, "--input")}
    result = ctx.client.request("POST", ctx.function_path("run"), body, query=query) or {}
    if args.json:
        ctx.json(result)
        return 0
    print(
        f"{args.name}: subject {result.get('subject')}, version {result.get('version')}, "
        f"invocation {result.get('invocation_id')}"
        + (", edited" if result.get("is_edited") else "")
        + (", verified" if result.get("is_verified") else ""),
        file=ctx.err,
    )
    ctx.json(_effective(result))
    return 0


def cmd_results(ctx: Context) -> int:
    args = ctx.args
    path = ctx.function_path("results", args.subject)
    query = {"version": args.version}
    if args.delete:
        which = f"the result of {args.subject}" + (f" (version {args.version})" if args.version else "")
        if not args.yes:
            if not sys.stdin.isatty():
                raise CliError(f"refusing to delete {which} without --yes (no terminal to confirm on)")
            if input(f"Delete {which} of {args.name}, edits and verification included? [y/N] ").strip().lower() not in (
                "y",
                "yes",
            ):
                raise CliError("not deleted")
        answer = ctx.client.request("DELETE", path, query=query)
        if args.json:
            ctx.json(answer)
        else:
            ctx.print(f"{args.name}: deleted {which}")
        return 0
    body: dict[str, Any] = {}
    if args.set is not None:
        body["updated_result"] = read_payload(args.set, "--set")
    if args.verify or args.unverify:
        body["is_verified"] = bool(args.verify)
    result = ctx.client.request("PUT" if body else "GET", path, body or None, query=query) or {}
    if args.json:
        ctx.json(result)
    else:
        _show_result(ctx, result)
    return 0


# --- organization --------------------------------------------------------------------------------


def _details(value: Any) -> str:
    if value in (None, "", {}, []):
        return ""
    if isinstance(value, dict):
        return one_line(
            " ".join(
                f"{k}={json.dumps(v, ensure_ascii=False) if not isinstance(v, str) else v}" for k, v in value.items()
            ),
            160,
        )
    return one_line(value if isinstance(value, str) else json.dumps(value, ensure_ascii=False), 160)


def cmd_audit(ctx: Context) -> int:
    entries, cursor = ctx.client.page_through(ctx.client.path("audit"), "entries", ctx.args.limit)
    if ctx.args.json:
        ctx.json({"entries": entries, "next_cursor": cursor})
        return 0
    rows = [
        (str(e.get("at") or "-"), str(e.get("actor") or "-"), str(e.get("action") or "-"), str(e.get("target") or "-"),
         _details(e.get("details")))
        for e in entries
    ]  # fmt: skip
    _table(ctx, ("AT", "ACTOR", "ACTION", "TARGET", "DETAILS"), rows)
    if cursor:
        print(f"(the {len(entries)} newest; more with --limit)", file=ctx.err)
    return 0


def _number(value: Any) -> str:
    if isinstance(value, bool) or not isinstance(value, int | float):
        return "-" if value is None else str(value)
    return str(value) if isinstance(value, int) else f"{value:.1f}"


def _share(used: Any, limit: Any) -> str:
    if isinstance(used, int | float) and isinstance(limit, int | float) and limit > 0:
        return f"{used / limit * 100:.0f}%"
    return ""


def cmd_usage(ctx: Context) -> int:
    usage = ctx.client.request("GET", ctx.client.path("usage")) or {}
    if ctx.args.json:
        ctx.json(usage)
        return 0
    month = usage.get("month") or "-"
    quotas = [
        (f"GB-seconds ({month})", usage.get("gb_seconds"), usage.get("gb_seconds_budget")),
        (f"invocations ({month})", usage.get("invocations"), None),
        ("invocations this minute", usage.get("invocations_this_minute"), usage.get("invocations_per_minute_limit")),
        ("functions", usage.get("functions"), usage.get("functions_limit")),
        ("versions kept per function", None, usage.get("versions_kept")),
    ]
    rows = [(what, _number(used), _number(limit), _share(used, limit)) for what, used, limit in quotas]
    _table(ctx, ("", "USED", "LIMIT", "SHARE"), rows)
    return 0


# --- command line --------------------------------------------------------------------------------


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> Any:  # one line, not usage + message
        self.exit(EXIT_USAGE, f"error: {message} (see --help)\n")


def _pair(text: str) -> tuple[str, str]:
    name, sep, value = text.partition("=")
    if not sep or not name:
        raise argparse.ArgumentTypeError(f"expected NAME=VALUE, got {text!r}")
    return name, value


def _positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a whole number, got {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"expected a number from 1, got {text!r}")
    return value


def _canary(text: str) -> tuple[int, float]:
    version, sep, weight_text = text.partition(":")
    if not sep:
        raise argparse.ArgumentTypeError(f"expected VERSION:WEIGHT (e.g. 4:0.1 or 4:10%), got {text!r}")
    try:
        weight = float(weight_text[:-1]) / 100 if weight_text.endswith("%") else float(weight_text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"canary weight must be a number, got {weight_text!r}") from None
    if not 0 < weight < 1:
        raise argparse.ArgumentTypeError(f"canary weight must be between 0 and 1 (or 0% and 100%), got {weight_text!r}")
    return _positive_int(version), weight


def _qualifier(text: str) -> str | int:
    if text in (LIVE_ALIAS, "draft"):
        return text
    try:
        return _positive_int(text)
    except argparse.ArgumentTypeError:
        raise argparse.ArgumentTypeError(f"expected live, draft or a version number, got {text!r}") from None


def _idempotency_key(text: str) -> str:
    if not 0 < len(text) <= MAX_IDEMPOTENCY_KEY or text != text.strip() or not all(" " <= c <= "~" for c in text):
        raise argparse.ArgumentTypeError(
            f"expected 1-{MAX_IDEMPOTENCY_KEY} printable ASCII characters (no surrounding spaces), got {text!r}"
        )
    return text


def _seconds(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected seconds, got {text!r}") from None
    if value <= 0:
        raise argparse.ArgumentTypeError(f"expected a positive number of seconds, got {text!r}")
    return value


def _common(top: bool) -> _Parser:
    """Options accepted before and after the command (SUPPRESS: after-command ones do not reset
    what was given before it)."""
    common = _Parser(add_help=False)
    default = None if top else argparse.SUPPRESS
    common.add_argument("--api", default=default, help=f"API base URL (default ${ENV_API_URL})")
    common.add_argument("--key", default=default, help=f"API key (default ${ENV_API_KEY})")
    common.add_argument("--org", default=default, help=f"organization (default ${ENV_ORG})")
    common.add_argument(
        "--json", action="store_true", default=False if top else argparse.SUPPRESS, help="print raw JSON"
    )
    common.add_argument(
        "--request-timeout",
        type=_seconds,
        default=REQUEST_TIMEOUT if top else argparse.SUPPRESS,
        help=argparse.SUPPRESS,
    )
    return common


def _waiting(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--no-wait", action="store_true", help="return without waiting for the platform")
    parser.add_argument(
        "--wait-timeout",
        type=_seconds,
        default=WAIT_TIMEOUT,
        help=f"seconds to wait at most (default {WAIT_TIMEOUT:g})",
    )
    parser.add_argument("--poll-interval", type=_seconds, default=POLL_INTERVAL, help=argparse.SUPPRESS)


def _invocation_waiting(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--wait-timeout",
        type=_seconds,
        default=INVOCATION_WAIT_TIMEOUT,
        metavar="S",
        help=f"with --wait: seconds to wait at most (default {INVOCATION_WAIT_TIMEOUT:g})",
    )
    parser.add_argument("--poll-interval", type=_seconds, default=POLL_INTERVAL, help=argparse.SUPPRESS)


def _check_invoke(args: argparse.Namespace) -> str | None:
    if args.callback_url is not None and args.mode != "async":
        return "--callback-url needs --async"
    if args.wait and args.mode != "async":
        return "--wait needs --async (a plain invoke already waits)"
    return None


def _check_results(args: argparse.Namespace) -> str | None:
    if args.delete and (args.set is not None or args.verify or args.unverify):
        return "--delete goes alone (not with --set, --verify or --unverify)"
    return None


def _function_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--source", metavar="FILE|DIR", help="a .py file (sent inline), a directory (zipped) or a .zip")
    parser.add_argument("--handler", help=f"module.function (default: FILE's stem.handler, or {DEFAULT_HANDLER})")
    parser.add_argument("--memory", type=_positive_int, metavar="MB", help="memory in MB")
    parser.add_argument("--timeout", type=_positive_int, metavar="S", help="timeout in seconds")
    parser.add_argument(
        "--env", action="append", type=_pair, metavar="K=V", help="environment variable (repeatable; replaces them all)"
    )
    parser.add_argument(
        "--secret-env",
        action="append",
        type=_pair,
        metavar="K=V",
        help="secret environment variable, stored encrypted (repeatable)",
    )
    parser.add_argument("--tag", action="append", metavar="T", help="tag (repeatable; replaces them all)")
    parser.add_argument("--description", help="free text")
    _waiting(parser)


class _Commands:
    """Adds subcommands that share the common options and, unless `with_name=False`, a NAME."""

    def __init__(self, parser: argparse.ArgumentParser) -> None:
        self._subparsers = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
        self._common = _common(top=False)

    def add(
        self, name: str, func: Callable[[Context], int], help_: str, with_name: bool = True
    ) -> argparse.ArgumentParser:
        p = self._subparsers.add_parser(name, help=help_, description=help_, parents=[self._common])
        p.set_defaults(func=func)
        if with_name:
            p.add_argument("name", metavar="NAME", help="function name or id")
        return p


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(
        prog=PROG,
        description="Deploy, version, promote and invoke your organization's Python functions.",
        parents=[_common(top=True)],
    )
    commands = _Commands(parser)
    _lifecycle_commands(commands)
    _invoke_command(commands)
    _invocation_commands(commands)
    _result_commands(commands)
    command = commands.add
    command(
        "audit", cmd_audit, "list the organization's audit log, newest first (admin)", with_name=False
    ).add_argument("--limit", type=_positive_int, default=50, metavar="N", help="show at most N entries (default 50)")
    command("usage", cmd_usage, "show the organization's usage and quotas", with_name=False)
    return parser


def _lifecycle_commands(commands: _Commands) -> None:
    """create, update, list, show, publish, versions, promote, rollback, delete."""
    command = commands.add
    _function_options(command("create", cmd_create, "create a function (and deploy its code)"))
    _function_options(command("update", cmd_update, "change a function's code or configuration"))
    command("list", cmd_list, "list functions", with_name=False).add_argument(
        "--tag", help="only functions with this tag"
    )
    command("show", cmd_show, "show a function")
    publish = command("publish", cmd_publish, "publish the deployed draft as a new immutable version")
    publish.add_argument("--description", help="what this version is")
    _waiting(publish)
    command("versions", cmd_versions, "list a function's versions, newest first")
    promote = command("promote", cmd_promote, f"point {LIVE_ALIAS} at a version (optionally with a canary)")
    promote.add_argument("version", type=_positive_int, metavar="VERSION")
    promote.add_argument(
        "--canary", type=_canary, metavar="VERSION:WEIGHT", help="send WEIGHT (0-1, or N%%) of traffic to VERSION"
    )
    _waiting(promote)
    _waiting(command("rollback", cmd_rollback, f"move {LIVE_ALIAS} back to where it was before its last move"))
    command("delete", cmd_delete, "delete a function and its versions").add_argument(
        "--yes", action="store_true", help="do not ask"
    )


def _invoke_command(commands: _Commands) -> None:
    invoke = commands.add("invoke", cmd_invoke, "run a function and print its result (or queue it: --async)")
    invoke.add_argument("--qualifier", type=_qualifier, help=f"{LIVE_ALIAS} (default), draft or a version number")
    invoke.add_argument("--payload", help="JSON text, @FILE or - (stdin)")
    modes = invoke.add_mutually_exclusive_group()
    modes.add_argument(
        "--async", dest="mode", action="store_const", const="async", help="queue it and print its invocation id"
    )
    modes.add_argument(
        "--dry-run", dest="mode", action="store_const", const="dryrun", help="only check it could run; runs nothing"
    )
    invoke.set_defaults(mode="sync", check=_check_invoke)
    invoke.add_argument(
        "--callback-url", metavar="URL", help="with --async: POST the finished record to this https URL"
    )
    invoke.add_argument(
        "--idempotency-key",
        type=_idempotency_key,
        metavar="KEY",
        help="the same KEY within 24 h gives the same invocation, never a second run",
    )
    invoke.add_argument("--wait", action="store_true", help="with --async: wait for it and print its result")
    _invocation_waiting(invoke)
    invoke.add_argument(
        "--verbose",
        "-v",
        action="store_true",
        help="also print invocation id, version, request id and duration on stderr",
    )


def _invocation_commands(commands: _Commands) -> None:
    """batch, invocation, invocations, logs."""
    command = commands.add
    batch = command("batch", cmd_batch, f"queue one invocation per payload (at most {MAX_BATCH})")
    batch.add_argument(
        "--payloads", required=True, metavar="FILE|-", help="a JSON array of payloads, or JSON lines (one a line)"
    )
    batch.add_argument("--qualifier", type=_qualifier, help=f"{LIVE_ALIAS} (default), draft or a version number")
    batch.add_argument("--wait", action="store_true", help="wait for them all and print a summary")
    _invocation_waiting(batch)
    invocation = command("invocation", cmd_invocation, "show one invocation (any function's)", with_name=False)
    invocation.add_argument("iid", metavar="ID", help="invocation id (iv...)")
    command("invocations", cmd_invocations, "list a function's invocations, newest first").add_argument(
        "--limit", type=_positive_int, default=20, metavar="N", help="show at most N (default 20)"
    )
    logs = command("logs", cmd_logs, "print the log lines of a function's recent invocations")
    logs.add_argument("--invocation", metavar="ID", help="only this invocation's lines")
    logs.add_argument(
        "--limit", type=_positive_int, default=5, metavar="N", help="the N most recent invocations (default 5)"
    )
    logs.add_argument("--follow", "-f", action="store_true", help="keep printing new invocations' lines until Ctrl-C")
    logs.add_argument("--poll-interval", type=_seconds, default=FOLLOW_INTERVAL, help=argparse.SUPPRESS)


def _result_commands(commands: _Commands) -> None:
    """run, results: a function's stored result per subject."""
    run_ = commands.add("run", cmd_run, "run a function for a subject and store its result (once per version)")
    run_.add_argument("--subject", required=True, metavar="ID", help="what the result is about")
    run_.add_argument("--input", metavar="JSON|@FILE|-", help="the function's input")
    run_.add_argument("--qualifier", type=_qualifier, help=f"{LIVE_ALIAS} (default), draft or a version number")
    run_.add_argument("--force", action="store_true", help="run again even if a result is stored for this version")
    results = commands.add("results", cmd_results, "show, edit, verify or delete a subject's stored result")
    results.add_argument("subject", metavar="SUBJECT")
    results.add_argument("--version", type=_positive_int, metavar="N", help="of this version (default: the latest)")
    results.add_argument("--set", metavar="JSON|@FILE|-", help="store this as the updated result")
    verify = results.add_mutually_exclusive_group()
    verify.add_argument("--verify", action="store_true", help="mark it verified")
    verify.add_argument("--unverify", action="store_true", help="mark it not verified")
    results.add_argument("--delete", action="store_true", help="delete it")
    results.add_argument("--yes", action="store_true", help="with --delete: do not ask")
    results.set_defaults(check=_check_results)


def make_client(args: argparse.Namespace) -> ApiClient:
    api = args.api or os.environ.get(ENV_API_URL, "")
    key = args.key or os.environ.get(ENV_API_KEY, "")
    org = args.org or os.environ.get(ENV_ORG, "")
    if not api:
        raise CliError(f"no API URL: pass --api URL or set {ENV_API_URL}")
    if urllib.parse.urlsplit(api).scheme not in ("http", "https"):
        raise CliError(f"--api must be an http(s) URL, got {api!r}")
    if not key:
        raise CliError(
            f"no API key: pass --key KEY or set {ENV_API_KEY} (an operator creates keys with functions-keys)"
        )
    if not org:
        raise CliError(f"no organization: pass --org ORG or set {ENV_ORG}")
    if not ORG_PATTERN.match(org):
        raise CliError(f"invalid organization {org!r}: 1-24 lowercase letters, digits and dashes")
    return ApiClient(api, key, org, timeout=args.request_timeout)


def run(args: argparse.Namespace, out: TextIO, err: TextIO) -> int:
    client = make_client(args)
    name = getattr(args, "name", None)
    if name is not None and args.command != "create" and not FUNCTION_NAME_PATTERN.match(name):
        raise CliError(f"invalid function name or id {name!r}")
    for iid in (getattr(args, "iid", None), getattr(args, "invocation", None)):
        if iid is not None and not _INVOCATION_ID.match(iid):
            raise CliError(f"invalid invocation id {iid!r}")
    if getattr(args, "subject", None) == "":
        raise CliError("the subject is empty")
    result: int = args.func(Context(client, args, out, err))
    return result


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    check = getattr(args, "check", None)
    problem = check(args) if check else None
    if problem:
        parser.error(problem)
    try:
        return run(args, sys.stdout, sys.stderr)
    except CliError as exc:
        print(f"error: {one_line(str(exc), 1000)}", file=sys.stderr)
        return EXIT_ERROR
    except KeyboardInterrupt as exc:
        message = str(exc) if isinstance(exc, Interrupted) else ""
        print(
            f"error: {message or 'interrupted (what was started on the platform goes on; see `show`)'}", file=sys.stderr
        )
        return EXIT_INTERRUPTED
    except Exception as exc:  # an answer of a shape nobody expected: still one line, no traceback
        print(f"error: unexpected {type(exc).__name__}: {one_line(str(exc))}", file=sys.stderr)
        return EXIT_ERROR


if __name__ == "__main__":
    sys.exit(main())
