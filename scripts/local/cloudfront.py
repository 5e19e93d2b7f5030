"""CloudFront distributions with an S3 origin, served locally (one port each), as CloudFront answers:

- Signed URLs, where a behavior trusts key groups: `Expires`/`Policy`, `Signature` and `Key-Pair-Id`
  are checked against the public keys of those groups (RSA-SHA1 over the canned or custom policy,
  CloudFront's URL-safe base64); a URL without them, changed after signing, expired, or signed by
  another key is 403, as CloudFront answers it.
- The origin is read through Origin Access Control as the bucket policy allows it: only keys that a
  statement for `cloudfront.amazonaws.com` with this distribution's `AWS:SourceArn` grants (and
  `s3:GetObjectVersion` for a `versionId`); anything else, or a missing object, is S3's 403.
- Query strings reach S3 as the cache policy forwards them (`versionId`, `response-content-*`).
- The response headers policy is applied to every answer (security headers, custom headers with
  their override flag, removed headers).

The template's values are resolved at request time: a public key made by a custom resource at
start is known only after it ran. Caching, compression, geo and WAF have no local meaning.
"""

from __future__ import annotations

import base64
import fnmatch
import json
import time
from dataclasses import dataclass
from typing import Any
from urllib.parse import parse_qsl, unquote

import rsa
from aiohttp import web
from botocore.exceptions import ClientError

from scripts.local.apis import LoopThread, serve
from scripts.local.assembly import Resource
from scripts.local.intrinsics import Resolver, short_hash

SIGNING_PARAMS = ("Expires", "Policy", "Signature", "Key-Pair-Id")
# S3's GetObject query parameters and the boto3 argument each one is.
_S3_PARAMS = {
    "versionId": "VersionId",
    "response-content-type": "ResponseContentType",
    "response-content-disposition": "ResponseContentDisposition",
    "response-content-language": "ResponseContentLanguage",
    "response-content-encoding": "ResponseContentEncoding",
    "response-cache-control": "ResponseCacheControl",
    "response-expires": "ResponseExpires",
}
_PASSED_HEADERS = (
    "Content-Type",
    "Content-Length",
    "Content-Disposition",
    "Content-Language",
    "Content-Encoding",
    "Cache-Control",
    "Expires",
    "ETag",
    "Last-Modified",
    "Accept-Ranges",
    "Content-Range",
)


@dataclass
class Distribution:
    resource: Resource
    domain: str  # dXXXX.cloudfront.net, what templates and functions see
    port: int = 0

    @property
    def address(self) -> str:
        return f"127.0.0.1:{self.port}"


def read_distributions(resolver: Resolver) -> list[Distribution]:
    return [
        Distribution(r, f"d{short_hash(r.stack, r.logical_id, length=13)}.cloudfront.net")
        for r in resolver.assembly.resources()
        if r.type == "AWS::CloudFront::Distribution" and resolver.exists(r)
    ]


class Refused(Exception):
    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message


def cloudfront_b64decode(value: str) -> bytes:
    return base64.b64decode(value.replace("-", "+").replace("_", "=").replace("~", "/"))


class _HeadResponse(web.Response):
    """A HEAD answer keeps the object's Content-Length, as CloudFront's does (aiohttp would send 0)."""

    length = "0"

    async def _prepare_headers(self) -> None:
        await super()._prepare_headers()
        self._headers["Content-Length"] = self.length


