"""Functions end to end on the local runtime: the CLI and the HTTP API in front, the Functions
stack's handlers behind them, and user functions running in worker processes of their own through
the runtime's Lambda API (moto keeps the control plane). Nothing is mocked."""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from scripts.functions import ApiClient, ApiError
from scripts.local.runtime import LocalRuntime
from scripts.local.synth import FUNCTIONS_ONLY_APP
from tests.e2e.conftest import free_port_base
from tests.lambdas.functions.stack_schema import bomb, zip_of

ROOT = Path(__file__).resolve().parents[2]
ORG = "acme"

pytestmark = pytest.mark.slow

V1 = "def handler(event, context):\n    print('hello from v1')\n    return {'version': 1, 'echo': event}\n"
V2 = V1.replace("v1", "v2").replace("'version': 1", "'version': 2")
SLEEPER = "import time\n\ndef handler(event, context):\n    time.sleep(5)\n    return 'never'\n"
FLAKY = (
    "def handler(event, context):\n"
    "    event = event.get('input', event)  # a run's event carries its input in an envelope\n"
    "    if event.get('fail'):\n"
    "        raise ValueError(f\"item {event.get('i')} refused\")\n"
    "    return {'i': event.get('i')}\n"
)
CALLBACKS = """import json
import urllib.error
import urllib.request


def call(url, token, body=None):
    request = urllib.request.Request(url, data=None if body is None else json.dumps(body).encode(),
                                     headers={"Authorization": f"Bearer {token}", "Content-Type": "application/json"},
                                     method="GET" if body is None else "POST")
    try:
        with urllib.request.urlopen(request, timeout=5) as answer:
            return answer.status, json.loads(answer.read())
    except urllib.error.HTTPError as exc:
        return exc.code, json.loads(exc.read())


def handler(event, context):
    base, token = event["callback_url"], event["callback_token"]
    status, own = call(base + "/input", token)
    progress, _ = call(base + "/progress", token, {"message": "halfway", "percent": 50})
    other = base.rsplit("/", 1)[0] + "/" + event["input"]["other"]
    foreign, answer = call(other + "/input", token)
    return {"input_status": status, "own_input": own.get("input"), "progress": progress,
            "foreign_status": foreign, "foreign_error": answer.get("error"),
            "length": len(event["input"]["text"]), "token_tail": token[-24:]}
"""


@pytest.fixture(scope="module")
def runtime() -> Iterator[LocalRuntime]:
    rt = LocalRuntime(
        "dev",
        port_base=free_port_base(),
        app=FUNCTIONS_ONLY_APP,
        # Webhook retries after seconds, not minutes.
        set_env={"functions-recorder-dev": {"WEBHOOK_RETRY_BASE_SECONDS": "1"}},
        retry_delay=0.2,
    ).start()
    yield rt
    rt.stop()


@pytest.fixture(scope="module")
def admin_key(runtime: LocalRuntime) -> str:
    from scripts.functions_keys import create_key

    return create_key(runtime.output("FunctionsTableName"), ORG, "admin", label="e2e", ddb=runtime.client("dynamodb"))


@pytest.fixture(scope="module")
def api(runtime: LocalRuntime, admin_key: str) -> ApiClient:
    return ApiClient(runtime.output("FunctionsApiUrl"), admin_key, ORG, timeout=60)


def cli(runtime: LocalRuntime, key: str, *args: str, stdin: str | None = None) -> subprocess.CompletedProcess[str]:
    env = {
        **os.environ,
        "FUNCTIONS_API_URL": runtime.output("FunctionsApiUrl"),
        "FUNCTIONS_API_KEY": key,
        "FUNCTIONS_ORG": ORG,
    }
    return subprocess.run(
        [sys.executable, "scripts/functions.py", *args],
        cwd=ROOT,
        env=env,
        input=stdin,
        capture_output=True,
        text=True,
        timeout=180,
        check=False,
    )


def ok(result: subprocess.CompletedProcess[str]) -> str:
    assert result.returncode == 0, f"exit {result.returncode}: {result.stderr}"
    return result.stdout


def write(tmp_path: Path, name: str, text: str) -> Path:
    path = tmp_path / name
    path.write_text(text)
    return path


def invoke(api: ApiClient, name: str, payload: Any = None, **body: Any) -> dict[str, Any]:
    return dict(api.request("POST", api.path("functions", name, "invoke"), {"payload": payload or {}, **body}))


