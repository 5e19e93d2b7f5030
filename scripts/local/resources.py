"""Create the templates' data resources in moto: buckets, tables, queues, topics, buses, parameters,
secrets, and IAM roles (without their policies: a function created at run time names its role, and
moto's CreateFunction refuses a role it does not know). Every other type is either served by
another module (functions, APIs, authorizers, rules, database) or has no local meaning (IAM
policies, log groups, alarms, permissions) and is listed as skipped.
"""

from __future__ import annotations

import json
import secrets
import string
from collections.abc import Callable
from typing import Any

import boto3

from scripts.local.assembly import Resource
from scripts.local.intrinsics import Resolver

SERVED_ELSEWHERE = {
    "AWS::Lambda::Function",
    "AWS::Lambda::EventInvokeConfig",
    "AWS::Lambda::EventSourceMapping",
    "AWS::ApiGatewayV2::Api",
    "AWS::ApiGatewayV2::Authorizer",
    "AWS::ApiGatewayV2::Route",
    "AWS::ApiGatewayV2::Integration",
    "AWS::ApiGatewayV2::Stage",
    "AWS::ApiGatewayV2::RouteResponse",
    "AWS::ApiGatewayV2::IntegrationResponse",
    "AWS::ApiGatewayV2::Deployment",
    "AWS::Events::Rule",
    "Custom::S3BucketNotifications",
    "AWS::RDS::DBInstance",
    "AWS::RDS::DBCluster",
    "AWS::SecretsManager::SecretTargetAttachment",
    "Custom::Trigger",
    # cloudfront.py serves distributions and reads their keys and policies when asked.
    "AWS::CloudFront::Distribution",
    "AWS::CloudFront::KeyGroup",
    "AWS::CloudFront::PublicKey",
    "AWS::CloudFront::CachePolicy",
    "AWS::CloudFront::ResponseHeadersPolicy",
    "AWS::CloudFront::OriginAccessControl",
}
NO_LOCAL_MEANING_PREFIXES = (
    "AWS::IAM::",
    "AWS::Logs::",
    "AWS::CloudWatch::",
    "AWS::Lambda::Permission",
    "AWS::S3::BucketPolicy",
    "AWS::SQS::QueuePolicy",
    "AWS::SNS::TopicPolicy",
    "AWS::EC2::",
    "AWS::KMS::",
    "AWS::RDS::DBSubnetGroup",
    "AWS::RDS::DBParameterGroup",
    "AWS::RDS::DBClusterParameterGroup",
    "AWS::SecretsManager::RotationSchedule",
    "AWS::SecretsManager::ResourcePolicy",
    "AWS::CDK::Metadata",
    "AWS::ApiGateway::Account",
    "AWS::Lambda::Version",
    "AWS::Lambda::Alias",
    "AWS::Lambda::LayerVersion",
    "AWS::Events::Archive",
    "AWS::Events::EventBusPolicy",
    "AWS::CloudFormation::",
    "AWS::Serverless::",
    "Custom::",
)


