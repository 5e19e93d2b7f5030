"""The runtime follows the stack, and leaves nothing behind: no port bound, no worker alive."""

from __future__ import annotations

import json
import os
import re
import signal
import socket
import subprocess
import sys
import time

import pytest
import requests

from scripts.local.ports import port_is_free
from scripts.local.runtime import LAMBDA_OFFSET, MOTO_OFFSET
from scripts.local.synth import PROJECT_ROOT
from tests.local.conftest import free_port_base, start_fixture

pytestmark = pytest.mark.slow


def _children() -> set[int]:
    """Live (non-zombie) child processes of this test process."""
    return _children_of(os.getpid())


def _alive(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return False


def _children_of(parent: int) -> set[int]:
    pids = set()
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat") as f:
                fields = f.read().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(fields[1]) == parent and fields[0] != "Z":
            pids.add(int(entry))
    return pids


def test_changed_stack_changes_the_local_run_and_stop_releases_everything() -> None:
    before = _children()
    runtime = start_fixture(fixture_route="/greet/{who}", fixture_prefix="other/")
    try:
        url = str(runtime.outputs["Fixture-test"]["HttpUrl"])
        assert requests.get(f"{url}/hello/x", timeout=10).status_code == 404
        assert requests.get(f"{url}/greet/x", timeout=10).json()["routeKey"] == "GET /greet/{who}"
        s3, sqs = runtime.client("s3"), runtime.client("sqs")
        bucket, queue = (
            runtime.outputs["Fixture-test"]["BucketName"],
            runtime.outputs["Fixture-test"]["ObservedQueueUrl"],
        )
        s3.put_object(Bucket=bucket, Key="incoming/a.txt", Body=b"old prefix")
        s3.put_object(Bucket=bucket, Key="other/b.txt", Body=b"new prefix")
        keys: list[str] = []
        deadline = time.time() + 5
        while time.time() < deadline:
            for m in sqs.receive_message(QueueUrl=queue, MaxNumberOfMessages=10, WaitTimeSeconds=0).get("Messages", []):
                keys.append(json.loads(m["Body"])["event"]["Records"][0]["s3"]["object"]["key"])
            time.sleep(0.1)
        assert keys == ["other/b.txt"]
        ports = runtime.ports
        assert not any(port_is_free(p) for p in ports)
        assert _children() - before, "workers should be running"
    finally:
        runtime.stop()
    assert all(port_is_free(p) for p in ports)
    deadline = time.time() + 5
    while _children() - before and time.time() < deadline:
        time.sleep(0.1)
    assert not _children() - before


def test_port_in_use_is_one_clear_line_and_nonzero_exit() -> None:
    base = free_port_base()
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", base))
        taken.listen()
        result = subprocess.run(
            [sys.executable, "-m", "scripts.local", "--port-base", str(base)],
            cwd=PROJECT_ROOT,
            capture_output=True,
            text=True,
            timeout=120,
            check=False,
        )
    assert result.returncode == 1
    assert result.stderr.strip().splitlines() == [
        f"local runtime failed to start: port {base} is already in use (try --port-base)"
    ]


def test_database_gets_pgvector_migrations_and_the_rds_secret() -> None:
    runtime = start_fixture(fixture_database=True)
    try:
        assert runtime.database is not None
        response = requests.get(f"{runtime.outputs['Fixture-test']['HttpUrl']}/db", timeout=30)
        assert response.status_code == 200, [line.message for line in runtime.logs.lines if line.level == "ERROR"]
        body = response.json()
        assert body["database"] == "fixture"
        assert body["vector"]
        assert body["migrations"] >= 1  # the project's runner ran (no deploy-time Trigger in this stack)
        assert _processes_mentioning(str(runtime.database.directory)), "postgres should be running"
    finally:
        runtime.stop()
    data_dir = str(runtime.database.directory)
    assert not _processes_mentioning(data_dir), "postgres still running after stop"


def _processes_mentioning(text: str) -> list[int]:
    found = []
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                with open(f"/proc/{entry}/cmdline", "rb") as f:
                    if text.encode() in f.read():
                        found.append(int(entry))
            except OSError:
                continue
    return found


def test_cli_prints_where_things_run_and_ctrl_c_stops_everything() -> None:
    base = free_port_base()
    process = subprocess.Popen(
        [sys.executable, "-m", "scripts.local", "--port-base", str(base), "--no-colour"],
        cwd=PROJECT_ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    assert process.stdout is not None
    lines: list[str] = []
    try:
        for line in process.stdout:
            lines.append(line)
            if "logs follow" in line:
                break
        table = "".join(lines)
        assert re.search(rf"QrUpload-dev DesktopPageUrl +http://127\.0\.0\.1:{base}/\n", table), table
        assert re.search(rf"Lambda API .* +http://127\.0\.0\.1:{base + LAMBDA_OFFSET}\n", table), table
        assert f"AWS_ENDPOINT_URL_LAMBDA=http://127.0.0.1:{base + LAMBDA_OFFSET}" in table
        assert requests.get(f"http://127.0.0.1:{base}/", timeout=20).status_code == 200
        time.sleep(0.5)
        workers = _children_of(process.pid)
        assert workers, "the runtime should have warm workers"
    finally:
        process.send_signal(signal.SIGINT)
        rest = process.communicate(timeout=30)[0]
    assert process.returncode == 0
    assert "GET / -> 200" in rest  # the runtime's access line, streamed with the function logs
    assert all(port_is_free(p) for p in (base, base + 1, base + MOTO_OFFSET, base + LAMBDA_OFFSET))
    assert not [pid for pid in workers if _alive(pid)]