class CloudFrontServer:
    def __init__(self, distribution: Distribution, resolver: Resolver, s3: Any, loop: LoopThread) -> None:
        self.distribution = distribution
        self.resolver = resolver
        self.s3 = s3  # a boto3 S3 client on the runtime's moto
        self.loop = loop
        self._runner: web.AppRunner | None = None

    async def start(self) -> None:
        app = web.Application()
        app.router.add_route("*", "/{tail:.*}", self.handle)
        self._runner = await serve(app, self.distribution.port)

    async def stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None

    # --- the template, resolved when asked -------------------------------------------------
    def _config(self) -> dict[str, Any]:
        resource = self.distribution.resource
        return dict(self.resolver.resolve(resource.properties, resource.stack)["DistributionConfig"])

    def _by_ref(self, resource_type: str, ref: str) -> dict[str, Any]:
        for resource in self.resolver.assembly.resources():
            if resource.type == resource_type and self.resolver.ref(resource) == ref:
                return dict(self.resolver.resolve(resource.properties, resource.stack))
        return {}

    def _behavior(self, config: dict[str, Any], path: str) -> dict[str, Any]:
        for behavior in config.get("CacheBehaviors") or []:
            if fnmatch.fnmatchcase(path.lstrip("/"), str(behavior["PathPattern"]).lstrip("/")):
                return dict(behavior)
        return dict(config["DefaultCacheBehavior"])

    def _public_keys(self, behavior: dict[str, Any]) -> dict[str, str]:
        keys: dict[str, str] = {}
        for group_id in behavior.get("TrustedKeyGroups") or []:
            group = self._by_ref("AWS::CloudFront::KeyGroup", str(group_id)).get("KeyGroupConfig") or {}
            for key_id in group.get("Items") or []:
                public = self._by_ref("AWS::CloudFront::PublicKey", str(key_id)).get("PublicKeyConfig") or {}
                if public.get("EncodedKey"):
                    keys[str(key_id)] = str(public["EncodedKey"])
        return keys

    # --- requests ------------------------------------------------------------------------
    async def handle(self, request: web.Request) -> web.StreamResponse:
        config = self._config()
        behavior = self._behavior(config, request.path)
        try:
            if request.method not in (behavior.get("AllowedMethods") or ["GET", "HEAD"]):
                raise Refused(
                    "MethodNotAllowed", "This distribution is not configured to allow the HTTP request method"
                )
            if behavior.get("TrustedKeyGroups"):
                self._check_signature(request, behavior)
            response = await self.loop.loop.run_in_executor(
                self.loop.executor, self._from_origin, config, behavior, request
            )
        except Refused as refused:
            body = f"<?xml version='1.0' encoding='UTF-8'?><Error><Code>{refused.code}</Code><Message>{refused.message}</Message></Error>"
            response = web.Response(status=403, body=body.encode(), headers={"Content-Type": "text/xml"})
        self._apply_headers_policy(behavior, response)
        return response

    def _check_signature(self, request: web.Request, behavior: dict[str, Any]) -> None:
        params = dict(parse_qsl(request.rel_url.raw_query_string, keep_blank_values=True))
        key_id, signature = params.get("Key-Pair-Id"), params.get("Signature")
        if not key_id or not signature or not ("Expires" in params or "Policy" in params):
            raise Refused("MissingKey", "Missing Key-Pair-Id query parameter or cookie value")
        public_pem = self._public_keys(behavior).get(key_id)
        if public_pem is None:
            raise Refused("AccessDenied", "Access denied")
        kept = [
            p
            for p in request.rel_url.raw_query_string.split("&")
            if p and unquote(p.split("=", 1)[0]) not in SIGNING_PARAMS
        ]
        url = f"{request.scheme}://{request.host}{request.raw_path.split('?', 1)[0]}" + (
            "?" + "&".join(kept) if kept else ""
        )
        try:
            if "Policy" in params:
                policy = cloudfront_b64decode(params["Policy"])
            else:
                expires = int(params["Expires"])
                statement = {"Resource": url, "Condition": {"DateLessThan": {"AWS:EpochTime": expires}}}
                policy = json.dumps({"Statement": [statement]}, separators=(",", ":")).encode()
            public = rsa.PublicKey.load_pkcs1_openssl_pem(public_pem.encode())
            rsa.verify(policy, cloudfront_b64decode(signature), public)
            (statement,) = json.loads(policy)["Statement"]
        except (ValueError, rsa.VerificationError, KeyError, TypeError):
            raise Refused("AccessDenied", "Access denied") from None
        condition = statement.get("Condition") or {}
        now = time.time()
        if not fnmatch.fnmatchcase(url, str(statement.get("Resource", ""))):
            raise Refused("AccessDenied", "Access denied")
        if now >= int((condition.get("DateLessThan") or {}).get("AWS:EpochTime", 0)):
            raise Refused("AccessDenied", "Access denied")
        if now < int((condition.get("DateGreaterThan") or {}).get("AWS:EpochTime", 0)):
            raise Refused("AccessDenied", "Access denied")

    def _forwarded(self, behavior: dict[str, Any], request: web.Request) -> dict[str, str]:
        policy = self._by_ref("AWS::CloudFront::CachePolicy", str(behavior.get("CachePolicyId", "")))
        parameters = (policy.get("CachePolicyConfig") or {}).get("ParametersInCacheKeyAndForwardedToOrigin") or {}
        strings = parameters.get("QueryStringsConfig") or {"QueryStringBehavior": "none"}
        names = set(strings.get("QueryStrings") or [])
        mode = strings.get("QueryStringBehavior", "none")
        forwarded = {}
        for name, value in parse_qsl(request.rel_url.raw_query_string, keep_blank_values=True):
            if name in SIGNING_PARAMS:
                continue
            if mode == "all" or (mode == "whitelist" and name in names) or (mode == "allExcept" and name not in names):
                forwarded[name] = value
        return forwarded

    def _from_origin(self, config: dict[str, Any], behavior: dict[str, Any], request: web.Request) -> web.Response:
        origin = next(o for o in config["Origins"] if o["Id"] == behavior["TargetOriginId"])
        if not origin.get("OriginAccessControlId"):
            raise Refused("AccessDenied", "Access Denied")  # a private bucket answers nobody else
        bucket = str(origin["DomainName"]).split(".s3.", 1)[0]
        key = unquote(request.raw_path.split("?", 1)[0]).lstrip("/")
        query = self._forwarded(behavior, request)
        action = "s3:GetObjectVersion" if "versionId" in query else "s3:GetObject"
        if not self._bucket_policy_allows(bucket, key, action):
            raise Refused("AccessDenied", "Access Denied")
        args: dict[str, Any] = {"Bucket": bucket, "Key": key}
        args.update({_S3_PARAMS[name]: value for name, value in query.items() if name in _S3_PARAMS})
        if request.headers.get("Range") and request.method == "GET":
            args["Range"] = request.headers["Range"]
        try:
            if request.method == "HEAD":
                args.pop("Range", None)  # HeadObject takes the response-* overrides too
                answer = self.s3.head_object(**args)
                body = b""
            else:
                answer = self.s3.get_object(**args)
                body = answer["Body"].read()
        except ClientError:
            raise Refused("AccessDenied", "Access Denied") from None  # S3's answer without s3:ListBucket
        headers = answer["ResponseMetadata"]["HTTPHeaders"]
        status = int(answer["ResponseMetadata"]["HTTPStatusCode"])
        kept = {name: headers[name.lower()] for name in _PASSED_HEADERS if name.lower() in headers}
        if request.method == "HEAD":
            head = _HeadResponse(status=status, headers={k: v for k, v in kept.items() if k != "Content-Length"})
            head.length = str(headers.get("content-length", "0"))
            return head
        return web.Response(status=status, body=body, headers=kept)

    def _bucket_policy_allows(self, bucket: str, key: str, action: str) -> bool:
        arn = self.resolver.arn(self.distribution.resource)
        for resource in self.resolver.assembly.resources():
            if resource.type != "AWS::S3::BucketPolicy":
                continue
            props = self.resolver.resolve(resource.properties, resource.stack)
            if props.get("Bucket") != bucket:
                continue
            for statement in props["PolicyDocument"]["Statement"]:
                principal = (statement.get("Principal") or {}).get("Service")
                actions = statement.get("Action")
                actions = [actions] if isinstance(actions, str) else actions or []
                resources = statement.get("Resource")
                resources = [resources] if isinstance(resources, str) else resources or []
                source = ((statement.get("Condition") or {}).get("StringEquals") or {}).get("AWS:SourceArn")
                if (
                    statement.get("Effect") == "Allow"
                    and principal == "cloudfront.amazonaws.com"
                    and source == arn
                    and action in actions
                    and any(fnmatch.fnmatchcase(f"arn:aws:s3:::{bucket}/{key}", r) for r in resources)
                ):
                    return True
        return False

    def _apply_headers_policy(self, behavior: dict[str, Any], response: web.StreamResponse) -> None:
        policy_id = behavior.get("ResponseHeadersPolicyId")
        if not policy_id:
            return
        policy = self._by_ref("AWS::CloudFront::ResponseHeadersPolicy", str(policy_id))
        config = policy.get("ResponseHeadersPolicyConfig") or {}
        security = config.get("SecurityHeadersConfig") or {}
        added: list[tuple[str, str, bool]] = []
        if "ContentTypeOptions" in security:
            added.append(("X-Content-Type-Options", "nosniff", security["ContentTypeOptions"].get("Override", False)))
        if "ContentSecurityPolicy" in security:
            csp = security["ContentSecurityPolicy"]
            added.append(("Content-Security-Policy", csp["ContentSecurityPolicy"], csp.get("Override", False)))
        if "ReferrerPolicy" in security:
            referrer = security["ReferrerPolicy"]
            added.append(("Referrer-Policy", referrer["ReferrerPolicy"], referrer.get("Override", False)))
        if "FrameOptions" in security:
            frame = security["FrameOptions"]
            added.append(("X-Frame-Options", frame["FrameOption"], frame.get("Override", False)))
        if "StrictTransportSecurity" in security:
            hsts = security["StrictTransportSecurity"]
            value = f"max-age={hsts['AccessControlMaxAgeSec']}"
            value += "; includeSubDomains" if hsts.get("IncludeSubdomains") else ""
            value += "; preload" if hsts.get("Preload") else ""
            added.append(("Strict-Transport-Security", value, hsts.get("Override", False)))
        for header in (config.get("CustomHeadersConfig") or {}).get("Items") or []:
            added.append((header["Header"], header["Value"], header.get("Override", False)))
        for name, value, override in added:
            if override or name not in response.headers:
                response.headers[name] = str(value)
        for header in (config.get("RemoveHeadersConfig") or {}).get("Items") or []:
            response.headers.pop(header["Header"], None)
