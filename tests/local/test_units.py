"""Pattern matching, intrinsic resolution, and the runtime's small rules (code unpacking, names,
authorizer policies, batch failures, Lambda's log frame), without servers."""

from __future__ import annotations

import io
import json
import stat
import zipfile
from pathlib import Path
from typing import Any

import pytest

from scripts.local.assembly import Assembly, StackTemplate
from scripts.local.events import batch_item_failures
from scripts.local.functions import Invocation
from scripts.local.http_api import identity_values, policy_allows
from scripts.local.intrinsics import Resolver
from scripts.local.patterns import matches
from scripts.local.user_functions import BadRequest, CodeError, report_lines, split_name, unpack, weighted_version

EVENT = {
    "source": "shop",
    "detail-type": "Order",
    "detail": {"amount": 120, "kind": "big-order", "tags": ["a", "b"], "ip": "10.0.1.7", "meta": {"env": "dev"}},
}


def test_patterns() -> None:
    assert matches({"source": ["shop"]}, EVENT)
    assert not matches({"source": ["other"]}, EVENT)
    assert matches({"detail": {"kind": [{"prefix": "big"}]}}, EVENT)
    assert matches({"detail": {"kind": [{"suffix": "order"}]}}, EVENT)
    assert not matches({"detail": {"kind": [{"anything-but": ["big-order"]}]}}, EVENT)
    assert matches({"detail": {"kind": [{"anything-but": {"prefix": "small"}}]}}, EVENT)
    assert matches({"detail": {"amount": [{"numeric": [">", 100, "<=", 120]}]}}, EVENT)
    assert not matches({"detail": {"amount": [{"numeric": [">", 120]}]}}, EVENT)
    assert matches({"detail": {"missing": [{"exists": False}], "kind": [{"exists": True}]}}, EVENT)
    assert not matches({"detail": {"missing": [{"exists": True}]}}, EVENT)
    assert matches({"detail": {"tags": ["b"]}}, EVENT)
    assert matches({"detail": {"meta": {"env": ["dev"]}}}, EVENT)
    assert not matches({"detail": {"meta": {"env": ["prod"]}}}, EVENT)
    assert matches({"detail": {"ip": [{"cidr": "10.0.0.0/16"}]}}, EVENT)
    assert matches({"detail-type": [{"equals-ignore-case": "order"}]}, EVENT)
    assert matches({"$or": [{"source": ["x"]}, {"detail": {"amount": [120]}}]}, EVENT)
    assert matches({"detail": {"amount": [120.0]}}, EVENT)
    assert not matches({"detail": {"amount": ["120"]}}, EVENT)


def _resolver() -> Resolver:
    api = {"Type": "AWS::ApiGatewayV2::Api", "Properties": {"ProtocolType": "WEBSOCKET", "Name": "ws"}}
    producer = StackTemplate(
        "P",
        {
            "Resources": {"Q": {"Type": "AWS::SQS::Queue", "Properties": {"QueueName": "q1"}}, "Api": api},
            "Outputs": {"O": {"Value": {"Fn::GetAtt": ["Q", "Arn"]}, "Export": {"Name": "QArn"}}},
        },
    )
    consumer = StackTemplate("C", {"Resources": {"B": {"Type": "AWS::S3::Bucket"}}})
    return Resolver(Assembly([producer, consumer]), "eu-west-1", "http://127.0.0.1:9")


def test_intrinsics() -> None:
    r = _resolver()
    assert r.resolve({"Fn::ImportValue": "QArn"}, "C") == "arn:aws:sqs:eu-west-1:123456789012:q1"
    assert r.resolve({"Ref": "Q"}, "P") == "http://127.0.0.1:9/123456789012/q1"
    assert r.resolve({"Fn::Sub": "${AWS::Region}-${Q.QueueName}-${!Literal}"}, "P") == "eu-west-1-q1-${Literal}"
    assert r.resolve({"Fn::Select": [1, {"Fn::Split": [",", "a,b,c"]}]}, "C") == "b"
    assert r.resolve({"Fn::Join": ["-", ["x", {"Ref": "AWS::AccountId"}]]}, "C") == "x-123456789012"
    assert r.resolve({"K": {"Ref": "AWS::NoValue"}, "L": 1}, "C") == {"L": 1}
    bucket = r.resolve({"Ref": "B"}, "C")
    assert bucket == bucket.lower() and bucket.startswith("c-b-")
    api_id = r.resolve({"Ref": "Api"}, "P")
    endpoint = {
        "Fn::Join": [
            "",
            [{"Ref": "Api"}, ".execute-api.", {"Ref": "AWS::Region"}, ".", {"Ref": "AWS::URLSuffix"}, "/dev"],
        ]
    }
    assert r.resolve(endpoint, "P") == f"{api_id}.execute-api.eu-west-1.amazonaws.com/dev"
    r.api_addresses[api_id] = "127.0.0.1:8001"
    assert r.resolve(endpoint, "P") == "http://127.0.0.1:8001/dev"
    assert r.resolve({"Fn::GetAtt": ["Api", "ApiEndpoint"]}, "P") == "ws://127.0.0.1:8001"


