"""CloudFormation intrinsic functions resolved against local resources.

Physical names follow CloudFormation's rules: an explicit name property wins, otherwise a stable
generated one (stack, logical id, short hash), so every reference resolves before anything exists.
Values only known after creation (a secret's ARN suffix) are recorded with `record()`.
API Gateway hostnames (`{id}.execute-api.{region}.amazonaws.com`) and CloudFront distribution
domains (`dXXXX.cloudfront.net`) become local addresses through `localize()`, applied to every
resolved string.
"""

from __future__ import annotations

import base64
import hashlib
import json
import re
from collections.abc import Callable
from typing import Any

from scripts.local.assembly import Assembly, Resource

ACCOUNT = "123456789012"
NO_VALUE = object()  # AWS::NoValue: the enclosing key or list item disappears

_NAME_PROPERTY = {
    "AWS::S3::Bucket": "BucketName",
    "AWS::DynamoDB::Table": "TableName",
    "AWS::DynamoDB::GlobalTable": "TableName",
    "AWS::SQS::Queue": "QueueName",
    "AWS::SNS::Topic": "TopicName",
    "AWS::Lambda::Function": "FunctionName",
    "AWS::Events::EventBus": "Name",
    "AWS::Events::Rule": "Name",
    "AWS::SSM::Parameter": "Name",
    "AWS::SecretsManager::Secret": "Name",
    "AWS::Logs::LogGroup": "LogGroupName",
    "AWS::IAM::Role": "RoleName",
    "AWS::RDS::DBInstance": "DBInstanceIdentifier",
    "AWS::RDS::DBCluster": "DBClusterIdentifier",
    "AWS::ApiGatewayV2::Stage": "StageName",
}
_EXECUTE_API = re.compile(r"(?:(https?|wss?)://)?([a-z0-9]{10})\.execute-api\.[a-z0-9-]+\.amazonaws\.com")
_CLOUDFRONT = re.compile(r"(?:https?://)?(d[a-z0-9]+\.cloudfront\.net)")


class ResolveError(ValueError):
    pass


def short_hash(*parts: str, length: int = 10) -> str:
    return hashlib.sha256("/".join(parts).encode()).hexdigest()[:length]


