"""Collections end to end on the local runtime: S3 upload -> processor -> EventBridge -> analyzer
(local provider) -> embedder (local provider) -> PostgreSQL, and the IAM-signed search API."""

from __future__ import annotations

import io
import json
import time
import urllib.request
from collections.abc import Callable, Iterator
from typing import Any
from urllib.parse import urlencode

import pytest
from botocore.auth import SigV4Auth
from botocore.awsrequest import AWSRequest
from botocore.credentials import Credentials

from scripts.local.runtime import LocalRuntime
from scripts.local.synth import COLLECTIONS_ONLY_APP
from tests.e2e.conftest import free_port_base

pytestmark = pytest.mark.slow
USER = "e2e-user"
COLOURS = {"red": (220, 25, 25), "green": (30, 180, 40), "blue": (30, 60, 220)}


def image(colour: tuple[int, int, int], size: tuple[int, int] = (1600, 1000)) -> bytes:
    from PIL import Image

    out = io.BytesIO()
    Image.new("RGB", size, colour).save(out, "JPEG", quality=90)
    return out.getvalue()


def wait_for(check: Callable[[], Any], timeout: float = 90, what: str = "condition") -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = check()
        if value:
            return value
        time.sleep(0.5)
    raise AssertionError(f"timed out waiting for {what}")


@pytest.fixture(scope="module")
def runtime() -> Iterator[LocalRuntime]:
    rt = LocalRuntime("dev", port_base=free_port_base(), app=COLLECTIONS_ONLY_APP).start()
    yield rt
    rt.stop()


@pytest.fixture(scope="module")
def db(runtime: LocalRuntime) -> Iterator[Any]:
    import psycopg

    assert runtime.database is not None
    with psycopg.connect(runtime.database.url, autocommit=True) as conn:
        yield conn


def count(db: Any, table: str) -> int:
    return int(db.execute(f"SELECT count(*) FROM {table}").fetchone()[0])  # noqa: S608 - fixed names


def signed_get(runtime: LocalRuntime, path: str, **params: str) -> tuple[int, Any]:
    """GET on the IAM-authorized API, signed with SigV4 as any AWS client would."""
    url = runtime.output("SearchApiUrl") + path + (f"?{urlencode(params)}" if params else "")
    request = AWSRequest(method="GET", url=url)
    SigV4Auth(Credentials("AKIDLOCALEXAMPLE0001", "local-secret"), "execute-api", "us-east-1").add_auth(request)
    try:
        with urllib.request.urlopen(urllib.request.Request(url, headers=dict(request.headers))) as response:
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as exc:
        return exc.code, json.loads(exc.read() or b"null")


@pytest.fixture(scope="module")
def uploaded(runtime: LocalRuntime, db: Any) -> dict[str, str]:
    s3 = runtime.client("s3")
    bucket = runtime.output("ImagesBucketName")
    for name, colour in COLOURS.items():
        s3.put_object(Bucket=bucket, Key=f"{USER}/{name} square.JPG", Body=image(colour))
    wait_for(lambda: count(db, "embeddings") == 3, what="three embeddings")
    rows = db.execute("SELECT original_key, item_id::text FROM items").fetchall()
    return {key.split("/")[1].split(" ")[0]: item_id for key, item_id in rows}


def test_outputs_name_the_bucket_and_search_endpoint(runtime: LocalRuntime) -> None:
    assert runtime.output("ImagesBucketName") and runtime.output("SearchApiUrl").startswith("http://127.0.0.1:")


def test_pipeline_writes_thumbnails_analyses_and_embeddings(runtime: LocalRuntime, db: Any, uploaded) -> None:
    assert set(uploaded) == set(COLOURS)
    derived = runtime.client("s3").list_objects_v2(Bucket=runtime.output("DerivedBucketName"))
    keys = {o["Key"] for o in derived["Contents"]}
    assert {f"thumbnails/{i}.jpg" for i in uploaded.values()} <= keys
    analyses = db.execute("SELECT item_id::text, provider, headline FROM analyses").fetchall()
    assert {(i, p) for i, p, _ in analyses} == {(i, "local") for i in uploaded.values()}
    by_item = {i: h for i, _, h in analyses}
    for name, item_id in uploaded.items():
        assert name in by_item[item_id]
    assert {r[0] for r in db.execute("SELECT model FROM embeddings").fetchall()} == {"local-hash-v1"}


