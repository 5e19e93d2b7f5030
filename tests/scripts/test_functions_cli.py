"""scripts/functions.py: the CLI's own behaviour over real HTTP, against a small server on 127.0.0.1
that answers as the Functions API does (README, "Functions") for the calls under test and records
every request: request shapes, zips, the S3 multipart upload, waiting, error lines, exit codes.

End-to-end runs against the real API handlers live elsewhere; nothing here asserts what the API
itself decides.
"""

from __future__ import annotations

import contextlib
import email.policy
import email.utils
import io
import json
import socket
import sys
import threading
import time
import zipfile
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from email.parser import BytesParser
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import boto3
import pytest
from moto.server import ThreadedMotoServer

from scripts import functions
from scripts.functions import ApiClient, CliError, zip_source

KEY = "fkabcdefghij.c2VjcmV0LXNlY3JldC1zZWNyZXQtc2VjcmV0"
ORG = "acme"
FID = "fn-abcdefghij12"
BASE = f"/v1/orgs/{ORG}/functions"


@dataclass
class Seen:
    method: str
    path: str
    query: dict[str, list[str]]
    headers: dict[str, str]  # lower-case names
    body: bytes

    @property
    def json(self) -> Any:
        return json.loads(self.body) if self.body else None


class FakeApi:
    """A real HTTP server: `on(method, path, *answers)` scripts the answers to one route (each
    answer once, the last one repeated); anything unscripted is a 404 the test will see."""

    def __init__(self) -> None:
        self.routes: dict[tuple[str, str], list[tuple[int, Any, float, dict[str, str]]]] = {}
        self.seen: list[Seen] = []
        self.lock = threading.Lock()
        fake = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args: Any) -> None:
                pass

            def _handle(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length) if length else b""
                split = urlsplit(self.path)
                seen = Seen(
                    self.command,
                    split.path,
                    parse_qs(split.query),
                    {k.lower(): v for k, v in self.headers.items()},
                    body,
                )
                with fake.lock:
                    fake.seen.append(seen)
                    answers = fake.routes.get((self.command, split.path))
                    answer = (answers.pop(0) if len(answers) > 1 else answers[0]) if answers else None
                status, payload, delay, headers = answer or (
                    404,
                    {"error": f"unscripted {self.command} {split.path}"},
                    0.0,
                    {},
                )
                if delay:
                    time.sleep(delay)
                raw = payload if isinstance(payload, bytes) else json.dumps(payload).encode()
                kind = "text/html" if isinstance(payload, bytes) else "application/json"
                with contextlib.suppress(BrokenPipeError, ConnectionResetError):  # a client that gave up
                    self.send_response(status)
                    self.send_header("Content-Type", kind)
                    self.send_header("Content-Length", str(len(raw)))
                    for name, value in headers.items():
                        self.send_header(name, value)
                    self.end_headers()
                    self.wfile.write(raw)

            do_GET = do_POST = do_PUT = do_PATCH = do_DELETE = _handle

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.thread = threading.Thread(target=self.server.serve_forever, args=(0.05,), daemon=True)
        self.thread.start()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server.server_address[1]}"

    def on(
        self,
        method: str,
        path: str,
        *answers: tuple[int, Any] | tuple[int, Any, float] | tuple[int, Any, float, dict[str, str]],
    ) -> None:
        """Each answer: (status, JSON payload or raw bytes[, seconds to wait first[, headers]])."""
        self.routes[(method, path)] = [
            (a[0], a[1], a[2] if len(a) > 2 else 0.0, a[3] if len(a) > 3 else {}) for a in answers
        ]

    def calls(self) -> list[tuple[str, str]]:
        return [(s.method, s.path) for s in self.seen]

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()
        self.thread.join(5)


@pytest.fixture
def api(monkeypatch: pytest.MonkeyPatch) -> Iterator[FakeApi]:
    fake = FakeApi()
    monkeypatch.setenv("FUNCTIONS_API_URL", fake.url)
    monkeypatch.setenv("FUNCTIONS_API_KEY", KEY)
    monkeypatch.setenv("FUNCTIONS_ORG", ORG)
    try:
        yield fake
    finally:
        fake.stop()


def fn(status: str = "deployed", **changes: Any) -> dict[str, Any]:
    """A function as the API shapes it."""
    base = {
        "id": FID,
        "name": "hello",
        "org": ORG,
        "description": "",
        "handler": "hello.handler",
        "runtime": "python3.12",
        "memory_mb": 128,
        "timeout_seconds": 3,
        "environment": {},
        "secret_environment": [],
        "tags": [],
        "status": status,
        "error": None,
        "revision": 1,
        "code_sha256": "ab" * 32,
        "code_size": 2048,
        "lambda_function": f"ufn-dev-{ORG}-{FID}",
        "latest_version": None,
        "live": None,
        "created_at": "2026-05-01T10:00:00Z",
        "created_by": "fkabcdefghij",
        "updated_at": "2026-05-01T10:00:00Z",
        "updated_by": "fkabcdefghij",
    }
    return {**base, **changes}


def alias(status: str = "ready", version: int = 2, canary: dict[str, Any] | None = None) -> dict[str, Any]:
    return {"name": "live", "version": version, "canary": canary, "status": status, "error": None, "previous": None}


def version(n: int, status: str = "published", **changes: Any) -> dict[str, Any]:
    return {
        "version": n,
        "code_sha256": "cd" * 32,
        "config": {},
        "status": status,
        "error": None,
        "lambda_version": str(n),
        "description": "",
        "created_at": "2026-05-01T10:00:00Z",
        "created_by": "fkabcdefghij",
        **changes,
    }


def run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    code = functions.main(list(argv))
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def one_error_line(err: str) -> str:
    assert err.startswith("error: ") and err.count("\n") == 1 and err.endswith("\n"), err
    assert "Traceback" not in err
    return err[len("error: ") : -1]


def parse_multipart(content_type: str, body: bytes) -> list[tuple[str | None, str | None, bytes]]:
    """(name, filename, bytes) of each part, in order, parsed by the standard library's MIME parser."""
    message = BytesParser(policy=email.policy.HTTP).parsebytes(f"Content-Type: {content_type}\r\n\r\n".encode() + body)
    assert message.is_multipart()
    parts: list[tuple[str | None, str | None, bytes]] = []
    for part in message.iter_parts():
        name, payload = part.get_param("name", header="content-disposition"), part.get_payload(decode=True)
        assert isinstance(name, str | None) and isinstance(payload, bytes)
        parts.append((name, part.get_filename(), payload))
    return parts


def write_tree(root: Path, order: list[str] | None = None) -> None:
    files = {
        "main.py": "from lib.util import greet\n\ndef handler(event, context):\n    return greet(event)\n",
        "lib/__init__.py": "",
        "lib/util.py": "def greet(event):\n    return {'hello': event.get('name')}\n",
        "data/words.json": '["a", "b"]\n',
        "__pycache__/main.cpython-312.pyc": "compiled",
        "lib/__pycache__/util.cpython-312.pyc": "compiled",
        ".git/HEAD": "ref: refs/heads/main\n",
        "stray.pyc": "compiled",
    }
    for name in order or list(files):
        path = root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(files[name])


# --- zips --------------------------------------------------------------------------------------


def test_zip_is_reproducible_and_leaves_out_caches_and_git(tmp_path: Path) -> None:
    one, two = tmp_path / "one", tmp_path / "two"
    write_tree(one)
    write_tree(two, order=["stray.pyc", "lib/util.py", ".git/HEAD", "data/words.json", "lib/__init__.py", "main.py",
                           "lib/__pycache__/util.cpython-312.pyc", "__pycache__/main.cpython-312.pyc"])  # fmt: skip
    # Different times and modes: same tree, same bytes.
    for i, path in enumerate(sorted(two.rglob("*"))):
        if path.is_file():
            path.chmod(0o755 if i % 2 else 0o600)
            path.touch()
    (two / "main.py").chmod(0o755)
    first, second = zip_source(one), zip_source(two)
    assert first == second

    archive = zipfile.ZipFile(io.BytesIO(first))
    assert archive.namelist() == ["data/words.json", "lib/__init__.py", "lib/util.py", "main.py"]
    assert {info.date_time for info in archive.infolist()} == {(1980, 1, 1, 0, 0, 0)}
    assert {info.external_attr >> 16 for info in archive.infolist()} == {0o100644}
    assert archive.read("lib/util.py") == (one / "lib/util.py").read_bytes()

    (two / "lib/util.py").write_text("def greet(event):\n    return {}\n")
    assert zip_source(two) != first


@pytest.mark.parametrize("kind", ["file", "directory"])
def test_zip_refuses_symlinks(tmp_path: Path, kind: str) -> None:
    write_tree(tmp_path / "src")
    target = tmp_path / "elsewhere"
    target.mkdir()
    (target / "secret.txt").write_text("not yours")
    link = tmp_path / "src" / "lib" / "linked"
    link.symlink_to(target / "secret.txt" if kind == "file" else target)
    with pytest.raises(CliError, match=r"lib/linked is a symbolic link"):
        zip_source(tmp_path / "src")


