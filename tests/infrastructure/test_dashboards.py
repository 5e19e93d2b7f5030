"""Dashboards-{env}: one dashboard per system with the metrics an operator looks at first."""

from __future__ import annotations

import json
from typing import Any

import pytest

from tests.infrastructure.synth import synthesize

ENVS = ["dev", "prod"]


def dashboards(env_name: str) -> dict[str, dict[str, Any]]:
    """dashboard name -> body; the body's API ids stay as their (imported) intrinsic."""
    resources = synthesize(env_name).template_json(f"Dashboards-{env_name}")["Resources"]
    found = {}
    for resource in resources.values():
        if resource["Type"] == "AWS::CloudWatch::Dashboard":
            props = resource["Properties"]
            parts = props["DashboardBody"]["Fn::Join"][1]
            body = "".join(p if isinstance(p, str) else json.dumps(p).replace('"', '\\"') for p in parts)
            found[props["DashboardName"]] = json.loads(body)
    return found


def metrics(body: dict[str, Any]) -> list[list[Any]]:
    return [m for w in body["widgets"] if w["type"] == "metric" for m in w["properties"].get("metrics", [])]


def has_metric(body: dict[str, Any], namespace: str, name: str, dimension: str, value: Any) -> bool:
    """A metric row is [namespace, name, dim1, value1, ..., {options}]."""
    for row in metrics(body):
        if row[0] == namespace and row[1] == name:
            pairs = dict(zip(row[2:-1:2], row[3:-1:2], strict=False))
            if pairs.get(dimension) == value:
                return True
    return False


@pytest.mark.parametrize("env_name", ENVS)
def test_one_dashboard_per_system(env_name: str) -> None:
    assert set(dashboards(env_name)) == {f"{s}-{env_name}" for s in ("qr-upload", "tunnel", "collections", "functions")}


@pytest.mark.parametrize("env_name", ENVS)
def test_every_function_has_invocations_errors_throttles_and_p99_duration(env_name: str) -> None:
    synthesized = synthesize(env_name)
    bodies = dashboards(env_name)
    systems = {"qr-upload": ["QrUpload"], "tunnel": ["Tunnel"], "collections": ["CollectionsComputeStack"]}
    systems["functions"] = ["Functions"]
    checked = 0
    for system, stack_bases in systems.items():
        body = bodies[f"{system}-{env_name}"]
        for base in stack_bases:
            template = synthesized.template_json(f"{base}-{env_name}")
            for resource in template["Resources"].values():
                name = resource.get("Properties", {}).get("FunctionName")
                if resource["Type"] != "AWS::Lambda::Function" or not isinstance(name, str):
                    continue
                for metric in ("Invocations", "Errors", "Throttles", "Duration"):
                    assert has_metric(body, "AWS/Lambda", metric, "FunctionName", name), (system, name, metric)
                row = next(r for r in metrics(body) if r[1] == "Duration" and r[3] == name)
                assert row[-1]["stat"] == "p99"
                checked += 1
    assert checked >= 15


@pytest.mark.parametrize("env_name", ENVS)
def test_apis_show_errors_and_latency_by_their_id(env_name: str) -> None:
    bodies = dashboards(env_name)
    for system, count in (("qr-upload", 2), ("tunnel", 2), ("collections", 1), ("functions", 1)):
        body = bodies[f"{system}-{env_name}"]
        api_rows = [r for r in metrics(body) if r[0] == "AWS/ApiGateway"]
        ids = {json.dumps(r[3]) for r in api_rows}
        assert len(ids) == count, (system, ids)
        assert all("Fn::ImportValue" in i for i in ids), ids  # the system stack's API, not a guess
        names = {r[1] for r in api_rows}
        assert {"Count", "4xx", "5xx", "Latency"} <= names, (system, names)


@pytest.mark.parametrize("env_name", ENVS)
def test_queue_depths_and_the_database(env_name: str) -> None:
    bodies = dashboards(env_name)
    collections = bodies[f"collections-{env_name}"]
    for metric in ("CPUUtilization", "DatabaseConnections", "FreeStorageSpace"):
        assert has_metric(collections, "AWS/RDS", metric, "DBInstanceIdentifier", f"collections-{env_name}")
    for system, queue in (
        ("collections", f"collections-{env_name}-ImageProcessedRule-dlq"),
        ("qr-upload", f"qr-upload-websocket-event-{env_name}-failures"),
        ("functions", f"functions-deploy-{env_name}.fifo"),
    ):
        body = bodies[f"{system}-{env_name}"]
        assert has_metric(body, "AWS/SQS", "ApproximateNumberOfMessagesVisible", "QueueName", queue), queue
        assert has_metric(body, "AWS/SQS", "ApproximateAgeOfOldestMessage", "QueueName", queue), queue
