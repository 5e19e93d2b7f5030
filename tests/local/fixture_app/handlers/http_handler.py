"""Echoes what the HTTP API event carried, and sets a cookie."""

import json
import os


def handler(event, context):
    return {
        "statusCode": 200,
        "headers": {"content-type": "application/json"},
        "cookies": ["seen=1; Path=/"],
        "body": json.dumps(
            {
                "greeting": os.environ["GREETING"],
                "routeKey": event["routeKey"],
                "rawPath": event["rawPath"],
                "rawQueryString": event["rawQueryString"],
                "query": event.get("queryStringParameters"),
                "pathParameters": event.get("pathParameters"),
                "cookies": event.get("cookies"),
                "headers": event["headers"],
                "method": event["requestContext"]["http"]["method"],
                "stage": event["requestContext"]["stage"],
                "body": event.get("body"),
                "isBase64Encoded": event["isBase64Encoded"],
                "function": context.function_name,
                "authorizer": event["requestContext"].get("authorizer"),
            }
        ),
    }
