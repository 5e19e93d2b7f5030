"""Messages from the API to the deployer over the FIFO queue (message group = function id, so one
function's changes apply in the order they were made; each has its own deduplication id)."""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from lambdas.common.aws import client

ACTIONS = ("deploy", "publish", "alias", "delete")


@dataclass(frozen=True)
class DeployMessage:
    action: str
    org: str
    fid: str
    number: int  # the draft revision, version number or alias sequence it applies

    def body(self) -> str:
        return json.dumps({"action": self.action, "org": self.org, "fid": self.fid, "number": self.number})

    @property
    def dedup_id(self) -> str:
        return f"{self.action}-{self.org}-{self.fid}-{self.number}"

    @classmethod
    def parse(cls, body: str) -> DeployMessage:
        data: Any = json.loads(body)
        if not isinstance(data, dict) or data.get("action") not in ACTIONS:
            raise ValueError(f"not a deploy message: {body[:200]!r}")
        return cls(str(data["action"]), str(data["org"]), str(data["fid"]), int(data["number"]))


def send(queue_url: str, message: DeployMessage) -> None:
    client("sqs").send_message(
        QueueUrl=queue_url,
        MessageBody=message.body(),
        MessageGroupId=message.fid,
        MessageDeduplicationId=message.dedup_id,
    )