def _zip(*entries: tuple[str, str], link: str | None = None) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        for name, text in entries:
            archive.writestr(name, text)
        if link is not None:
            info = zipfile.ZipInfo(link)
            info.external_attr = (stat.S_IFLNK | 0o777) << 16
            archive.writestr(info, "/etc/passwd")
    return buffer.getvalue()


def test_unpack_refuses_entries_that_leave_the_directory(tmp_path: Path) -> None:
    unpack(_zip(("main.py", "x = 1"), ("pkg/mod.py", "")), tmp_path / "ok")
    assert (tmp_path / "ok" / "main.py").read_text() == "x = 1" and (tmp_path / "ok" / "pkg" / "mod.py").exists()
    for bad, why in (
        (_zip(("../evil.py", "")), "unsafe path"),
        (_zip(("/abs.py", "")), "unsafe path"),
        (_zip(("a/../../evil.py", "")), "unsafe path"),
        (_zip(("main.py", ""), link="link.py"), "symbolic link"),
        (b"not a zip", "not a zip"),
    ):
        with pytest.raises(CodeError, match=why):
            unpack(bad, tmp_path / "refused")
        assert not (tmp_path / "refused").exists()
    assert not (tmp_path / "evil.py").exists()


def test_function_names_and_alias_weights() -> None:
    assert split_name("fn", None) == ("fn", None)
    assert split_name("fn:live", None) == ("fn", "live")
    assert split_name("arn:aws:lambda:us-east-1:123456789012:function:fn:3", None) == ("fn", "3")
    assert split_name("123456789012:function:fn", "7") == ("fn", "7")
    with pytest.raises(BadRequest):
        split_name("fn:live", "3")
    assert weighted_version("1", {"AdditionalVersionWeights": {"2": 1.0}}) == "2"
    assert weighted_version("1", {"AdditionalVersionWeights": {"2": 0.0}}) == "1"
    assert weighted_version("1", None) == "1"


def test_authorizer_identity_sources_and_policies() -> None:
    event = {"headers": {"authorization": "Bearer x"}, "queryStringParameters": {"k": "v"}, "requestContext": {}}
    assert identity_values(["$request.header.Authorization", "$request.querystring.k"], event) == ["Bearer x", "v"]
    assert identity_values(["$request.header.X-Missing"], event) is None
    assert identity_values(["$stageVariables.v"], event) is None
    arn = "arn:aws:execute-api:us-east-1:123456789012:api/$default/GET/items/1"

    def policy(*statements: tuple[str, str]) -> dict[str, Any]:
        return {"Statement": [{"Action": "execute-api:Invoke", "Effect": e, "Resource": r} for e, r in statements]}

    assert policy_allows(policy(("Allow", arn)), arn) is True
    assert policy_allows(policy(("Allow", "arn:aws:execute-api:*:*:api/*/GET/*")), arn) is True
    assert policy_allows(policy(("Allow", "arn:aws:execute-api:*:*:api/*/POST/*")), arn) is False
    assert policy_allows(policy(("Allow", "*"), ("Deny", arn)), arn) is False
    assert policy_allows({"Statement": "nonsense"}, arn) is None


def test_batch_item_failures_as_lambda_reads_them() -> None:
    ids = {"m1", "m2"}
    assert batch_item_failures(None, ids) == set()
    assert batch_item_failures({"batchItemFailures": []}, ids) == set()
    assert batch_item_failures({"batchItemFailures": [{"itemIdentifier": "m2"}]}, ids) == {"m2"}
    assert batch_item_failures({"batchItemFailures": [{"itemIdentifier": "other"}]}, ids) is None
    assert batch_item_failures({"batchItemFailures": [{"itemIdentifier": ""}]}, ids) is None


def test_report_lines_frame_an_invocation() -> None:
    invocation = Invocation(
        "rid", started=100.0, finished=100.5, duration_ms=12.3, max_memory_mb=40, init_ms=150.0,
        logs=[(99.0, "imported"), (100.1, "hello")],
    )  # fmt: skip
    assert [text for _, text in report_lines(invocation, "3", 256)] == [
        "imported",
        "START RequestId: rid Version: 3",
        "hello",
        "END RequestId: rid",
        "REPORT RequestId: rid\tDuration: 12.30 ms\tBilled Duration: 13 ms\tMemory Size: 256 MB\t"
        "Max Memory Used: 40 MB\tInit Duration: 150.00 ms",
    ]


def test_log_lines_show_unicode_as_text() -> None:
    from scripts.local.logs import LogStream, parse

    raw = json.dumps({"level": "INFO", "message": "caf\u00e9 ok", "name": "Jos\u00e9", "tags": ["\u2615"]})
    line = parse("fn", raw)
    assert line.message == 'café ok name="José" tags=["☕"]'
    assert "\\u" not in LogStream(colour=False).render(line)


def test_local_log_lines_render_an_exception_as_scripts_logs_does() -> None:
    from scripts import logs
    from scripts.local.logs import parse

    raw = json.dumps({"level": "ERROR", "message": "boom", "key": "k", "exception": "Traceback\nValueError"})
    line = parse("fn", raw)
    assert (line.level, line.message) == ("ERROR", 'boom key="k"\n    Traceback\n    ValueError')
    assert logs.render(0, raw).endswith("boom key=k\n    Traceback\n    ValueError")
