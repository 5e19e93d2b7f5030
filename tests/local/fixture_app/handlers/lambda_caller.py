"""Invokes a function through boto3's Lambda client, unmodified, as the platform's handlers do
(the runtime points AWS_ENDPOINT_URL_LAMBDA at its Lambda API)."""

import json
import os

import boto3


def handler(event, context):
    response = boto3.client("lambda").invoke(
        FunctionName=event["function"], Payload=json.dumps(event.get("payload", {})).encode()
    )
    return {
        "endpoint": os.environ.get("AWS_ENDPOINT_URL_LAMBDA"),
        "status": response["StatusCode"],
        "executed_version": response.get("ExecutedVersion"),
        "payload": json.loads(response["Payload"].read()),
    }
