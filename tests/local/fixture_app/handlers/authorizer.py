"""A Lambda REQUEST authorizer. Payload 2.0 with simple responses: "Bearer good..." is allowed with
a context, "Bearer bad..." denied, "Bearer boom" raises, "Bearer junk" answers the wrong shape.
Payload 1.0 with IAM policies (identity sources: the token and the `item` query parameter):
"Bearer good..." gets Allow on the method's ARN, Deny when item is "secret"."""


def handler(event, context):
    if event["version"] == "1.0":
        token, item = event["identitySource"].removeprefix("Bearer ").split(",")
        effect = "Allow" if token.startswith("good") and item != "secret" else "Deny"
        return {
            "principalId": "user",
            "policyDocument": {
                "Version": "2012-10-17",
                "Statement": [{"Action": "execute-api:Invoke", "Effect": effect, "Resource": [event["methodArn"]]}],
            },
            "context": {"via": "policy", "resource": event["resource"]},
        }
    token = event["identitySource"][0].removeprefix("Bearer ")
    if token == "boom":
        raise RuntimeError("authorizer failure")
    if token == "junk":
        return {"allowed": "yes"}
    return {
        "isAuthorized": token.startswith("good"),
        "context": {"org": "acme", "token": token, "routeKey": event["routeKey"], "type": event["type"]},
    }
