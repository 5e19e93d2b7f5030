"""Consumes the FIFO queue as a FIFO consumer should: records each message it processes, fails a
message while its `fail_until` receive count is not reached, and after a failure reports every
later message of the same group as failed too (the group's order must hold)."""

import json
import os

import boto3


def handler(event, context):
    sqs = boto3.client("sqs")
    failures, failed_groups = [], set()
    for record in event["Records"]:
        group = record["attributes"]["MessageGroupId"]
        body = json.loads(record["body"])
        attempt = int(record["attributes"]["ApproximateReceiveCount"])
        if group in failed_groups or attempt < body.get("fail_until", 0):
            failed_groups.add(group)
            failures.append({"itemIdentifier": record["messageId"]})
            continue
        sqs.send_message(
            QueueUrl=os.environ["OBSERVED_QUEUE_URL"],
            MessageBody=json.dumps({"group": group, "name": body["name"], "attempt": attempt}),
        )
    return {"batchItemFailures": failures}