def wait_invocation(api: ApiClient, iid: str, timeout: float = 60) -> dict[str, Any]:
    deadline = time.time() + timeout
    while time.time() < deadline:
        record = api.request("GET", f"/v1/orgs/{ORG}/invocations/{iid}")
        if record["status"] in ("succeeded", "failed", "timed_out"):
            return dict(record)
        time.sleep(0.2)
    raise AssertionError(f"invocation {iid} did not finish: {record}")


# --- Functions (1 of 2) -----------------------------------------------------------------------------------
def test_inline_source_versions_canary_promote_and_rollback(
    runtime: LocalRuntime, admin_key: str, api: ApiClient, tmp_path: Path
) -> None:
    source = write(tmp_path, "greet.py", V1)
    created = ok(cli(runtime, admin_key, "create", "greet", "--source", str(source)))
    assert "deployed" in created
    ok(cli(runtime, admin_key, "publish", "greet"))
    ok(cli(runtime, admin_key, "promote", "greet", "1"))
    first = json.loads(ok(cli(runtime, admin_key, "invoke", "greet", "--payload", '{"n": 1}')))
    assert first == {"version": 1, "echo": {"n": 1}}

    write(tmp_path, "greet.py", V2)
    ok(cli(runtime, admin_key, "update", "greet", "--source", str(source)))
    draft = json.loads(ok(cli(runtime, admin_key, "invoke", "greet", "--qualifier", "draft", "--payload", "{}")))
    assert draft["version"] == 2
    ok(cli(runtime, admin_key, "publish", "greet"))
    ok(cli(runtime, admin_key, "promote", "greet", "1", "--canary", "2:0.1"))
    versions = [invoke(api, "greet")["result"]["version"] for _ in range(200)]
    share = versions.count(2) / len(versions)
    assert 0.05 <= share <= 0.20, f"v2 answered {share:.0%} of 200 calls with a 10% canary"

    ok(cli(runtime, admin_key, "promote", "greet", "2"))
    assert {invoke(api, "greet")["result"]["version"] for _ in range(10)} == {2}
    ok(cli(runtime, admin_key, "rollback", "greet"))
    assert "1" in ok(cli(runtime, admin_key, "show", "greet"))
    ok(cli(runtime, admin_key, "rollback", "greet"))  # back to v1 without the canary
    answers = [invoke(api, "greet") for _ in range(20)]
    assert {a["result"]["version"] for a in answers} == {1}
    assert {a["executed_version"] for a in answers} == {"1"}


def test_zip_upload_flow(runtime: LocalRuntime, admin_key: str, api: ApiClient, tmp_path: Path) -> None:
    package = tmp_path / "pkg"
    (package / "app").mkdir(parents=True)
    (package / "app" / "__init__.py").write_text("")
    (package / "app" / "words.py").write_text("def count(text):\n    return len(text.split())\n")
    (package / "app" / "main.py").write_text(
        "from app.words import count\n\ndef handler(event, context):\n    return {'words': count(event['text'])}\n"
    )
    ok(cli(runtime, admin_key, "create", "wordcount", "--source", str(package), "--handler", "app.main.handler"))
    ok(cli(runtime, admin_key, "publish", "wordcount"))
    ok(cli(runtime, admin_key, "promote", "wordcount", "1"))
    answer = json.loads(ok(cli(runtime, admin_key, "invoke", "wordcount", "--payload", '{"text": "a b c"}')))
    assert answer == {"words": 3}


@pytest.mark.parametrize(
    ("name", "data", "reason"),
    [
        ("symlinked", zip_of({"main.py": b"def handler(e, c):\n    return 1\n"}, symlink="link"), "symbolic link"),
        ("dotdot", zip_of({"main.py": b"def handler(e, c):\n    return 1\n", "../x.py": b""}), "contains '..'"),
        ("bomb", b"", "250 MB"),
        ("nohandler", zip_of({"other.py": b"x = 1\n"}), "handler module not found"),
    ],
)
def test_hostile_zips_end_failed_with_their_reason(
    runtime: LocalRuntime, admin_key: str, api: ApiClient, tmp_path: Path, name: str, data: bytes, reason: str
) -> None:
    """Through the API (the CLI refuses some of these before uploading): the deployer must."""
    fn = api.request("POST", api.path("functions"), {"name": name})
    grant = api.request("POST", api.path("functions", fn["id"], "code-upload"))
    api.upload(grant["url"], grant["fields"], data or bomb(b"def handler(e, c):\n    return 1\n"))
    api.request("PATCH", api.path("functions", fn["id"]), {"code_upload_id": grant["upload_id"]})
    deadline = time.time() + 60
    while (shown := api.request("GET", api.path("functions", name)))["status"] == "deploying":
        assert time.time() < deadline
        time.sleep(0.2)
    assert shown["status"] == "failed" and reason in shown["error"], shown
    # The CLI says the same in one line.
    result = cli(runtime, admin_key, "show", name)
    assert reason in result.stdout


