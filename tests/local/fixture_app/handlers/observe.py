"""Records the event it received on the observed queue (S3 notifications, EventBridge rules)."""

import json
import os

import boto3


def handler(event, context):
    boto3.client("sqs").send_message(
        QueueUrl=os.environ["OBSERVED_QUEUE_URL"],
        MessageBody=json.dumps({"function": context.function_name, "event": event}),
    )
