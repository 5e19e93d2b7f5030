"""$connect refuses `?deny=1` with 403; the `echo` route replies through @connections."""

import json
import os

import boto3


def handler(event, context):
    ctx = event["requestContext"]
    if ctx["routeKey"] == "$connect":
        denied = (event.get("queryStringParameters") or {}).get("deny") == "1"
        return {"statusCode": 403 if denied else 200}
    endpoint = os.environ["WS_API_ENDPOINT"]
    api = boto3.client("apigatewaymanagementapi", endpoint_url=endpoint)
    message = json.loads(event["body"])
    reply = {"echo": message["text"], "connectionId": ctx["connectionId"]}
    api.post_to_connection(ConnectionId=ctx["connectionId"], Data=json.dumps(reply).encode())
    if message.get("gone"):  # post to a connection that does not exist: GoneException
        try:
            api.post_to_connection(ConnectionId="nobody", Data=b"x")
        except api.exceptions.GoneException:
            api.post_to_connection(ConnectionId=ctx["connectionId"], Data=b'{"gone": true}')
    return {"statusCode": 200}