def test_the_cli_reports_a_failed_deployment_in_one_line(runtime: LocalRuntime, admin_key: str, tmp_path: Path) -> None:
    path = tmp_path / "linked.zip"
    path.write_bytes(zip_of({"main.py": b"def handler(e, c):\n    return 1\n"}, symlink="link"))
    result = cli(runtime, admin_key, "create", "linked", "--source", str(path), "--handler", "main.handler")
    assert result.returncode == 1
    last = result.stderr.strip().splitlines()[-1]  # progress lines, then one error line
    assert last.startswith("error: ") and "symbolic link" in last, result.stderr


def test_a_function_that_outlives_its_timeout_is_killed_and_reported(runtime: LocalRuntime, api: ApiClient) -> None:
    api.request("POST", api.path("functions"), {"name": "sleeper", "source": SLEEPER, "timeout_seconds": 1})
    deadline = time.time() + 60
    while api.request("GET", api.path("functions", "sleeper"))["status"] != "deployed":
        assert time.time() < deadline
        time.sleep(0.2)
    started = time.time()
    answer = invoke(api, "sleeper", qualifier="draft")
    assert time.time() - started < 4  # killed at 1 s, not after its 5 s sleep
    assert answer["status"] == "timed_out" and "timed out" in answer["error"]["message"].lower()


def test_keys_roles_and_foreign_orgs_over_http(runtime: LocalRuntime, api: ApiClient) -> None:
    from scripts.functions_keys import create_key

    table, ddb = runtime.output("FunctionsTableName"), runtime.client("dynamodb")
    invoker = ApiClient(api.base_url, create_key(table, ORG, "invoker", ddb=ddb), ORG)
    foreign = ApiClient(api.base_url, create_key(table, "globex", "admin", ddb=ddb), ORG)
    assert invoker.request("GET", invoker.path("functions", "greet"))["name"] == "greet"
    with pytest.raises(ApiError) as refused:
        invoker.request("PUT", invoker.path("functions", "greet", "aliases", "live"), {"version": 1})
    assert refused.value.status == 403
    with pytest.raises(ApiError) as hidden:
        foreign.request("GET", foreign.path("functions", "greet"))
    assert hidden.value.status == 404
    bad = ApiClient(api.base_url, "fkaaaaaaaaaa." + "b" * 43, ORG)
    with pytest.raises(ApiError) as denied:
        bad.request("GET", bad.path("functions"))
    assert denied.value.status == 403


def test_the_functions_command_make_local_prints_runs_as_printed(runtime: LocalRuntime) -> None:
    from scripts.local.__main__ import hints

    [line] = [h for h in hints(runtime) if h.startswith("functions CLI (")]
    command = line.split(": ", 1)[1]
    assert " .venv/bin/platform-functions list" in command  # the console script `make setup` installs
    env = {k: v for k, v in os.environ.items() if not k.startswith("FUNCTIONS_")}
    # As pasted into a shell at the repository root: its variable assignments, then the command.
    result = subprocess.run(
        ["/bin/sh", "-c", command], cwd=ROOT, env=env, capture_output=True, text=True, timeout=120, check=False
    )
    assert result.returncode == 0, result.stderr


# --- Functions (2 of 2) -----------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def flaky(api: ApiClient) -> str:
    api.request("POST", api.path("functions"), {"name": "flaky", "source": FLAKY})
    deadline = time.time() + 60
    while api.request("GET", api.path("functions", "flaky"))["status"] != "deployed":
        assert time.time() < deadline
        time.sleep(0.2)
    api.request("POST", api.path("functions", "flaky", "versions"), {})
    deadline = time.time() + 60
    while api.request("GET", api.path("functions", "flaky", "versions", "1"))["status"] != "published":
        assert time.time() < deadline
        time.sleep(0.2)
    api.request("PUT", api.path("functions", "flaky", "aliases", "live"), {"version": 1})
    while api.request("GET", api.path("functions", "flaky", "aliases", "live"))["status"] != "ready":
        assert time.time() < deadline
        time.sleep(0.2)
    return "flaky"