class Resolver:
    def __init__(self, assembly: Assembly, region: str, services_url: str) -> None:
        self.assembly = assembly
        self.region = region
        self.services_url = services_url  # the moto server, e.g. http://127.0.0.1:8100
        self.api_addresses: dict[str, str] = {}  # api id -> "127.0.0.1:PORT"
        self.cdn_addresses: dict[str, str] = {}  # dXXXX.cloudfront.net -> "127.0.0.1:PORT"
        self.database: dict[str, Any] | None = None  # host, port, username, password, dbname
        self._recorded: dict[tuple[str, str], dict[str, str]] = {}
        self._exports: dict[str, Any] | None = None

    # --- names and attributes -------------------------------------------------------------
    def record(self, resource: Resource, **values: str) -> None:
        self._recorded.setdefault(resource.key, {}).update(values)

    def name(self, resource: Resource) -> str:
        recorded = self._recorded.get(resource.key, {}).get("Name")
        if recorded:
            return recorded
        prop = _NAME_PROPERTY.get(resource.type)
        if prop and resource.properties.get(prop) is not None:
            return str(self.resolve(resource.properties[prop], resource.stack))
        if resource.type.startswith("AWS::ApiGatewayV2::"):
            return short_hash(resource.stack, resource.logical_id)
        suffix = short_hash(resource.stack, resource.logical_id, length=12).upper()
        if resource.type == "AWS::S3::Bucket":
            return f"{resource.stack}-{resource.logical_id}-{suffix}".lower()[:63]
        if resource.type == "AWS::SQS::Queue" and resource.properties.get("FifoQueue"):
            return f"{resource.stack}-{resource.logical_id}-{suffix}"[:75] + ".fifo"
        if resource.type == "AWS::SSM::Parameter":
            return f"CFN-{resource.logical_id}-{suffix}"
        if resource.type in ("AWS::RDS::DBInstance", "AWS::RDS::DBCluster"):
            return f"{resource.stack}-{resource.logical_id}-{suffix}".lower()[:63]
        return f"{resource.stack}-{resource.logical_id}-{suffix}"[:64]

    def arn(self, resource: Resource) -> str:
        recorded = self._recorded.get(resource.key, {}).get("Arn")
        if recorded:
            return recorded
        name, r, a = self.name(resource), self.region, ACCOUNT
        match resource.type:
            case "AWS::S3::Bucket":
                return f"arn:aws:s3:::{name}"
            case "AWS::DynamoDB::Table" | "AWS::DynamoDB::GlobalTable":
                return f"arn:aws:dynamodb:{r}:{a}:table/{name}"
            case "AWS::SQS::Queue":
                return f"arn:aws:sqs:{r}:{a}:{name}"
            case "AWS::SNS::Topic":
                return f"arn:aws:sns:{r}:{a}:{name}"
            case "AWS::Lambda::Function":
                return f"arn:aws:lambda:{r}:{a}:function:{name}"
            case "AWS::Events::EventBus":
                return f"arn:aws:events:{r}:{a}:event-bus/{name}"
            case "AWS::Events::Rule":
                return f"arn:aws:events:{r}:{a}:rule/{name}"
            case "AWS::SSM::Parameter":
                return f"arn:aws:ssm:{r}:{a}:parameter/{name.lstrip('/')}"
            case "AWS::SecretsManager::Secret":
                return f"arn:aws:secretsmanager:{r}:{a}:secret:{name}"
            case "AWS::Logs::LogGroup":
                return f"arn:aws:logs:{r}:{a}:log-group:{name}:*"
            case "AWS::IAM::Role":
                return f"arn:aws:iam::{a}:role/{name}"
            case "AWS::RDS::DBInstance":
                return f"arn:aws:rds:{r}:{a}:db:{name}"
            case "AWS::RDS::DBCluster":
                return f"arn:aws:rds:{r}:{a}:cluster:{name}"
            case "AWS::CloudFront::Distribution":
                return f"arn:aws:cloudfront::{a}:distribution/{name}"
        service = resource.type.split("::")[1].lower()
        return f"arn:aws:{service}:{r}:{a}:{resource.logical_id.lower()}/{name}"

    def ref(self, resource: Resource) -> str:
        recorded = self._recorded.get(resource.key, {}).get("Ref")
        if recorded:
            return recorded
        match resource.type:
            case "AWS::SQS::Queue":
                return f"{self.services_url}/{ACCOUNT}/{self.name(resource)}"
            case "AWS::SNS::Topic" | "AWS::SecretsManager::Secret":
                return self.arn(resource)
            case "AWS::SecretsManager::SecretTargetAttachment":
                return str(self.resolve(resource.properties["SecretId"], resource.stack))
            case "AWS::ApiGatewayV2::Stage":
                return self.name(resource) if resource.properties.get("StageName") else "$default"
            case "AWS::Lambda::Version" | "AWS::Lambda::Alias":
                # A qualified function ARN; `find()` maps it back to the function.
                function = str(self.resolve(resource.properties["FunctionName"], resource.stack))
                if not function.startswith("arn:"):
                    function = f"arn:aws:lambda:{self.region}:{ACCOUNT}:function:{function}"
                qualifier = resource.properties.get("Name", "1") if resource.type == "AWS::Lambda::Alias" else "1"
                return f"{function}:{qualifier}"
        return self.name(resource)

    def attribute(self, resource: Resource, attribute: str) -> Any:
        recorded = self._recorded.get(resource.key, {}).get(attribute)
        if recorded is not None:
            return recorded
        name = self.name(resource)
        if attribute == "Arn":
            return self.arn(resource)
        match (resource.type, attribute):
            case ("AWS::ApiGatewayV2::Api", "ApiEndpoint"):
                scheme = "wss" if resource.properties.get("ProtocolType") == "WEBSOCKET" else "https"
                return f"{scheme}://{name}.execute-api.{self.region}.amazonaws.com"
            case ("AWS::ApiGatewayV2::Api", "ApiId"):
                return name
            case (
                ("AWS::SQS::Queue", "QueueName") | ("AWS::SNS::Topic", "TopicName") | ("AWS::Events::EventBus", "Name")
            ):
                return name
            case ("AWS::SQS::Queue", "QueueUrl"):
                return self.ref(resource)
            case ("AWS::S3::Bucket", "DomainName"):
                return f"{name}.s3.amazonaws.com"
            case ("AWS::S3::Bucket", "RegionalDomainName"):
                return f"{name}.s3.{self.region}.amazonaws.com"
            case ("AWS::DynamoDB::Table" | "AWS::DynamoDB::GlobalTable", "StreamArn"):
                return f"{self.arn(resource)}/stream/local"
            case ("AWS::SSM::Parameter", "Value"):
                return self.resolve(resource.properties.get("Value"), resource.stack)
            case ("AWS::SSM::Parameter", "Type"):
                return resource.properties.get("Type", "String")
            case ("AWS::RDS::DBInstance" | "AWS::RDS::DBCluster", "Endpoint.Address" | "ReadEndpoint.Address"):
                return str((self.database or {}).get("host", "127.0.0.1"))
            case ("AWS::RDS::DBInstance" | "AWS::RDS::DBCluster", "Endpoint.Port" | "ReadEndpoint.Port"):
                return str((self.database or {}).get("port", 5432))
        return f"{name}.{attribute}"

    def find(self, value: str) -> Resource | None:
        """The resource whose name, Ref or Arn is `value` (e.g. a function ARN in a notification)."""
        for resource in self.assembly.resources():
            try:
                known = (self.name(resource), self.ref(resource), self.arn(resource))
            except (KeyError, ResolveError, TypeError):
                continue
            if value in known:
                if resource.type in ("AWS::Lambda::Version", "AWS::Lambda::Alias"):
                    return self.find(str(self.resolve(resource.properties["FunctionName"], resource.stack)))
                return resource
        # A qualified Lambda ARN (`...:function:name:$LATEST`) names the same function.
        if value.startswith("arn:aws:lambda:") and value.count(":") == 7:
            return self.find(value.rsplit(":", 1)[0])
        return None

    # --- intrinsic functions ------------------------------------------------------------
    def localize(self, value: str) -> str:
        def replace(match: re.Match[str]) -> str:
            address = self.api_addresses.get(match.group(2))
            if address is None:
                return match.group(0)
            scheme = {"https": "http", "http": "http", "wss": "ws", "ws": "ws"}.get(match.group(1) or "", "http")
            return f"{scheme}://{address}"

        def replace_cdn(match: re.Match[str]) -> str:
            address = self.cdn_addresses.get(match.group(1))
            return match.group(0) if address is None else f"http://{address}"

        return _CLOUDFRONT.sub(replace_cdn, _EXECUTE_API.sub(replace, value))

    def resolve(self, value: Any, stack: str) -> Any:
        """Resolve every intrinsic in `value` (a template fragment of `stack`), localizing strings."""
        resolved = self._resolve(value, stack)
        return self._localize_all(resolved)

    def _localize_all(self, value: Any) -> Any:
        if isinstance(value, str):
            return self.localize(value)
        if isinstance(value, list):
            return [self._localize_all(v) for v in value]
        if isinstance(value, dict):
            return {k: self._localize_all(v) for k, v in value.items()}
        return value

    def _resolve(self, value: Any, stack: str) -> Any:
        if isinstance(value, list):
            items = [self._resolve(v, stack) for v in value]
            return [v for v in items if v is not NO_VALUE]
        if not isinstance(value, dict):
            return value
        if len(value) == 1:
            ((key, arg),) = value.items()
            handler = self._functions().get(key)
            if handler is not None:
                return handler(arg, stack)
        resolved = {k: self._resolve(v, stack) for k, v in value.items()}
        return {k: v for k, v in resolved.items() if v is not NO_VALUE}

    def _functions(self) -> dict[str, Callable[[Any, str], Any]]:
        return {
            "Ref": self._ref,
            "Fn::GetAtt": self._get_att,
            "Fn::Join": lambda a, s: str(self._resolve(a[0], s)).join(str(x) for x in self._resolve(a[1], s)),
            "Fn::Sub": self._sub,
            "Fn::Select": lambda a, s: self._resolve(a[1], s)[int(self._resolve(a[0], s))],
            "Fn::Split": lambda a, s: str(self._resolve(a[1], s)).split(str(self._resolve(a[0], s))),
            "Fn::ImportValue": self._import_value,
            "Fn::GetAZs": lambda a, s: [f"{self.region}{z}" for z in "abc"],
            "Fn::Base64": lambda a, s: base64.b64encode(str(self._resolve(a, s)).encode()).decode(),
            "Fn::If": lambda a, s: self._resolve(a[1] if self.condition(a[0], s) else a[2], s),
            "Fn::FindInMap": self._find_in_map,
            "Fn::ToJsonString": lambda a, s: json.dumps(self._resolve(a, s), separators=(",", ":")),
        }

    def _pseudo(self, name: str, stack: str) -> Any:
        return {
            "AWS::AccountId": ACCOUNT,
            "AWS::Region": self.region,
            "AWS::Partition": "aws",
            "AWS::URLSuffix": "amazonaws.com",
            "AWS::StackName": stack,
            "AWS::StackId": f"arn:aws:cloudformation:{self.region}:{ACCOUNT}:stack/{stack}/{short_hash(stack, length=8)}",
            "AWS::NotificationARNs": [],
            "AWS::NoValue": NO_VALUE,
        }.get(name)

    def _ref(self, name: str, stack: str) -> Any:
        if name.startswith("AWS::"):
            return self._pseudo(name, stack)
        parameters = self.assembly.stack(stack).template.get("Parameters") or {}
        if name in parameters:
            return parameters[name].get("Default", "")
        return self.ref(self.assembly.resource(stack, name))

    def _get_att(self, arg: Any, stack: str) -> Any:
        logical_id, attribute = arg.split(".", 1) if isinstance(arg, str) else (arg[0], self._resolve(arg[1], stack))
        return self.attribute(self.assembly.resource(stack, logical_id), attribute)

    def _sub(self, arg: Any, stack: str) -> str:
        text, variables = (arg, {}) if isinstance(arg, str) else (arg[0], self._resolve(arg[1], stack))

        def replace(match: re.Match[str]) -> str:
            token = match.group(1)
            if token.startswith("!"):
                return "${" + token[1:] + "}"
            if token in variables:
                return str(variables[token])
            if "." in token and not token.startswith("AWS::"):
                return str(self._get_att(token, stack))
            return str(self._ref(token, stack))

        return re.sub(r"\$\{([^}]+)\}", replace, text)

    def _import_value(self, arg: Any, stack: str) -> Any:
        name = self._resolve(arg, stack)
        if self._exports is None:
            self._exports = {}
            for stack_name, _output, body in self.assembly.outputs():
                export = body.get("Export")
                if export:
                    self._exports[str(self._resolve(export["Name"], stack_name))] = (stack_name, body["Value"])
        if name not in self._exports:
            raise ResolveError(f"{stack}: Fn::ImportValue {name!r}: no stack exports it")
        source_stack, value = self._exports[name]
        return self._resolve(value, source_stack)

    def _find_in_map(self, arg: list[Any], stack: str) -> Any:
        mappings = self.assembly.stack(stack).template.get("Mappings") or {}
        name, top, second = (self._resolve(a, stack) for a in arg[:3])
        return mappings[name][top][second]

    def condition(self, name_or_expr: Any, stack: str) -> bool:
        if isinstance(name_or_expr, str):
            conditions = self.assembly.stack(stack).template.get("Conditions") or {}
            return self.condition(conditions[name_or_expr], stack)
        ((key, arg),) = name_or_expr.items()
        if key == "Fn::Equals":
            left, right = (self._resolve(a, stack) for a in arg)
            return bool(left == right)
        if key == "Fn::Not":
            return not self.condition(arg[0], stack)
        if key == "Fn::And":
            return all(self.condition(a, stack) for a in arg)
        if key == "Fn::Or":
            return any(self.condition(a, stack) for a in arg)
        if key == "Condition":
            return self.condition(arg, stack)
        raise ResolveError(f"{stack}: unsupported condition {key}")

    def exists(self, resource: Resource) -> bool:
        return resource.condition is None or self.condition(resource.condition, resource.stack)