class ResourceFactory:
    def __init__(
        self, resolver: Resolver, endpoint_url: str, region: str, endpoints: dict[str, str] | None = None
    ) -> None:
        self.resolver = resolver
        self._endpoints = endpoints or {}  # per service, e.g. lambda -> the runtime's Lambda API
        self._session = boto3.session.Session(
            aws_access_key_id="testing",
            aws_secret_access_key="testing",  # noqa: S106 (moto accepts any credentials)
            region_name=region,
        )
        self._endpoint = endpoint_url
        self.skipped: list[str] = []
        self.created: list[str] = []

    def client(self, service: str) -> Any:
        endpoint = self._endpoints.get(service, self._endpoint)
        return self._session.client(service, endpoint_url=endpoint)  # type: ignore[call-overload]

    def _props(self, resource: Resource) -> dict[str, Any]:
        return dict(self.resolver.resolve(resource.properties, resource.stack))

    def create_all(self, resources: list[Resource]) -> None:
        creators: dict[str, Callable[[Resource], None]] = {
            "AWS::S3::Bucket": self.bucket,
            "AWS::DynamoDB::Table": self.table,
            "AWS::DynamoDB::GlobalTable": self.table,
            "AWS::SQS::Queue": self.queue,
            "AWS::SNS::Topic": self.topic,
            "AWS::Events::EventBus": self.event_bus,
            "AWS::SSM::Parameter": self.parameter,
            "AWS::SecretsManager::Secret": self.secret,
            "AWS::IAM::Role": self.role,
        }
        # Dead-letter queues first: a queue's RedrivePolicy names its DLQ's ARN.
        ordered = sorted(resources, key=lambda r: bool(r.properties.get("RedrivePolicy")))
        for resource in ordered:
            if not self.resolver.exists(resource):
                continue
            creator = creators.get(resource.type)
            if creator is not None:
                creator(resource)
                self.created.append(f"{resource.type} {self.resolver.name(resource)}")
            elif resource.type not in SERVED_ELSEWHERE and not resource.type.startswith(NO_LOCAL_MEANING_PREFIXES):
                self.skipped.append(f"{resource} ({resource.type})")

    def bucket(self, resource: Resource) -> None:
        props = self._props(resource)
        name = self.resolver.name(resource)
        s3 = self.client("s3")
        s3.create_bucket(Bucket=name)
        rules = (props.get("CorsConfiguration") or {}).get("CorsRules")
        if rules:
            keys = {"AllowedHeaders", "AllowedMethods", "AllowedOrigins", "ExposedHeaders", "MaxAge", "Id"}
            cors = [
                {
                    ("MaxAgeSeconds" if k == "MaxAge" else ("ID" if k == "Id" else k)): v
                    for k, v in rule.items()
                    if k in keys
                }
                for rule in rules
            ]
            s3.put_bucket_cors(Bucket=name, CORSConfiguration={"CORSRules": cors})
        if (props.get("VersioningConfiguration") or {}).get("Status") == "Enabled":
            s3.put_bucket_versioning(Bucket=name, VersioningConfiguration={"Status": "Enabled"})

    def table(self, resource: Resource) -> None:
        props = self._props(resource)
        args: dict[str, Any] = {
            "TableName": self.resolver.name(resource),
            "KeySchema": props["KeySchema"],
            "AttributeDefinitions": props["AttributeDefinitions"],
            "BillingMode": "PAY_PER_REQUEST",
        }
        for key in ("GlobalSecondaryIndexes", "LocalSecondaryIndexes"):
            if props.get(key):
                # ProvisionedThroughput / contributor insights have no local meaning.
                args[key] = [
                    {k: v for k, v in index.items() if k in ("IndexName", "KeySchema", "Projection")}
                    for index in props[key]
                ]
        stream = props.get("StreamSpecification")
        if stream:
            args["StreamSpecification"] = {"StreamEnabled": True, "StreamViewType": stream["StreamViewType"]}
        dynamodb = self.client("dynamodb")
        dynamodb.create_table(**args)
        ttl = props.get("TimeToLiveSpecification")
        if ttl and ttl.get("Enabled"):
            dynamodb.update_time_to_live(
                TableName=args["TableName"],
                TimeToLiveSpecification={"Enabled": True, "AttributeName": ttl["AttributeName"]},
            )

    def queue(self, resource: Resource) -> None:
        props = self._props(resource)
        attributes: dict[str, str] = {}
        for key in ("VisibilityTimeout", "MessageRetentionPeriod", "DelaySeconds", "ReceiveMessageWaitTimeSeconds"):
            if key in props:
                attributes[key] = str(props[key])
        if props.get("FifoQueue"):
            attributes["FifoQueue"] = "true"
            if props.get("ContentBasedDeduplication"):
                attributes["ContentBasedDeduplication"] = "true"
        if props.get("RedrivePolicy"):
            attributes["RedrivePolicy"] = json.dumps(props["RedrivePolicy"])
        url = self.client("sqs").create_queue(QueueName=self.resolver.name(resource), Attributes=attributes)["QueueUrl"]
        self.resolver.record(resource, Ref=url, QueueUrl=url)

    def role(self, resource: Resource) -> None:
        """The role only (no policies: nothing checks IAM locally), so that CreateFunction with
        its ARN finds it as Lambda would (moto refuses a role it does not know)."""
        props = self._props(resource)
        trust = props.get("AssumeRolePolicyDocument") or {}
        arn = self.client("iam").create_role(
            RoleName=self.resolver.name(resource),
            Path=str(props.get("Path", "/")),
            AssumeRolePolicyDocument=trust if isinstance(trust, str) else json.dumps(trust),
        )["Role"]["Arn"]
        self.resolver.record(resource, Arn=arn)

    def topic(self, resource: Resource) -> None:
        arn = self.client("sns").create_topic(Name=self.resolver.name(resource))["TopicArn"]
        self.resolver.record(resource, Ref=arn, Arn=arn)

    def event_bus(self, resource: Resource) -> None:
        name = self.resolver.name(resource)
        if name != "default":
            self.client("events").create_event_bus(Name=name)

    def parameter(self, resource: Resource) -> None:
        props = self._props(resource)
        self.client("ssm").put_parameter(
            Name=self.resolver.name(resource),
            Value=str(props.get("Value", "")),
            Type=props.get("Type", "String"),
            Overwrite=True,
        )

    def secret(self, resource: Resource, value: str | None = None) -> None:
        props = self._props(resource)
        if value is None:
            value = props.get("SecretString")
        if value is None:
            value = _generated_secret(props.get("GenerateSecretString") or {})
        arn = self.client("secretsmanager").create_secret(Name=self.resolver.name(resource), SecretString=value)["ARN"]
        self.resolver.record(resource, Ref=arn, Arn=arn)

    def put_secret_value(self, resource: Resource, value: str) -> None:
        self.client("secretsmanager").put_secret_value(SecretId=self.resolver.ref(resource), SecretString=value)


def _generated_secret(spec: dict[str, Any]) -> str:
    length = int(spec.get("PasswordLength", 32))
    excluded = set(spec.get("ExcludeCharacters", ""))
    alphabet = [c for c in string.ascii_letters + string.digits if c not in excluded]
    password = "".join(secrets.choice(alphabet) for _ in range(length))
    template = spec.get("SecretStringTemplate")
    if template:
        body = json.loads(template)
        body[spec.get("GenerateStringKey", "password")] = password
        return json.dumps(body)
    return password