def test_async_success_and_failure_reach_the_record(api: ApiClient, flaky: str) -> None:
    queued = invoke(api, flaky, {"i": 1}, mode="async")
    assert queued["status"] == "queued"
    done = wait_invocation(api, queued["invocation_id"])
    assert done["status"] == "succeeded" and done["result"] == {"i": 1} and done["executed_version"] == "1"
    failing = invoke(api, flaky, {"i": 2, "fail": True}, mode="async")
    failed = wait_invocation(api, failing["invocation_id"])
    assert failed["status"] == "failed" and failed["error"] == {"type": "ValueError", "message": "item 2 refused"}
    lines = api.request("GET", f"/v1/orgs/{ORG}/invocations/{failing['invocation_id']}/logs")["lines"]
    text = "\n".join(line["message"] for line in lines)
    assert "START RequestId:" in text and "ValueError: item 2 refused" in text and "REPORT RequestId:" in text


def test_idempotency_key_runs_once(runtime: LocalRuntime, admin_key: str, flaky: str) -> None:
    payload = '{"i": 90210}'
    first = ok(cli(runtime, admin_key, "invoke", flaky, "--async", "--idempotency-key", "k-1", "--payload", payload))
    second = ok(cli(runtime, admin_key, "invoke", flaky, "--async", "--idempotency-key", "k-1", "--payload", payload))
    assert first.strip() == second.strip()
    records = json.loads(ok(cli(runtime, admin_key, "invocations", flaky, "--json", "--limit", "50")))
    rows = records["invocations"] if isinstance(records, dict) else records
    digest = hashlib.sha256(b'{"i":90210}').hexdigest()
    assert sum(1 for r in rows if r["payload_sha256"] == digest) == 1


def test_batch_of_25_with_two_failing_items(api: ApiClient, flaky: str) -> None:
    payloads = [{"i": i, "fail": i in (3, 17)} for i in range(25)]
    answer = api.request("POST", api.path("functions", flaky, "batch"), {"payloads": payloads})
    records = [wait_invocation(api, item["invocation_id"]) for item in answer["invocations"]]
    statuses = {r["status"] for i, r in enumerate(records) if i not in (3, 17)}
    assert statuses == {"succeeded"}
    assert [records[3]["status"], records[17]["status"]] == ["failed", "failed"]
    assert records[3]["error"]["message"] == "item 3 refused"


def test_results_are_kept_edited_and_verified(api: ApiClient, flaky: str) -> None:
    run = api.request("POST", api.path("functions", flaky, "run"), {"input": {"i": 5}}, query={"subject": "doc-1"})
    assert run["original_result"] == {"i": 5} and run["reused"] is False
    again = api.request("POST", api.path("functions", flaky, "run"), {"input": {"i": 6}}, query={"subject": "doc-1"})
    assert again["reused"] is True and again["invocation_id"] == run["invocation_id"]
    edited = api.request(
        "PUT", api.path("functions", flaky, "results", "doc-1"), {"updated_result": {"i": 50}, "is_verified": True}
    )
    assert edited["original_result"] == {"i": 5} and edited["updated_result"] == {"i": 50}
    assert edited["is_edited"] is True and edited["is_verified"] is True and edited["verified_by"]
    forced = api.request(
        "POST", api.path("functions", flaky, "run"), {"input": {"i": 7}}, query={"subject": "doc-1", "force": "true"}
    )
    assert forced["original_result"] == {"i": 7} and forced["reused"] is False


def test_callback_token_reads_its_own_input_and_nothing_else(runtime: LocalRuntime, api: ApiClient, flaky: str) -> None:
    api.request("POST", api.path("functions"), {"name": "caller", "source": CALLBACKS})
    deadline = time.time() + 60
    while api.request("GET", api.path("functions", "caller"))["status"] != "deployed":
        assert time.time() < deadline
        time.sleep(0.2)
    other = invoke(api, flaky, {"i": 1}, mode="async")["invocation_id"]
    text = "x" * 1000
    answer = invoke(api, "caller", {"other": other, "text": text}, qualifier="draft", mode="async", callback=True)
    record = wait_invocation(api, answer["invocation_id"])
    assert record["status"] == "succeeded", record
    result = record["result"]
    assert result["input_status"] == 200 and result["own_input"] == {"other": other, "text": text}
    assert result["progress"] == 200 and result["foreign_status"] == 401
    assert "another invocation" in result["foreign_error"]
    # The token appears in no log line of the platform's own functions (nor the runtime's).
    platform_lines = [line.raw for line in runtime.logs.lines if not line.function.startswith("ufn-")]
    assert platform_lines and not any(result["token_tail"] in raw for raw in platform_lines)


