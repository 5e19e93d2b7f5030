"""Records each attempt on the observed queue, then fails: exercises retries and the destination."""

import json
import os

import boto3


def handler(event, context):
    boto3.client("sqs").send_message(
        QueueUrl=os.environ["OBSERVED_QUEUE_URL"],
        MessageBody=json.dumps({"function": context.function_name, "attempt": context.aws_request_id}),
    )
    raise RuntimeError("fixture failure")