def test_zip_of_nothing_but_caches_is_refused(tmp_path: Path) -> None:
    (tmp_path / "__pycache__").mkdir()
    (tmp_path / "__pycache__" / "x.pyc").write_bytes(b"x")
    with pytest.raises(CliError, match="has no files to deploy"):
        zip_source(tmp_path)


def test_upload_is_accepted_by_an_s3_presigned_post(tmp_path: Path) -> None:
    """The multipart body is what S3 accepts: a moto server (real HTTP, werkzeug's parser) stores
    exactly the zip under the presigned key."""
    write_tree(tmp_path)
    data = zip_source(tmp_path)
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    try:
        host, port = server.get_host_and_port()
        s3 = boto3.client("s3", endpoint_url=f"http://{host}:{port}", region_name="us-east-1")
        s3.create_bucket(Bucket="code")
        key = f"uploads/{ORG}/{FID}/up-1.zip"
        grant = s3.generate_presigned_post(
            "code", key, Conditions=[["content-length-range", 1, 1_000_000]], ExpiresIn=600
        )
        ApiClient("http://unused", KEY, ORG).upload(grant["url"], grant["fields"], data)
        assert s3.get_object(Bucket="code", Key=key)["Body"].read() == data
    finally:
        server.stop()


# --- create / update ---------------------------------------------------------------------------