def test_quota_and_budget_stops(runtime: LocalRuntime, api: ApiClient, flaky: str) -> None:
    from lambdas.functions.usage import _minute, _month, usage_pk

    table, ddb = runtime.output("FunctionsTableName"), runtime.client("dynamodb")
    now = time.time()
    ddb.put_item(
        TableName=table, Item={"pk": {"S": usage_pk(ORG)}, "sk": {"S": f"MIN#{_minute(now)}"}, "count": {"N": "100000"}}
    )
    with pytest.raises(ApiError) as limited:
        invoke(api, flaky, {"i": 1})
    assert limited.value.status == 429 and limited.value.retry_after
    ddb.delete_item(TableName=table, Key={"pk": {"S": usage_pk(ORG)}, "sk": {"S": f"MIN#{_minute(now)}"}})
    ddb.put_item(
        TableName=table,
        Item={"pk": {"S": usage_pk(ORG)}, "sk": {"S": f"MONTH#{_month(now)}"}, "gb_seconds": {"N": "99999999"}},
    )
    with pytest.raises(ApiError) as budget:
        invoke(api, flaky, {"i": 1})
    assert budget.value.status == 429 and "monthly budget" in str(budget.value)
    ddb.delete_item(TableName=table, Key={"pk": {"S": usage_pk(ORG)}, "sk": {"S": f"MONTH#{_month(now)}"}})
    assert invoke(api, flaky, {"i": 1})["status"] == "succeeded"


def test_every_change_is_in_the_audit_log(api: ApiClient) -> None:
    entries = api.request("GET", f"/v1/orgs/{ORG}/audit", query={"limit": "100"})["entries"]
    actions = {e["action"] for e in entries}
    assert {
        "function.create",
        "function.update",
        "version.publish",
        "alias.move",
        "alias.rollback",
        "key.issue",
    } <= actions
    assert any(a.startswith("result.edit") for a in actions)


def test_dry_run_checks_without_running(api: ApiClient, flaky: str) -> None:
    before = len(api.request("GET", api.path("functions", flaky, "invocations"), query={"limit": "100"})["invocations"])
    answer = invoke(api, flaky, {"i": 1}, mode="dryrun")
    assert answer["status"] == "valid" and any("DryRun" in check for check in answer["checks"])
    after = len(api.request("GET", api.path("functions", flaky, "invocations"), query={"limit": "100"})["invocations"])
    assert after == before  # nothing ran, nothing was recorded


def test_callback_url_receives_the_signed_record(api: ApiClient, flaky: str) -> None:
    import hmac
    import threading
    from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

    received: list[tuple[dict[str, str], bytes]] = []

    class Receiver(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            received.append((dict(self.headers), self.rfile.read(int(self.headers["Content-Length"]))))
            self.send_response(500 if len(received) == 1 else 204)  # the first delivery fails
            self.end_headers()

        def log_message(self, *_args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Receiver)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        url = f"http://127.0.0.1:{server.server_address[1]}/done"
        queued = invoke(api, flaky, {"i": 42}, mode="async", callback_url=url)
        deadline = time.time() + 30
        while len(received) < 2 and time.time() < deadline:
            time.sleep(0.2)
    finally:
        server.shutdown()
        server.server_close()
    assert len(received) == 2, "the webhook was not retried after a 500"
    headers, body = received[1]
    assert headers["X-Platform-Attempt"] == "2"
    key = api.request("GET", f"/v1/orgs/{ORG}/webhook-secret")["key"]
    stamp, signature = (part.split("=", 1)[1] for part in headers["X-Platform-Signature"].split(","))
    expected = hmac.new(bytes.fromhex(key), f"{stamp}.".encode() + body, hashlib.sha256).hexdigest()
    assert hmac.compare_digest(signature, expected)
    record = json.loads(body)
    assert record["invocation_id"] == queued["invocation_id"] and record["result"] == {"i": 42}