def test_search_finds_each_image_by_words_from_its_analysis(runtime: LocalRuntime, uploaded) -> None:
    for name, item_id in uploaded.items():
        status, item = signed_get(runtime, f"/items/{item_id}", user_id=USER)
        assert status == 200 and item["analysis"]["provider"] == "local"
        words = " ".join(item["analysis"]["subcategories"])  # the colour words it found
        status, body = signed_get(runtime, "/search", q=words, user_id=USER, limit="3")
        assert status == 200 and body["results"][0]["item_id"] == item_id, (name, body)
    status, _ = signed_get(runtime, "/search", q="red", category="spaceships")
    assert status == 400


def test_unsigned_search_is_refused(runtime: LocalRuntime) -> None:
    url = runtime.output("SearchApiUrl") + "/search?q=red"
    with pytest.raises(urllib.error.HTTPError) as info:
        urllib.request.urlopen(url)
    assert info.value.code == 403


def test_duplicate_notification_adds_no_rows(runtime: LocalRuntime, db: Any, uploaded) -> None:
    item_id = uploaded["red"]
    before = db.execute("SELECT updated_at FROM items WHERE item_id = %s", (item_id,)).fetchone()[0]
    s3 = runtime.client("s3")
    s3.put_object(Bucket=runtime.output("ImagesBucketName"), Key=f"{USER}/red square.JPG", Body=image(COLOURS["red"]))
    wait_for(
        lambda: db.execute("SELECT updated_at FROM items WHERE item_id = %s", (item_id,)).fetchone()[0] > before,
        what="the processor to run again",
    )
    time.sleep(3)  # let the analyzer and embedder see the redelivered events
    assert (count(db, "items"), count(db, "analyses"), count(db, "embeddings")) == (3, 3, 3)


def test_corrupt_image_ends_in_the_failure_queue_with_its_reason(runtime: LocalRuntime, db: Any, uploaded) -> None:
    s3, sqs = runtime.client("s3"), runtime.client("sqs")
    s3.put_object(
        Bucket=runtime.output("ImagesBucketName"), Key=f"{USER}/broken.jpg", Body=b"\xff\xd8\xff\xe0" + b"\x00" * 512
    )
    queue = sqs.get_queue_url(QueueName="collections-dev-ImageProcessorLambda-failures")["QueueUrl"]

    def failure() -> Any:
        messages = sqs.receive_message(QueueUrl=queue, MaxNumberOfMessages=10).get("Messages", [])
        bodies = [json.loads(m["Body"]) for m in messages]
        return next((b for b in bodies if b.get("key") == f"{USER}/broken.jpg"), None)

    body = wait_for(failure, timeout=60, what="the failure message")
    assert body["reason"] == "corrupt" and body["source"] == "collections.imageprocessor"
    assert db.execute("SELECT status FROM items WHERE original_key = %s", (f"{USER}/broken.jpg",)).fetchone() == (
        "failed",
    )


def test_operator_command_requeues_deferred_items(runtime: LocalRuntime, db: Any, uploaded, capsys) -> None:
    """The local runtime runs no schedules: the operator command invokes DeferredAnalysesLambda
    through the Lambda API, and the deferred item goes through the analyzer and embedder again."""
    from scripts import collections_deferred

    item_id = uploaded["green"]
    wait_for(lambda: count(db, "embeddings") == 3, what="three embeddings")
    with db.transaction():  # as the analyzer leaves an item over its user's budget
        db.execute("DELETE FROM embeddings WHERE item_id = %s", (item_id,))
        db.execute("UPDATE items SET status = 'deferred', analysis_version = NULL WHERE item_id = %s", (item_id,))
    assert signed_get(runtime, f"/items/{item_id}", user_id=USER)[1]["status"] == "deferred"
    assert collections_deferred.main(["--env", "dev", "--endpoint-url", runtime.lambda_url]) == 0
    assert capsys.readouterr().out.splitlines() == ["requeued 1 deferred item(s)", f"  {item_id}"]
    wait_for(lambda: count(db, "embeddings") == 3, what="the requeued item's embedding")
    status, item = signed_get(runtime, f"/items/{item_id}", user_id=USER)
    assert (status, item["status"], item["analysis"]["version"]) == (200, "processed", 1)
    assert count(db, "analyses") == 3  # its own analysis of these bytes, not a new one