def test_create_from_a_file_sends_it_inline_and_waits_for_the_deployment(
    api: FakeApi, capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    source = tmp_path / "hello.py"
    source.write_text("def handler(event, context):\n    return {'ok': True}\n")
    api.on("POST", BASE, (201, fn("deploying")))
    api.on("GET", f"{BASE}/{FID}", (200, fn("deploying")), (200, fn("deploying")), (200, fn("deployed", revision=1)))
    code, out, err = run(
        capsys, "create", "hello", "--source", str(source), "--memory", "256", "--timeout", "10",
        "--env", "GREETING=hi", "--env", "QUERY=a=b", "--secret-env", "TOKEN=s3cr3t-value",
        "--tag", "team-a", "--tag", "beta", "--description", "says hello", "--poll-interval", "0.01",
    )  # fmt: skip
    assert code == 0, err
    create = api.seen[0]
    assert (create.method, create.path) == ("POST", BASE)
    assert create.headers["authorization"] == f"Bearer {KEY}"
    assert create.headers["content-type"] == "application/json"
    assert create.json == {
        "name": "hello",
        "source": source.read_text(),
        "handler": "hello.handler",  # the file's stem
        "memory_mb": 256,
        "timeout_seconds": 10,
        "environment": {"GREETING": "hi", "QUERY": "a=b"},
        "secret_environment": {"TOKEN": "s3cr3t-value"},
        "tags": ["team-a", "beta"],
        "description": "says hello",
    }
    assert api.calls()[1:] == [("GET", f"{BASE}/{FID}")] * 3
    # Not a terminal: one progress line per status, the summary on stdout.
    assert err.splitlines() == ["hello: deploying (0s)", "hello: deployed (0s)"]
    assert out.startswith(f"hello: deployed in 0s ({FID}, revision 1, code 2.0 KB)")
    assert "s3cr3t-value" not in out + err


def test_create_with_handler_and_json_output(api: FakeApi, capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    source = tmp_path / "hello.py"
    source.write_text("def run(event, context):\n    return 1\n")
    api.on("POST", BASE, (201, fn("deploying", handler="hello.run")))
    api.on("GET", f"{BASE}/{FID}", (200, fn("deployed", handler="hello.run", revision=2)))
    code, out, _ = run(capsys, "create", "hello", "--source", str(source), "--handler", "hello.run", "--json",
                       "--poll-interval", "0.01")  # fmt: skip
    assert code == 0
    assert api.seen[0].json == {"name": "hello", "handler": "hello.run", "source": source.read_text()}
    assert json.loads(out) == fn("deployed", handler="hello.run", revision=2)


def test_create_from_a_directory_zips_uploads_and_applies_the_upload(
    api: FakeApi, capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    write_tree(tmp_path / "src")
    fields = {"key": f"uploads/{ORG}/{FID}/up-1.zip", "policy": "eyJjb25kaXRpb25zIjogW119", "x-amz-signature": "abc"}
    api.on("POST", BASE, (201, fn("draft", handler="main.handler", code_sha256=None, code_size=None)))
    api.on(
        "POST",
        f"{BASE}/{FID}/code-upload",
        (
            201,
            {
                "upload_id": "up-1",
                "url": f"{api.url}/bucket",
                "fields": fields,
                "max_bytes": 50_000_000,
                "expires_in": 900,
            },
        ),
    )
    api.on("POST", "/bucket", (204, b""))
    api.on("PATCH", f"{BASE}/{FID}", (200, fn("deploying", revision=2)))
    api.on("GET", f"{BASE}/{FID}", (200, fn("deployed", revision=2)))
    code, _, err = run(capsys, "create", "hello", "--source", str(tmp_path / "src"), "--poll-interval", "0.01")
    assert code == 0, err
    assert api.calls() == [
        ("POST", BASE),
        ("POST", f"{BASE}/{FID}/code-upload"),
        ("POST", "/bucket"),
        ("PATCH", f"{BASE}/{FID}"),
        ("GET", f"{BASE}/{FID}"),
    ]
    create, grant, upload, patch = api.seen[:4]
    assert create.json == {"name": "hello"}  # no source: the code comes by upload; handler: the API's default
    assert grant.headers["authorization"] == f"Bearer {KEY}"
    assert patch.json == {"code_upload_id": "up-1"}
    # The presigned POST: no API key sent to storage; the form fields first, then the file.
    assert "authorization" not in upload.headers
    parts = parse_multipart(upload.headers["content-type"], upload.body)
    assert [(name, filename) for name, filename, _ in parts] == [
        ("key", None), ("policy", None), ("x-amz-signature", None), ("file", "code.zip"),
    ]  # fmt: skip
    assert [value.decode() for _, _, value in parts[:3]] == list(fields.values())
    assert parts[3][2] == zip_source(tmp_path / "src")


def test_upload_refused_by_storage_says_how_to_retry(
    api: FakeApi, capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    write_tree(tmp_path)
    api.on("POST", BASE, (201, fn("draft")))
    api.on("POST", f"{BASE}/{FID}/code-upload", (201, {"upload_id": "u", "url": f"{api.url}/bucket", "fields": {},
                                                     "max_bytes": 10_000_000, "expires_in": 900}))  # fmt: skip
    s3_error = b"<?xml version='1.0'?>\n<Error><Code>AccessDenied</Code>\n<Message>Invalid according to Policy: Policy expired.</Message></Error>"
    api.on("POST", "/bucket", (403, s3_error))
    code, _, err = run(capsys, "create", "hello", "--source", str(tmp_path))
    assert code == 1
    assert one_error_line(err) == (
        "AccessDenied: Invalid according to Policy: Policy expired. (HTTP 403); hello was created without code, "
        f"retry with: platform-functions update hello --source {tmp_path}"
    )
    assert [c[0] for c in api.calls()] == ["POST", "POST", "POST"]  # no PATCH of a failed upload


def test_directory_without_the_handler_module_is_refused_before_any_call(
    api: FakeApi, capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    (tmp_path / "app.py").write_text("def handler(e, c):\n    return 1\n")
    code, _, err = run(capsys, "create", "hello", "--source", str(tmp_path))
    assert code == 1
    assert "needs main.py" in one_error_line(err)
    assert api.seen == []


def test_symlink_in_the_source_is_one_error_line_and_no_call(
    api: FakeApi, capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    write_tree(tmp_path / "src")
    (tmp_path / "src" / "etc").symlink_to("/etc")
    code, _, err = run(capsys, "create", "hello", "--source", str(tmp_path / "src"))
    assert code == 1
    assert one_error_line(err).endswith("src/etc is a symbolic link; copy the file or directory instead")
    assert api.seen == []


def test_zip_over_the_upload_limit_is_not_uploaded(
    api: FakeApi, capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    write_tree(tmp_path)
    api.on("PATCH", f"{BASE}/hello", (200, fn("deploying")))
    api.on("POST", f"{BASE}/hello/code-upload", (201, {"upload_id": "u", "url": f"{api.url}/bucket", "fields": {},
                                                      "max_bytes": 100, "expires_in": 900}))  # fmt: skip
    code, _, err = run(capsys, "update", "hello", "--source", str(tmp_path))
    assert code == 1
    assert "over the 100 B upload limit" in one_error_line(err)
    assert api.calls() == [("POST", f"{BASE}/hello/code-upload")]


def test_update_with_a_file_patches_source_and_handler(
    api: FakeApi, capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    source = tmp_path / "greeter.py"
    source.write_text("def handler(event, context):\n    return 2\n")
    api.on("PATCH", f"{BASE}/hello", (200, fn("deploying", revision=3)))
    code, out, _ = run(capsys, "update", "hello", "--source", str(source), "--memory", "512", "--no-wait")
    assert code == 0
    assert api.calls() == [("PATCH", f"{BASE}/hello")]  # --no-wait: no polling
    assert api.seen[0].json == {"memory_mb": 512, "source": source.read_text(), "handler": "greeter.handler"}
    assert out.startswith("hello: deploying")


def test_big_file_goes_as_a_zip_named_after_its_handler_module(
    api: FakeApi, capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    source = tmp_path / "big.py"
    source.write_text("def handler(event, context):\n    return 1\n" + "# padding\n" * 30_000)  # > 256 KB
    api.on("POST", f"{BASE}/hello/code-upload", (201, {"upload_id": "u-9", "url": f"{api.url}/bucket", "fields": {"key": "k"},
                                                      "max_bytes": 10_000_000, "expires_in": 900}))  # fmt: skip
    api.on("POST", "/bucket", (204, b""))
    api.on("PATCH", f"{BASE}/hello", (200, fn("deploying")))
    code, _, err = run(capsys, "update", "hello", "--source", str(source), "--no-wait")
    assert code == 0, err
    patch = api.seen[-1].json
    assert patch == {"handler": "big.handler", "code_upload_id": "u-9"}
    zipped = parse_multipart(api.seen[1].headers["content-type"], api.seen[1].body)[-1][2]
    assert zipfile.ZipFile(io.BytesIO(zipped)).read("big.py") == source.read_bytes()


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["update", "hello"], "nothing to update"),
        (["update", "hello", "--source", "missing.py"], "--source missing.py: no such file or directory"),
        (["create", "hello", "--source", "hello-world.py"], "hello-world.py is not an importable module name"),
        (["create", "9lives"], "invalid function name '9lives'"),
        (["show", "../../keys"], "invalid function name or id '../../keys'"),
    ],
)
def test_usage_errors_are_one_line_and_make_no_call(
    api: FakeApi, capsys: pytest.CaptureFixture[str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
    argv: list[str], message: str,
) -> None:  # fmt: skip
    monkeypatch.chdir(tmp_path)
    (tmp_path / "hello-world.py").write_text("def handler(e, c):\n    return 1\n")
    code, _, err = run(capsys, *argv)
    assert code == 1
    assert one_error_line(err).startswith(message)
    assert api.seen == []


# --- waiting -----------------------------------------------------------------------------------


def test_failed_deployment_prints_its_error_and_exits_1(api: FakeApi, capsys: pytest.CaptureFixture[str]) -> None:
    api.on("PATCH", f"{BASE}/hello", (200, fn("deploying")))
    api.on("GET", f"{BASE}/{FID}", (200, fn("deploying")),
           (200, fn("failed", error="Runtime.ImportModuleError: No module named 'hello'")))  # fmt: skip
    code, out, err = run(capsys, "update", "hello", "--memory", "256", "--poll-interval", "0.01")
    assert code == 1
    lines = err.splitlines()
    assert lines[:2] == ["hello: deploying (0s)", "hello: failed (0s)"]
    assert lines[2] == "error: hello: deployment failed: Runtime.ImportModuleError: No module named 'hello'"
    assert len(lines) == 3 and out == ""


def test_waiting_gives_up_after_the_wait_timeout(api: FakeApi, capsys: pytest.CaptureFixture[str]) -> None:
    api.on("PATCH", f"{BASE}/hello", (200, fn("deploying")))
    api.on("GET", f"{BASE}/{FID}", (200, fn("deploying")))
    started = time.monotonic()
    code, _, err = run(capsys, "update", "hello", "--tag", "x", "--wait-timeout", "0.3", "--poll-interval", "0.05")
    took = time.monotonic() - started
    assert code == 1
    assert 0.3 <= took < 3
    lines = err.splitlines()
    assert lines[0] == "hello: deploying (0s)"
    assert lines[-1] == "error: hello: deployment still deploying after 0.3s (--wait-timeout)"
    assert len(lines) == 2
    assert len([c for c in api.calls() if c[0] == "GET"]) >= 3


def test_on_a_terminal_progress_is_one_rewritten_line(
    api: FakeApi, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    class Tty(io.StringIO):
        def isatty(self) -> bool:
            return True

    tty = Tty()
    monkeypatch.setattr(sys, "stderr", tty)
    api.on("PATCH", f"{BASE}/hello", (200, fn("deploying")))
    api.on("GET", f"{BASE}/{FID}", (200, fn("deploying")), (200, fn("deploying")), (200, fn("deployed")))
    assert functions.main(["update", "hello", "--memory", "256", "--poll-interval", "0.01"]) == 0
    written = tty.getvalue()
    assert "\n" not in written  # rewritten in place, then cleared for the summary on stdout
    assert written.count("\r\033[K") == 5  # 4 statuses shown, 1 clear
    assert written.endswith("hello: deployed (0s)\r\033[K")
    assert capsys.readouterr().out.startswith("hello: deployed in 0s")


# --- reads -------------------------------------------------------------------------------------


def test_list_follows_cursors_and_filters_by_tag(api: FakeApi, capsys: pytest.CaptureFixture[str]) -> None:
    first = fn("deployed", live=alias(version=3, canary={"version": 4, "weight": 0.1}), latest_version=4)
    second = fn("deploying", id="fn-zzzzzzzzzzzz", name="other", updated_at="2026-05-02T09:00:00Z")
    api.on(
        "GET",
        BASE,
        (200, {"functions": [first], "next_cursor": "c1"}),
        (200, {"functions": [second], "next_cursor": None}),
    )
    code, out, _ = run(capsys, "list", "--tag", "beta")
    assert code == 0
    assert [s.query for s in api.seen] == [
        {"limit": ["100"], "tag": ["beta"]},
        {"limit": ["100"], "tag": ["beta"], "cursor": ["c1"]},
    ]
    lines = out.splitlines()
    assert lines[0].split() == ["NAME", "ID", "STATUS", "LIVE", "LATEST", "UPDATED"]
    assert lines[1].split() == ["hello", FID, "deployed", "3", "(+4", "at", "10%)", "4", "2026-05-01T10:00:00Z"]
    assert lines[2].split() == ["other", "fn-zzzzzzzzzzzz", "deploying", "-", "-", "2026-05-02T09:00:00Z"]

    api.on(
        "GET",
        BASE,
        (200, {"functions": [first], "next_cursor": "c1"}),
        (200, {"functions": [second], "next_cursor": None}),
    )
    code, out, _ = run(capsys, "list", "--json")
    assert code == 0 and json.loads(out) == {"functions": [first, second], "next_cursor": None}


def test_show_human_and_json(api: FakeApi, capsys: pytest.CaptureFixture[str]) -> None:
    shown = fn("deployed", environment={"B": "2", "A": "1"}, secret_environment=["TOKEN"], tags=["beta"],
               live=alias(version=2), latest_version=3)  # fmt: skip
    api.on("GET", f"{BASE}/hello", (200, shown))
    code, out, _ = run(capsys, "show", "hello")
    assert code == 0
    assert f"name:        hello ({FID})" in out
    assert "environment: A=1, B=2" in out and "secrets:     TOKEN" in out and "live:        2\n" in out
    assert "memory:      128 MB, timeout 3 s" in out

    code, out, _ = run(capsys, "--json", "show", "hello")
    assert code == 0 and json.loads(out) == shown
    assert api.seen[-1].headers["authorization"] == f"Bearer {KEY}"


def test_versions_marks_live_and_canary(api: FakeApi, capsys: pytest.CaptureFixture[str]) -> None:
    api.on(
        "GET", f"{BASE}/hello/versions", (200, {"versions": [version(3), version(2), version(1)], "next_cursor": None})
    )
    api.on("GET", f"{BASE}/hello", (200, fn(live=alias(version=2, canary={"version": 3, "weight": 0.25}))))
    code, out, _ = run(capsys, "versions", "hello")
    assert code == 0
    rows = [line.split()[:4] for line in out.splitlines()[1:]]
    assert rows == [["3", "published", "canary", "25%"], ["2", "published", "live", "cdcdcdcdcdcd"],
                    ["1", "published", "cdcdcdcdcdcd", "2026-05-01T10:00:00Z"]]  # fmt: skip


# --- versions and live -------------------------------------------------------------------------


def test_publish_waits_for_the_version(api: FakeApi, capsys: pytest.CaptureFixture[str]) -> None:
    api.on("POST", f"{BASE}/hello/versions", (201, version(4, "publishing")))
    api.on("GET", f"{BASE}/hello/versions/4", (200, version(4, "publishing")), (200, version(4, "published")))
    code, out, err = run(capsys, "publish", "hello", "--description", "first cut", "--poll-interval", "0.01")
    assert code == 0
    assert api.seen[0].json == {"description": "first cut"}
    assert err.splitlines() == ["hello version 4: publishing (0s)", "hello version 4: published (0s)"]
    assert out.startswith("hello: version 4 published; make it live with:")


def test_publish_says_when_nothing_changed(api: FakeApi, capsys: pytest.CaptureFixture[str]) -> None:
    api.on("POST", f"{BASE}/hello/versions", (200, version(4, unchanged=True)))
    code, out, _ = run(capsys, "publish", "hello")
    assert code == 0
    assert api.calls() == [("POST", f"{BASE}/hello/versions")]
    assert api.seen[0].json == {}
    assert "version 4 published (unchanged" in out


def test_publish_while_the_draft_is_not_deployed(api: FakeApi, capsys: pytest.CaptureFixture[str]) -> None:
    api.on("POST", f"{BASE}/hello/versions", (409, {"error": "the draft is not deployed (status deploying)"}))
    code, _, err = run(capsys, "publish", "hello")
    assert code == 1
    assert one_error_line(err) == "the draft is not deployed (status deploying) (HTTP 409)"


def test_promote_with_a_canary_waits_until_the_alias_is_ready(api: FakeApi, capsys: pytest.CaptureFixture[str]) -> None:
    canary = {"version": 4, "weight": 0.1}
    api.on("PUT", f"{BASE}/hello/aliases/live", (200, alias("updating", 3, canary)))
    api.on("GET", f"{BASE}/hello/aliases/live", (200, alias("updating", 3, canary)), (200, alias("ready", 3, canary)))
    code, out, err = run(capsys, "promote", "hello", "3", "--canary", "4:10%", "--poll-interval", "0.01")
    assert code == 0
    assert api.seen[0].json == {"version": 3, "canary": {"version": 4, "weight": 0.1}}
    assert err.splitlines() == ["hello live: updating (0s)", "hello live: ready (0s)"]
    assert out == "hello: promoted; live -> version 3 (+4 at 10%)\n"


@pytest.mark.parametrize("canary", ["4:1.5", "4", "x:0.1", "4:0%"])
def test_bad_canary_is_an_argparse_error(api: FakeApi, capsys: pytest.CaptureFixture[str], canary: str) -> None:
    with pytest.raises(SystemExit) as exit_:
        functions.main(["promote", "hello", "3", "--canary", canary])
    assert exit_.value.code == 2
    assert "argument --canary" in one_error_line(capsys.readouterr().err)
    assert api.seen == []


def test_rollback_waits_and_reports_a_409(api: FakeApi, capsys: pytest.CaptureFixture[str]) -> None:
    api.on("POST", f"{BASE}/hello/rollback", (200, alias("updating", 2)))
    api.on("GET", f"{BASE}/hello/aliases/live", (200, alias("failed", 2) | {"error": "ResourceConflictException"}))
    code, _, err = run(capsys, "rollback", "hello", "--poll-interval", "0.01")
    assert code == 1
    assert err.splitlines()[-1] == "error: hello: moving live failed: ResourceConflictException"

    api.on("POST", f"{BASE}/hello/rollback", (409, {"error": "nothing to roll back to"}))
    code, _, err = run(capsys, "rollback", "hello")
    assert code == 1
    assert one_error_line(err) == "nothing to roll back to (HTTP 409)"


def test_delete_needs_yes_without_a_terminal(
    api: FakeApi, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(sys, "stdin", io.StringIO(""))
    code, _, err = run(capsys, "delete", "hello")
    assert code == 1 and "without --yes" in one_error_line(err)
    assert api.seen == []

    api.on("DELETE", f"{BASE}/hello", (202, {"id": FID, "status": "deleting"}))
    code, out, _ = run(capsys, "delete", "hello", "--yes")
    assert code == 0 and out == f"hello: deleting ({FID})\n"
    assert api.calls() == [("DELETE", f"{BASE}/hello")]


# --- invoke ------------------------------------------------------------------------------------


IID = "iv01J5ABCDEF0123456789abcdef"  # `iv` + 10 characters of time + 16 random


def iv(n: int) -> str:
    return f"iv01J5ABCDEF{n:016d}"


def invocation(status: str = "succeeded", result: Any = None, error: dict[str, str] | None = None) -> dict[str, Any]:
    """A sync invoke's answer as the API shapes it."""
    return {"invocation_id": IID, "status": status, "result": result, "error": error, "executed_version": "3",
            "request_id": "req-1", "duration_ms": 12.5, "billed_duration_ms": 13}  # fmt: skip


def record(iid: str = IID, status: str = "succeeded", **changes: Any) -> dict[str, Any]:
    """An invocation record as the API shapes it."""
    final = status not in ("queued", "running")
    base = {
        "invocation_id": iid, "function_id": FID, "function_name": "hello", "mode": "async", "qualifier": "live",
        "executed_version": "3" if final else None, "request_id": "req-" + iid[-4:], "status": status,
        "created_at": "2026-05-01T10:00:00Z", "started_at": "2026-05-01T10:00:01Z" if final else None,
        "finished_at": "2026-05-01T10:00:02Z" if final else None, "duration_ms": 840.0 if final else None,
        "billed_duration_ms": 841 if final else None, "error": None, "payload_sha256": "ef" * 32, "payload_size": 18,
        "result": {"ok": True} if status == "succeeded" else None, "batch_id": None, "subject": None,
    }  # fmt: skip
    return {**base, **changes}


INVOCATIONS = f"/v1/orgs/{ORG}/invocations"


def test_invoke_prints_the_result_as_json(api: FakeApi, capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    payload = tmp_path / "event.json"
    payload.write_text('{"name": "Ana", "n": [1, 2]}')
    api.on("POST", f"{BASE}/hello/invoke", (200, invocation(result={"greeting": "hello Ana"})))
    code, out, err = run(capsys, "invoke", "hello", "--qualifier", "3", "--payload", f"@{payload}", "--verbose")
    assert code == 0
    assert api.seen[0].json == {"qualifier": 3, "payload": {"name": "Ana", "n": [1, 2]}}
    assert json.loads(out) == {"greeting": "hello Ana"}
    assert err == f"invocation {IID}, version 3, request req-1, 12.5 ms (billed 13 ms)\n"


def test_invoke_reads_the_payload_from_stdin(
    api: FakeApi, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(sys, "stdin", io.StringIO('"just a string"'))
    api.on("POST", f"{BASE}/hello/invoke", (200, invocation(result=[1, 2])))
    code, out, err = run(capsys, "invoke", "hello", "--qualifier", "draft", "--payload", "-")
    assert (code, err) == (0, "")
    assert api.seen[0].json == {"qualifier": "draft", "payload": "just a string"}
    assert json.loads(out) == [1, 2]


def test_function_error_is_one_line_and_exit_1(api: FakeApi, capsys: pytest.CaptureFixture[str]) -> None:
    api.on(
        "POST",
        f"{BASE}/hello/invoke",
        (200, invocation("failed", error={"type": "ValueError", "message": "bad input"})),
    )
    code, out, err = run(capsys, "invoke", "hello", "--payload", "{}")
    assert (code, out, err) == (1, "", "error: ValueError: bad input\n")
    assert api.seen[0].json == {"payload": {}}

    code, out, err = run(capsys, "invoke", "hello", "--json")
    assert code == 1 and json.loads(out)["error"] == {"type": "ValueError", "message": "bad input"}
    assert err == "error: ValueError: bad input\n"


@pytest.mark.parametrize(
    ("payload", "message"),
    [
        ('{"name": ', "--payload is not valid JSON: Expecting value: line 1 column 10 (char 9)"),
        ("@nowhere.json", "--payload @nowhere.json: No such file or directory"),
    ],
)
def test_bad_payload_is_one_line_and_no_call(
    api: FakeApi, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch, tmp_path: Path,
    payload: str, message: str,
) -> None:  # fmt: skip
    monkeypatch.chdir(tmp_path)
    code, _, err = run(capsys, "invoke", "hello", "--payload", payload)
    assert code == 1 and one_error_line(err) == message
    assert api.seen == []


@pytest.fixture
def ctrl_c_on_sleep(monkeypatch: pytest.MonkeyPatch) -> Callable[[int], list[float]]:
    """`arm(n)`: the CLI's sleeps (main thread only: the fake server's own are real) return at
    once and the n-th raises KeyboardInterrupt, as Ctrl-C would; the list of seconds asked for."""

    def arm(n: int) -> list[float]:
        slept: list[float] = []
        real = time.sleep

        def sleep(seconds: float) -> None:
            if threading.current_thread() is not threading.main_thread():
                real(seconds)
                return
            slept.append(seconds)
            if len(slept) >= n:
                raise KeyboardInterrupt

        monkeypatch.setattr(time, "sleep", sleep)
        return slept

    return arm


def test_sync_invoke_sends_the_idempotency_key_as_a_header(api: FakeApi, capsys: pytest.CaptureFixture[str]) -> None:
    api.on("POST", f"{BASE}/hello/invoke", (200, invocation(result="done")))
    code, out, _ = run(capsys, "invoke", "hello", "--payload", '{"order": 17}', "--idempotency-key", "order-17")
    assert code == 0 and json.loads(out) == "done"
    call = api.seen[0]
    assert call.headers["idempotency-key"] == "order-17"
    assert call.json == {"payload": {"order": 17}}  # a sync invoke's body is unchanged: no "mode"

    code, _, _ = run(capsys, "invoke", "hello")
    assert code == 0 and "idempotency-key" not in api.seen[1].headers


def test_sync_invoke_that_timed_out_is_one_line_and_exit_1(api: FakeApi, capsys: pytest.CaptureFixture[str]) -> None:
    timed_out = invocation(
        "timed_out", error={"type": "Sandbox.Timedout", "message": "Task timed out after 3.00 seconds"}
    )
    api.on("POST", f"{BASE}/hello/invoke", (200, timed_out))
    code, out, err = run(capsys, "invoke", "hello")
    assert (code, out, err) == (1, "", "error: timed out: Task timed out after 3.00 seconds\n")

    api.on("POST", f"{BASE}/hello/invoke", (200, {**invocation("timed_out"), "duration_ms": 3000.4}))
    code, out, err = run(capsys, "invoke", "hello")
    assert (code, out, err) == (1, "", "error: timed out: after 3.0 s\n")


@pytest.mark.parametrize(
    ("headers", "body", "message"),
    [
        ({"Retry-After": "17"}, {"error": "over 600 invocations this minute"},
         "over 600 invocations this minute (HTTP 429); retry after 17s"),
        ({}, {"error": "monthly budget of 400000 GB-seconds used up"},
         "monthly budget of 400000 GB-seconds used up (HTTP 429)"),
    ],
)  # fmt: skip
def test_quota_errors_say_when_to_retry(
    api: FakeApi, capsys: pytest.CaptureFixture[str], headers: dict[str, str], body: Any, message: str
) -> None:
    api.on("POST", f"{BASE}/hello/invoke", (429, body, 0.0, headers))
    code, out, err = run(capsys, "invoke", "hello", "--async")
    assert code == 1 and out == ""
    assert one_error_line(err) == message
    assert len(api.seen) == 1  # no retry behind the user's back


def test_retry_after_as_an_http_date_becomes_seconds() -> None:
    soon = email.utils.formatdate(time.time() + 60, usegmt=True)
    assert functions._retry_after(soon) in ("59s", "60s")
    assert functions._retry_after("Wed, 21 Oct 2015 07:28:00 GMT") == "0s"  # past: now
    assert functions._retry_after("soon-ish") == "soon-ish" and functions._retry_after(" ") is None


def test_async_invoke_prints_the_invocation_id(api: FakeApi, capsys: pytest.CaptureFixture[str]) -> None:
    api.on("POST", f"{BASE}/hello/invoke", (202, {"invocation_id": IID, "status": "queued"}))
    code, out, err = run(
        capsys, "invoke", "hello", "--async", "--qualifier", "live", "--payload", "[1]",
        "--callback-url", "https://example.com/hook?x=1", "--idempotency-key", "k" * 128,
    )  # fmt: skip
    assert code == 0
    assert out == f"{IID}\n"  # just the id: iid=$(functions.py invoke ... --async)
    assert err == f"hello: queued; see it with: platform-functions invocation {IID}\n"
    call = api.seen[0]
    assert call.json == {
        "qualifier": "live",
        "payload": [1],
        "mode": "async",
        "callback_url": "https://example.com/hook?x=1",
    }
    assert call.headers["idempotency-key"] == "k" * 128
    assert api.calls() == [("POST", f"{BASE}/hello/invoke")]  # no --wait: no polling

    code, out, _ = run(capsys, "invoke", "hello", "--async", "--json")
    assert code == 0 and json.loads(out) == {"invocation_id": IID, "status": "queued"}


def test_async_invoke_with_wait_polls_the_record_until_it_is_final(
    api: FakeApi, capsys: pytest.CaptureFixture[str]
) -> None:
    api.on("POST", f"{BASE}/hello/invoke", (202, {"invocation_id": IID, "status": "queued"}))
    api.on("GET", f"{INVOCATIONS}/{IID}", (200, record(status="queued")), (200, record(status="running")),
           (200, record(status="running")), (200, record(result={"greeting": "hi"})))  # fmt: skip
    code, out, err = run(capsys, "invoke", "hello", "--async", "--wait", "--verbose", "--poll-interval", "0.01")
    assert code == 0, err
    assert api.seen[0].json == {"mode": "async"}
    assert api.calls()[1:] == [("GET", f"{INVOCATIONS}/{IID}")] * 4  # org-level record, until final
    assert err.splitlines() == [
        f"hello {IID}: queued (0s)",
        f"hello {IID}: running (0s)",
        f"hello {IID}: succeeded (0s)",
        f"invocation {IID}, version 3, request req-cdef, 840.0 ms (billed 841 ms)",
    ]
    assert json.loads(out) == {"greeting": "hi"}  # printed like a sync invoke's result


@pytest.mark.parametrize(
    ("final", "line"),
    [
        (record(status="failed", error={"type": "KeyError", "message": "'name'"}), "error: KeyError: 'name'"),
        (record(status="timed_out", error={"type": "Sandbox.Timedout", "message": "Task timed out after 60.00 seconds"}),
         "error: timed out: Task timed out after 60.00 seconds"),
    ],
)  # fmt: skip
def test_async_invoke_with_wait_exits_1_when_it_failed(
    api: FakeApi, capsys: pytest.CaptureFixture[str], final: dict[str, Any], line: str
) -> None:
    api.on("POST", f"{BASE}/hello/invoke", (202, {"invocation_id": IID, "status": "queued"}))
    api.on("GET", f"{INVOCATIONS}/{IID}", (200, record(status="running")), (200, final))
    code, out, err = run(capsys, "invoke", "hello", "--async", "--wait", "--poll-interval", "0.01")
    assert code == 1 and out == ""
    assert err.splitlines()[-1] == line and err.count("error:") == 1

    api.on("GET", f"{INVOCATIONS}/{IID}", (200, final))
    code, out, err = run(capsys, "invoke", "hello", "--async", "--wait", "--json", "--poll-interval", "0.01")
    assert code == 1 and json.loads(out) == final and err.splitlines()[-1] == line


def test_async_wait_gives_up_or_is_interrupted_with_how_to_follow(
    api: FakeApi, capsys: pytest.CaptureFixture[str], ctrl_c_on_sleep: Callable[[int], list[float]]
) -> None:
    api.on("POST", f"{BASE}/hello/invoke", (202, {"invocation_id": IID, "status": "queued"}))
    api.on("GET", f"{INVOCATIONS}/{IID}", (200, record(status="running")))
    code, _, err = run(
        capsys, "invoke", "hello", "--async", "--wait", "--wait-timeout", "0.2", "--poll-interval", "0.05"
    )
    assert code == 1
    assert err.splitlines()[-1] == (
        f"error: invocation {IID} still running after 0.2s (--wait-timeout); "
        f"see it with: platform-functions invocation {IID}"
    )

    slept = ctrl_c_on_sleep(3)
    code, out, err = run(capsys, "invoke", "hello", "--async", "--wait")
    assert code == 130 and out == "" and slept == [1.0, 1.0, 1.0]
    assert err.splitlines()[-1] == (
        f"error: interrupted; invocation {IID} goes on, see it with: platform-functions invocation {IID}"
    )


def test_a_replayed_async_invocation_that_already_finished_is_fetched_once(
    api: FakeApi, capsys: pytest.CaptureFixture[str]
) -> None:
    api.on("POST", f"{BASE}/hello/invoke", (202, {"invocation_id": IID, "status": "succeeded"}))
    api.on("GET", f"{INVOCATIONS}/{IID}", (200, record(result=42)))
    code, out, _ = run(capsys, "invoke", "hello", "--async", "--wait", "--idempotency-key", "again")
    assert (code, json.loads(out)) == (0, 42)
    assert api.calls() == [("POST", f"{BASE}/hello/invoke"), ("GET", f"{INVOCATIONS}/{IID}")]


def test_dry_run_prints_the_checks(api: FakeApi, capsys: pytest.CaptureFixture[str]) -> None:
    checks = ["function hello is deployed", {"name": "payload", "detail": "18 B, under the 6 MB sync limit"},
              {"name": "quota"}]  # fmt: skip
    api.on("POST", f"{BASE}/hello/invoke", (200, {"status": "valid", "checks": checks}))
    code, out, err = run(capsys, "invoke", "hello", "--dry-run", "--payload", '{"a": 1}', "--qualifier", "2")
    assert (code, err) == (0, "")
    assert api.seen[0].json == {"qualifier": 2, "payload": {"a": 1}, "mode": "dryrun"}
    assert out.splitlines() == [
        "ok  function hello is deployed",
        "ok  payload: 18 B, under the 6 MB sync limit",
        "ok  quota",
        "hello: valid (3 checks passed); nothing was run",
    ]

    api.on("POST", f"{BASE}/hello/invoke", (400, {"error": "qualifier: version 9 does not exist"}))
    code, out, err = run(capsys, "invoke", "hello", "--dry-run", "--qualifier", "9")
    assert code == 1 and out == ""
    assert one_error_line(err) == "qualifier: version 9 does not exist (HTTP 400)"


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["invoke", "hello", "--callback-url", "https://example.com/hook"], "--callback-url needs --async"),
        (["invoke", "hello", "--dry-run", "--callback-url", "https://example.com/hook"], "--callback-url needs --async"),
        (["invoke", "hello", "--wait"], "--wait needs --async"),
        (["invoke", "hello", "--async", "--dry-run"], "argument --dry-run: not allowed with argument --async"),
        (["invoke", "hello", "--async", "--idempotency-key", "k" * 129], "argument --idempotency-key: expected 1-128"),
        (["invoke", "hello", "--idempotency-key", "two\nlines"], "argument --idempotency-key: expected 1-128"),
        (["batch", "hello"], "the following arguments are required: --payloads"),
        (["results", "hello", "s-1", "--delete", "--verify"], "--delete goes alone"),
        (["results", "hello", "s-1", "--verify", "--unverify"], "argument --unverify: not allowed with"),
        (["run", "hello", "--input", "{}"], "the following arguments are required: --subject"),
        (["invocations", "hello", "--limit", "0"], "argument --limit: expected a number from 1"),
    ],
)  # fmt: skip
def test_malformed_new_commands_exit_2_before_any_call(
    api: FakeApi, capsys: pytest.CaptureFixture[str], argv: list[str], message: str
) -> None:
    with pytest.raises(SystemExit) as exit_:
        functions.main(argv)
    assert exit_.value.code == 2
    assert one_error_line(capsys.readouterr().err).startswith(message)
    assert api.seen == []


# --- batch -------------------------------------------------------------------------------------


def test_batch_from_a_json_array_prints_each_invocation_id(
    api: FakeApi, capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    payloads = tmp_path / "payloads.json"
    payloads.write_text(json.dumps([{"n": 1}, {"n": 2}, "three"], indent=2))
    accepted = {"batch_id": "bt-1", "invocations": [{"index": 2, "invocation_id": iv(2)},
                {"index": 0, "invocation_id": iv(0)}, {"index": 1, "invocation_id": iv(1)}]}  # fmt: skip
    api.on("POST", f"{BASE}/hello/batch", (202, accepted))
    code, out, err = run(capsys, "batch", "hello", "--payloads", str(payloads), "--qualifier", "draft")
    assert code == 0
    assert api.seen[0].json == {"payloads": [{"n": 1}, {"n": 2}, "three"], "qualifier": "draft"}
    assert out.splitlines() == [iv(0), iv(1), iv(2)]  # in the payloads' order
    assert err == "hello: batch bt-1, 3 invocations queued; see them with: platform-functions invocations hello\n"

    code, out, _ = run(capsys, "batch", "hello", "--payloads", str(payloads), "--json")
    assert code == 0 and json.loads(out) == accepted


def test_batch_reads_json_lines_from_stdin(
    api: FakeApi, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(sys, "stdin", io.StringIO('{"n": 1}\n\n[1, 2]\n"x"\n'))
    api.on("POST", f"{BASE}/hello/batch", (202, {"batch_id": "bt-2", "invocations": []}))
    code, _, _ = run(capsys, "batch", "hello", "--payloads", "-")
    assert code == 0
    assert api.seen[0].json == {"payloads": [{"n": 1}, [1, 2], "x"]}  # an array on a line is one payload


@pytest.mark.parametrize(
    ("content", "message"),
    [
        ("\n".join(json.dumps({"n": i}) for i in range(26)), "has 26 payloads; a batch takes at most 25 (split it)"),
        (json.dumps(list(range(40))), "has 40 payloads; a batch takes at most 25 (split it)"),
        ("[]", "has no payloads (an empty array)"),
        ("  \n", "has no payloads"),
        ('{"n": 1}\n{"n": \n', "line 2 is not valid JSON: Expecting value: line 1 column 7 (char 6)"),
        ('[{"n": 1},\n {"n": 2}\n', "is not a valid JSON array: Expecting ',' delimiter: line 2 column 10 (char 20)"),
    ],
)
def test_batch_refuses_bad_or_too_many_payloads_before_any_request(
    api: FakeApi, capsys: pytest.CaptureFixture[str], tmp_path: Path, content: str, message: str
) -> None:
    payloads = tmp_path / "batch.jsonl"
    payloads.write_text(content)
    code, out, err = run(capsys, "batch", "hello", "--payloads", str(payloads))
    assert code == 1 and out == ""
    assert one_error_line(err) == f"{payloads} {message}"
    assert api.seen == []


def test_batch_wait_polls_the_unfinished_and_summarises(
    api: FakeApi, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(sys, "stdin", io.StringIO("[1, 2, 3]"))
    api.on("POST", f"{BASE}/hello/batch", (202, {"batch_id": "bt-3", "invocations": [
        {"index": 0, "invocation_id": iv(0)}, {"index": 1, "invocation_id": iv(1)}, {"index": 2, "invocation_id": iv(2)}]}))  # fmt: skip
    api.on("GET", f"{INVOCATIONS}/{iv(0)}", (200, record(iv(0), "succeeded")))
    api.on("GET", f"{INVOCATIONS}/{iv(1)}", (200, record(iv(1), "running")),
           (200, record(iv(1), "failed", error={"type": "ValueError", "message": "n"}, duration_ms=1500.0)))  # fmt: skip
    api.on("GET", f"{INVOCATIONS}/{iv(2)}", (200, record(iv(2), "queued")), (200, record(iv(2), "queued")),
           (200, record(iv(2), "succeeded", duration_ms=12.0)))  # fmt: skip
    code, out, err = run(capsys, "batch", "hello", "--payloads", "-", "--wait", "--poll-interval", "0.01")
    assert code == 1
    # Each round fetches only what is still queued or running.
    gets = [path.rsplit("/", 1)[1] for method, path in api.calls() if method == "GET"]
    assert gets == [iv(0), iv(1), iv(2), iv(1), iv(2), iv(2)]
    assert out.splitlines() == [
        "INDEX  ID                            STATUS     DURATION",
        f"0      {iv(0)}  succeeded  840 ms",
        f"1      {iv(1)}  failed     1.5 s",
        f"2      {iv(2)}  succeeded  12 ms",
    ]
    lines = err.splitlines()
    assert lines[:-1] == [
        "hello batch bt-3: 0 of 3 finished (0s)",
        "hello batch bt-3: 1 of 3 finished (0s)",
        "hello batch bt-3: 2 of 3 finished, 1 failed (0s)",
        "hello batch bt-3: 3 of 3 finished, 1 failed (0s)",
    ]
    assert lines[-1] == (
        f"error: 1 of 3 invocations failed or timed out; see why with: platform-functions invocation {iv(1)}"
    )


def test_batch_wait_all_succeeded_json(
    api: FakeApi, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(sys, "stdin", io.StringIO('{"a": 1}\n{"a": 2}\n'))
    api.on("POST", f"{BASE}/hello/batch", (202, {"batch_id": "bt-4", "invocations": [
        {"index": 0, "invocation_id": iv(0)}, {"index": 1, "invocation_id": iv(1)}]}))  # fmt: skip
    api.on("GET", f"{INVOCATIONS}/{iv(0)}", (200, record(iv(0), "succeeded", batch_id="bt-4")))
    api.on("GET", f"{INVOCATIONS}/{iv(1)}", (200, record(iv(1), "succeeded", batch_id="bt-4")))
    code, out, err = run(capsys, "batch", "hello", "--payloads", "-", "--wait", "--json", "--poll-interval", "0.01")
    assert code == 0 and "error" not in err
    assert json.loads(out) == {
        "batch_id": "bt-4",
        "invocations": [{"index": 0, **record(iv(0), batch_id="bt-4")}, {"index": 1, **record(iv(1), batch_id="bt-4")}],
    }


# --- invocations and logs ----------------------------------------------------------------------


def test_invocation_shows_one_record(api: FakeApi, capsys: pytest.CaptureFixture[str]) -> None:
    failed = record(status="failed", error={"type": "ValueError", "message": "bad n"}, batch_id="bt-1")
    api.on("GET", f"{INVOCATIONS}/{IID}", (200, failed))
    code, out, _ = run(capsys, "invocation", IID)
    assert code == 0  # showing a failed invocation is not itself a failure
    assert api.calls() == [("GET", f"{INVOCATIONS}/{IID}")]  # org level: no function name needed
    assert out.splitlines() == [
        f"invocation:  {IID}",
        f"function:    hello ({FID})",
        "status:      failed",
        "error:       ValueError: bad n",
        "mode:        async, qualifier live, version 3",
        "request:     req-cdef",
        "created:     2026-05-01T10:00:00Z",
        "started:     2026-05-01T10:00:01Z",
        "finished:    2026-05-01T10:00:02Z",
        "duration:    840 ms (billed 841 ms)",
        f"payload:     18 B, sha256 {'ef' * 32}",
        "batch:       bt-1",
        "result:",
        "null",
    ]
    code, out, _ = run(capsys, "--json", "invocation", IID)
    assert code == 0 and json.loads(out) == failed


@pytest.mark.parametrize("argv", [["invocation", "../keys"], ["logs", "hello", "--invocation", "iv/../x"]])
def test_a_malformed_invocation_id_is_refused_without_a_call(
    api: FakeApi, capsys: pytest.CaptureFixture[str], argv: list[str]
) -> None:
    code, _, err = run(capsys, *argv)
    assert code == 1 and one_error_line(err).startswith("invalid invocation id")
    assert api.seen == []


def test_invocations_follows_cursors_up_to_the_limit(api: FakeApi, capsys: pytest.CaptureFixture[str]) -> None:
    first = [record(iv(5), "running", mode="sync"), record(iv(4), "succeeded")]
    second = [record(iv(3), "timed_out", duration_ms=3000.0)]
    api.on("GET", f"{BASE}/hello/invocations", (200, {"invocations": first, "next_cursor": "c1"}),
           (200, {"invocations": second, "next_cursor": "c2"}))  # fmt: skip
    code, out, err = run(capsys, "invocations", "hello", "--limit", "3")
    assert code == 0
    assert [s.query for s in api.seen] == [{"limit": ["3"]}, {"limit": ["1"], "cursor": ["c1"]}]
    assert [line.split() for line in out.splitlines()] == [
        ["ID", "STATUS", "MODE", "VERSION", "DURATION", "CREATED"],
        [iv(5), "running", "sync", "-", "-", "2026-05-01T10:00:00Z"],
        [iv(4), "succeeded", "async", "3", "840", "ms", "2026-05-01T10:00:00Z"],
        [iv(3), "timed_out", "async", "3", "3.0", "s", "2026-05-01T10:00:00Z"],
    ]
    assert err == "(the 3 newest; more with --limit)\n"

    api.on("GET", f"{BASE}/hello/invocations", (200, {"invocations": first, "next_cursor": None}))
    code, out, err = run(capsys, "invocations", "hello", "--json")
    assert code == 0 and err == ""
    assert api.seen[-1].query == {"limit": ["20"]}
    assert json.loads(out) == {"invocations": first, "next_cursor": None}


def log(ms: int, message: str) -> dict[str, Any]:
    return {"timestamp": ms, "message": message}


T0 = 1777629600250  # 2026-05-01T10:00:00.250Z


def test_logs_of_one_invocation(api: FakeApi, capsys: pytest.CaptureFixture[str]) -> None:
    lines = [log(T0, "START RequestId: req-1 Version: 3\n"), {"timestamp": "2026-05-01T10:00:01Z", "message": "hi"}]
    api.on("GET", f"{INVOCATIONS}/{IID}/logs", (200, {"lines": lines}))
    code, out, _ = run(capsys, "logs", "hello", "--invocation", IID)
    assert code == 0
    assert api.calls() == [("GET", f"{INVOCATIONS}/{IID}/logs")]
    assert out.splitlines() == [
        "2026-05-01T10:00:00.250Z  START RequestId: req-1 Version: 3",
        "2026-05-01T10:00:01Z  hi",
    ]
    code, out, _ = run(capsys, "logs", "hello", "--invocation", IID, "--json")
    assert [json.loads(line) for line in out.splitlines()] == [{"invocation_id": IID, **line} for line in lines]


def test_logs_of_the_recent_invocations_oldest_first(api: FakeApi, capsys: pytest.CaptureFixture[str]) -> None:
    listing = [record(iv(3), "queued", request_id=None), record(iv(2), "running"), record(iv(1), "failed")]
    api.on("GET", f"{BASE}/hello/invocations", (200, {"invocations": listing, "next_cursor": "more"}))
    api.on("GET", f"{INVOCATIONS}/{iv(1)}/logs", (200, {"lines": [log(T0, "one"), log(T0 + 1, "Traceback ...")]}))
    api.on("GET", f"{INVOCATIONS}/{iv(2)}/logs", (200, {"lines": [log(T0 + 5, "two")]}))
    code, out, _ = run(capsys, "logs", "hello", "--limit", "3")
    assert code == 0
    assert api.seen[0].query == {"limit": ["3"]}
    # The queued one has not run: no lines to look up.
    assert api.calls()[1:] == [("GET", f"{INVOCATIONS}/{iv(1)}/logs"), ("GET", f"{INVOCATIONS}/{iv(2)}/logs")]
    assert out.splitlines() == [
        f"{iv(1)}  2026-05-01T10:00:00.250Z  one",
        f"{iv(1)}  2026-05-01T10:00:00.251Z  Traceback ...",
        f"{iv(2)}  2026-05-01T10:00:00.255Z  two",
    ]


def test_logs_follow_prints_new_lines_until_ctrl_c(
    api: FakeApi, capsys: pytest.CaptureFixture[str], ctrl_c_on_sleep: Callable[[int], list[float]]
) -> None:
    one, two, three = record(iv(1)), record(iv(2), "running"), record(iv(3), "queued", request_id=None)
    api.on("GET", f"{BASE}/hello/invocations",
           (200, {"invocations": [one], "next_cursor": None}),  # before following
           (502, {"error": "upstream hiccup"}),  # poll 1: a blip, not the end
           (200, {"invocations": [two, one], "next_cursor": None}),  # poll 2: a new one, running
           (200, {"invocations": [three, record(iv(2)), one], "next_cursor": None}))  # poll 3  # fmt: skip
    api.on("GET", f"{INVOCATIONS}/{iv(1)}/logs", (200, {"lines": [log(T0, "first")]}))
    api.on("GET", f"{INVOCATIONS}/{iv(2)}/logs", (200, {"lines": [log(T0 + 1, "START"), log(T0 + 2, "step 1")]}),
           (200, {"lines": [log(T0 + 1, "START"), log(T0 + 2, "step 1"), log(T0 + 3, "step 2"), log(T0 + 4, "END")]}))  # fmt: skip
    slept = ctrl_c_on_sleep(4)  # Ctrl-C during the 4th wait, after 3 polls
    code, out, err = run(capsys, "logs", "hello", "--follow")
    assert code == 130
    assert slept == [2.0] * 4  # every 2 s
    assert err == "warning: upstream hiccup (HTTP 502); trying again\n"  # and no line for the Ctrl-C
    assert out.splitlines() == [
        f"{iv(1)}  2026-05-01T10:00:00.250Z  first",
        f"{iv(2)}  2026-05-01T10:00:00.251Z  START",
        f"{iv(2)}  2026-05-01T10:00:00.252Z  step 1",
        f"{iv(2)}  2026-05-01T10:00:00.253Z  step 2",  # only the lines not printed yet
        f"{iv(2)}  2026-05-01T10:00:00.254Z  END",
    ]
    listings = [s.query for s in api.seen if s.path == f"{BASE}/hello/invocations"]
    assert listings == [{"limit": ["50"]}] * 4
    logs_fetched = [s.path.split("/")[-2] for s in api.seen if s.path.endswith("/logs")]
    # iv1: printed, then fetched once more (finished: late lines); iv2 while running and once finished;
    # iv3 is queued without a request id yet.
    assert logs_fetched == [iv(1), iv(1), iv(2), iv(2)]


def test_logs_follow_of_one_invocation_ends_when_it_has_finished(
    api: FakeApi, capsys: pytest.CaptureFixture[str], ctrl_c_on_sleep: Callable[[int], list[float]]
) -> None:
    api.on("GET", f"{INVOCATIONS}/{IID}", (200, record(status="running")), (200, record()))
    api.on("GET", f"{INVOCATIONS}/{IID}/logs", (200, {"lines": [log(T0, "a")]}),
           (200, {"lines": [log(T0, "a"), log(T0 + 1, "b")]}),
           (200, {"lines": [log(T0, "a"), log(T0 + 1, "b"), log(T0 + 2, "late")]}))  # fmt: skip
    slept = ctrl_c_on_sleep(100)
    code, out, err = run(capsys, "logs", "hello", "--invocation", IID, "--follow")
    assert (code, err) == (0, "")
    assert slept == [2.0, 2.0]  # running, finished, finished once more: done
    assert [line.split("  ", 1)[1] for line in out.splitlines()] == ["a", "b", "late"]


# --- results -----------------------------------------------------------------------------------


def result(**changes: Any) -> dict[str, Any]:
    """A stored result as the API shapes it."""
    base = {
        "function_id": FID, "subject": "essay-9", "version": 3, "invocation_id": IID,
        "original_result": {"grade": "B"}, "updated_result": None, "is_edited": False, "is_verified": False,
        "verified_by": None, "verified_at": None, "updated_by": None, "updated_at": None,
        "created_at": "2026-05-01T10:00:00Z",
    }  # fmt: skip
    return {**base, **changes}


def test_run_sends_subject_qualifier_force_and_input(
    api: FakeApi, capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    essay = tmp_path / "essay.json"
    essay.write_text('{"text": "Once upon a time"}')
    api.on("POST", f"{BASE}/grader/run", (200, result()))
    code, out, err = run(capsys, "run", "grader", "--subject", "essay-9", "--input", f"@{essay}", "--qualifier", "2",
                         "--force")  # fmt: skip
    assert code == 0
    call = api.seen[0]
    assert call.query == {"subject": ["essay-9"], "qualifier": ["2"], "force": ["true"]}
    assert call.json == {"input": {"text": "Once upon a time"}}
    assert json.loads(out) == {"grade": "B"}
    assert err == f"grader: subject essay-9, version 3, invocation {IID}\n"

    edited = result(is_edited=True, updated_result={"grade": "A"}, is_verified=True)
    api.on("POST", f"{BASE}/grader/run", (200, edited))
    code, out, err = run(capsys, "run", "grader", "--subject", "essay-9")
    assert code == 0
    assert api.seen[-1].query == {"subject": ["essay-9"]} and api.seen[-1].json == {}
    assert json.loads(out) == {"grade": "A"}  # the stored, edited result
    assert err.endswith(", edited, verified\n")

    code, out, _ = run(capsys, "run", "grader", "--subject", "essay-9", "--json")
    assert code == 0 and json.loads(out) == edited


def test_results_show_an_edited_verified_result(api: FakeApi, capsys: pytest.CaptureFixture[str]) -> None:
    shown = result(is_edited=True, updated_result={"grade": "A"}, is_verified=True, verified_by="fkreviewer01",
                   verified_at="2026-05-02T09:00:00Z", updated_by="fkreviewer01", updated_at="2026-05-02T09:00:00Z")  # fmt: skip
    api.on("GET", f"{BASE}/grader/results/essay%2F9", (200, shown))
    code, out, _ = run(capsys, "results", "grader", "essay/9", "--version", "3")
    assert code == 0
    assert api.seen[0].query == {"version": ["3"]}
    assert out.splitlines() == [
        "subject:     essay-9 (version 3)",
        f"function:    {FID}",
        f"invocation:  {IID}",
        "verified:    yes, by fkreviewer01 at 2026-05-02T09:00:00Z",
        "edited:      yes",
        "created:     2026-05-01T10:00:00Z",
        "updated:     2026-05-02T09:00:00Z by fkreviewer01",
        "result: (edited)",
        "{",
        '  "grade": "A"',
        "}",
        "original:",
        "{",
        '  "grade": "B"',
        "}",
    ]


def test_results_set_verify_unverify(api: FakeApi, capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    fixed = tmp_path / "fixed.json"
    fixed.write_text('{"grade": "A-"}')
    api.on("PUT", f"{BASE}/grader/results/essay-9", (200, result(is_edited=True, updated_result={"grade": "A-"})))
    code, out, _ = run(capsys, "results", "grader", "essay-9", "--set", f"@{fixed}", "--verify", "--version", "2")
    assert code == 0
    assert api.seen[0].json == {"updated_result": {"grade": "A-"}, "is_verified": True}
    assert api.seen[0].query == {"version": ["2"]}
    assert "result: (edited)" in out

    code, out, _ = run(capsys, "results", "grader", "essay-9", "--unverify", "--json")
    assert code == 0 and api.seen[-1].json == {"is_verified": False} and api.seen[-1].query == {}
    assert json.loads(out)["updated_result"] == {"grade": "A-"}


def test_results_delete_asks_for_yes(
    api: FakeApi, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(sys, "stdin", io.StringIO(""))
    code, _, err = run(capsys, "results", "grader", "essay-9", "--delete")
    assert (
        code == 1
        and one_error_line(err) == "refusing to delete the result of essay-9 without --yes (no terminal to confirm on)"
    )
    assert api.seen == []

    api.on("DELETE", f"{BASE}/grader/results/essay-9", (204, b""))
    code, out, _ = run(capsys, "results", "grader", "essay-9", "--delete", "--yes", "--version", "2")
    assert (code, out) == (0, "grader: deleted the result of essay-9 (version 2)\n")
    assert api.calls() == [("DELETE", f"{BASE}/grader/results/essay-9")] and api.seen[0].query == {"version": ["2"]}


# --- organization ------------------------------------------------------------------------------


def test_audit_table_and_json(api: FakeApi, capsys: pytest.CaptureFixture[str]) -> None:
    entries = [
        {"at": "2026-05-02T09:00:00Z", "actor": "fkadmin00001", "action": "alias.update", "target": FID,
         "details": {"version": 3, "canary": None}},
        {"at": "2026-05-01T10:00:00Z", "actor": "fkdevel00001", "action": "function.create", "target": FID,
         "details": {}},
    ]  # fmt: skip
    api.on("GET", f"/v1/orgs/{ORG}/audit", (200, {"entries": entries[:1], "next_cursor": "a1"}),
           (200, {"entries": entries[1:], "next_cursor": None}))  # fmt: skip
    code, out, err = run(capsys, "audit", "--limit", "10")
    assert (code, err) == (0, "")
    assert [s.query for s in api.seen] == [{"limit": ["10"]}, {"limit": ["9"], "cursor": ["a1"]}]
    assert [line.split() for line in out.splitlines()] == [
        ["AT", "ACTOR", "ACTION", "TARGET", "DETAILS"],
        ["2026-05-02T09:00:00Z", "fkadmin00001", "alias.update", FID, "version=3", "canary=null"],
        ["2026-05-01T10:00:00Z", "fkdevel00001", "function.create", FID],
    ]
    api.on("GET", f"/v1/orgs/{ORG}/audit", (200, {"entries": entries, "next_cursor": None}))
    code, out, _ = run(capsys, "audit", "--json")
    assert code == 0 and json.loads(out) == {"entries": entries, "next_cursor": None}
    assert api.seen[-1].query == {"limit": ["50"]}


def test_usage_table_and_json(api: FakeApi, capsys: pytest.CaptureFixture[str]) -> None:
    usage = {"month": "2026-05", "gb_seconds": 1234.56, "gb_seconds_budget": 400000, "invocations": 5210,
             "invocations_this_minute": 30, "invocations_per_minute_limit": 600, "functions": 4,
             "functions_limit": 50, "versions_kept": 10}  # fmt: skip
    api.on("GET", f"/v1/orgs/{ORG}/usage", (200, usage))
    code, out, _ = run(capsys, "usage")
    assert code == 0
    assert out.splitlines() == [
        "                            USED    LIMIT   SHARE",
        "GB-seconds (2026-05)        1234.6  400000  0%",
        "invocations (2026-05)       5210    -",
        "invocations this minute     30      600     5%",
        "functions                   4       50      8%",
        "versions kept per function  -       10",
    ]
    code, out, _ = run(capsys, "usage", "--json")
    assert code == 0 and json.loads(out) == usage


# --- errors and settings -----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("status", "body", "message"),
    [
        (404, {"error": "function hello not found"}, "function hello not found (HTTP 404)"),
        (403, {"message": "Forbidden"}, "Forbidden; the key (--key or FUNCTIONS_API_KEY) was refused (HTTP 403)"),
        (401, {"message": "Unauthorized"}, "Unauthorized; pass --key or set FUNCTIONS_API_KEY (HTTP 401)"),
        (400, {"error": "memory_mb must be\nat most 3008"}, "memory_mb must be at most 3008 (HTTP 400)"),
        (502, b"<html>\n<b>Bad Gateway</b>\n</html>", "Bad Gateway <html> <b>Bad Gateway</b> </html> (HTTP 502)"),
    ],
)
def test_http_errors_are_one_line(
    api: FakeApi, capsys: pytest.CaptureFixture[str], status: int, body: Any, message: str
) -> None:
    api.on("GET", f"{BASE}/hello", (status, body))
    code, out, err = run(capsys, "show", "hello")
    assert code == 1 and out == ""
    assert one_error_line(err) == message


def test_connection_refused_is_one_line(capsys: pytest.CaptureFixture[str]) -> None:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    code, _, err = run(capsys, "--api", f"http://127.0.0.1:{port}", "--key", KEY, "--org", ORG, "list")
    assert code == 1
    assert one_error_line(err) == f"cannot reach http://127.0.0.1:{port}: Connection refused"


def test_a_slow_api_times_out_with_one_line(api: FakeApi, capsys: pytest.CaptureFixture[str]) -> None:
    api.on("GET", f"{BASE}/hello", (200, fn(), 1.0))
    code, _, err = run(capsys, "show", "hello", "--request-timeout", "0.2")
    assert code == 1
    assert one_error_line(err) == f"no answer from {api.url} within 0.2s"


def test_an_answer_that_is_not_json_is_one_line(api: FakeApi, capsys: pytest.CaptureFixture[str]) -> None:
    api.on("GET", f"{BASE}/hello", (200, b"<html>captive portal</html>"))
    code, _, err = run(capsys, "show", "hello")
    assert code == 1
    assert (
        one_error_line(err)
        == f"the API answered GET {BASE}/hello with something that is not JSON: <html>captive portal</html>"
    )


def test_missing_settings_say_how_to_set_them(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    for name in ("FUNCTIONS_API_URL", "FUNCTIONS_API_KEY", "FUNCTIONS_ORG"):
        monkeypatch.delenv(name, raising=False)
    code, _, err = run(capsys, "list")
    assert code == 1 and one_error_line(err) == "no API URL: pass --api URL or set FUNCTIONS_API_URL"
    code, _, err = run(capsys, "--api", "http://127.0.0.1:1", "list")
    assert code == 1 and one_error_line(err).startswith("no API key: pass --key KEY or set FUNCTIONS_API_KEY")
    code, _, err = run(capsys, "--api", "http://127.0.0.1:1", "--key", KEY, "list")
    assert code == 1 and one_error_line(err) == "no organization: pass --org ORG or set FUNCTIONS_ORG"
    code, _, err = run(capsys, "--api", "http://127.0.0.1:1", "--key", KEY, "list", "--org", "Acme Inc")
    assert code == 1 and one_error_line(err).startswith("invalid organization 'Acme Inc'")


def test_options_after_the_command_override_the_environment(api: FakeApi, capsys: pytest.CaptureFixture[str]) -> None:
    api.on("GET", "/v1/orgs/globex/functions", (200, {"functions": [], "next_cursor": None}))
    code, out, _ = run(capsys, "list", "--org", "globex", "--key", "fkzzzzzzzzzz.other")
    assert code == 0 and out.split() == ["NAME", "ID", "STATUS", "LIVE", "LATEST", "UPDATED"]
    assert api.seen[0].headers["authorization"] == "Bearer fkzzzzzzzzzz.other"


def test_argparse_errors_are_one_line_exit_2(capsys: pytest.CaptureFixture[str]) -> None:
    for argv in (["invoke"], ["promote", "hello", "latest"], ["frobnicate"], ["create", "x", "--env", "NOEQUALS"]):
        with pytest.raises(SystemExit) as exit_:
            functions.main(argv)
        assert exit_.value.code == 2
        one_error_line(capsys.readouterr().err)
