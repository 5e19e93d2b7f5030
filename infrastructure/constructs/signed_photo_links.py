"""Signed photo links: a CloudFront distribution in front of chosen prefixes of a private bucket.

Why not an S3 presigned GET: S3 cannot add `X-Content-Type-Options: nosniff` (or a CSP) to an
answer. Why not a Lambda: a photo may be 10 MB, more than a Lambda response carries.

- Origin Access Control: CloudFront signs its requests to S3, and the bucket policy lets the
  distribution read (object versions included) only under `prefixes`; nothing else is reachable.
- A trusted key group: CloudFront serves only URLs signed with the key pair made at deploy by a
  custom resource (`key_handler`), whose private key goes straight into a Secrets Manager secret and
  never into the template; the template carries the public key only.
- A response headers policy on every answer: nosniff, a `sandbox` CSP that allows nothing but the
  image itself, no referrer, no framing, HSTS, and `Content-Disposition: attachment` unless the
  signed URL asked S3 for a more specific one (with a filename).
- A cache policy that forwards, and keys on, exactly the query parameters the signer uses:
  `versionId`, `response-content-type`, `response-content-disposition`.

`grant_signing(fn)` gives a function what it needs to sign links: read access to the secret and
PHOTO_LINKS_URL, PHOTO_KEY_PAIR_ID, PHOTO_SIGNING_SECRET_ARN in its environment.
"""

from __future__ import annotations

from collections.abc import Sequence

from aws_cdk import CustomResource, Duration
from aws_cdk import aws_cloudfront as cloudfront
from aws_cdk import aws_cloudfront_origins as origins
from aws_cdk import aws_iam as iam
from aws_cdk import aws_s3 as s3
from aws_cdk import aws_secretsmanager as secretsmanager
from constructs import Construct

from infrastructure.config import FunctionDefaults
from infrastructure.constructs.nag import acknowledge
from infrastructure.constructs.python_function import PythonFunction
from lambdas.qr_upload import names

# A version's bytes never change; an hour bounds how long an edge keeps a photo after it expired.
DEFAULT_CACHE_TTL = Duration.hours(1)
# The answer is an image and nothing more: opened on its own it can run nothing, load nothing.
CONTENT_SECURITY_POLICY = "default-src 'none'; img-src 'self'; sandbox"


class SignedPhotoLinks(Construct):
    def __init__(
        self,
        scope: Construct,
        construct_id: str,
        *,
        defaults: FunctionDefaults,
        bucket: s3.IBucket,
        bucket_arn: str,
        prefixes: Sequence[str],
        name: str,
        group: str,
        key_handler: str,
        cache_ttl: Duration | None = None,
    ) -> None:
        super().__init__(scope, construct_id)
        key_group = self._signing_key(defaults, name, group, key_handler)
        self.distribution = cloudfront.Distribution(
            self,
            "Distribution",
            comment=f"{name}: signed photo links",
            default_behavior=cloudfront.BehaviorOptions(
                origin=self._origin(bucket, name),
                viewer_protocol_policy=cloudfront.ViewerProtocolPolicy.HTTPS_ONLY,
                allowed_methods=cloudfront.AllowedMethods.ALLOW_GET_HEAD,
                cached_methods=cloudfront.CachedMethods.CACHE_GET_HEAD,
                cache_policy=self._cache_policy(name, cache_ttl or DEFAULT_CACHE_TTL),
                response_headers_policy=self._headers_policy(name),
                trusted_key_groups=[key_group],
                compress=False,
            ),
            price_class=cloudfront.PriceClass.PRICE_CLASS_100,
            http_version=cloudfront.HttpVersion.HTTP2_AND_3,
        )
        bucket.add_to_resource_policy(
            iam.PolicyStatement(
                sid="SignedPhotoLinksRead",
                principals=[iam.ServicePrincipal("cloudfront.amazonaws.com")],
                actions=["s3:GetObject", "s3:GetObjectVersion"],
                resources=[f"{bucket_arn}/{prefix}*" for prefix in prefixes],
                conditions={"StringEquals": {"AWS:SourceArn": self.distribution.distribution_arn}},
            )
        )
        self._acknowledge(self.distribution)

    @property
    def url(self) -> str:
        return f"https://{self.distribution.distribution_domain_name}"

    def grant_signing(self, fn: PythonFunction) -> None:
        self.secret.grant_read(fn)
        fn.add_environment(names.ENV_PHOTO_LINKS_URL, self.url)
        fn.add_environment(names.ENV_PHOTO_KEY_PAIR_ID, self.public_key.public_key_id)
        fn.add_environment(names.ENV_PHOTO_SIGNING_SECRET_ARN, self.secret.secret_arn)

    def _signing_key(self, defaults: FunctionDefaults, name: str, group: str, key_handler: str) -> cloudfront.KeyGroup:
        """The key pair made at deploy: the private key in a secret, the public one in the key group."""
        self.secret = secretsmanager.Secret(
            self,
            "SigningKey",
            description=f"{name}: private key of the CloudFront key pair that signs photo links",
            removal_policy=defaults.removal_policy,
        )
        acknowledge(
            self.secret,
            "AwsSolutions-SMG4",
            "The secret holds a CloudFront signing key whose public half is registered in the key group: "
            "rotating it means a new key pair and key group, done by replacing the key custom resource, "
            "not by Secrets Manager rotation.",
        )
        self.key_function = PythonFunction(
            self,
            "KeyFunction",
            defaults=defaults,
            function_name=f"{name}-signing-key",
            group=group,
            handler=key_handler,
            description=f"{name}: makes the photo-link key pair at deploy (custom resource)",
            service=f"{name}-signing-key",
            # Pure-Python RSA key generation is CPU bound; Lambda's CPU grows with memory.
            memory_mb=1024,
            timeout=Duration.minutes(2),
        )
        self.key_function.allow(
            ["secretsmanager:GetSecretValue", "secretsmanager:PutSecretValue"], self.secret.secret_arn
        )
        key_pair = CustomResource(
            self,
            "KeyPair",
            service_token=self.key_function.function_arn,
            resource_type="Custom::PhotoLinkSigningKey",
            properties={"SecretArn": self.secret.secret_arn},
        )
        self.public_key = cloudfront.PublicKey(
            self,
            "PublicKey",
            encoded_key=key_pair.get_att_string("PublicKeyPem"),
            comment=f"{name}: verifies photo links",
        )
        return cloudfront.KeyGroup(self, "KeyGroup", items=[self.public_key], comment=f"{name}: photo links")

    def _origin(self, bucket: s3.IBucket, name: str) -> cloudfront.IOrigin:
        # The origin access control without CDK's grant (`bucket/*`): the grant below is narrower.
        access = cloudfront.S3OriginAccessControl(
            self, "OriginAccess", description=f"{name}: CloudFront signs its reads of photos"
        )
        return origins.S3BucketOrigin.with_bucket_defaults(
            bucket, origin_access_control_id=access.origin_access_control_id
        )

    def _cache_policy(self, name: str, ttl: Duration) -> cloudfront.CachePolicy:
        return cloudfront.CachePolicy(
            self,
            "Cache",
            comment=f"{name}: one entry per object version, type and disposition",
            # Forwarded to S3 and part of the cache key: exactly what the signer puts in a URL.
            query_string_behavior=cloudfront.CacheQueryStringBehavior.allow_list(*names.SIGNED_QUERY),
            header_behavior=cloudfront.CacheHeaderBehavior.none(),
            cookie_behavior=cloudfront.CacheCookieBehavior.none(),
            default_ttl=ttl,
            min_ttl=Duration.seconds(0),
            max_ttl=ttl,
        )

    def _headers_policy(self, name: str) -> cloudfront.ResponseHeadersPolicy:
        return cloudfront.ResponseHeadersPolicy(
            self,
            "Headers",
            comment=f"{name}: photos are served as inert downloads",
            security_headers_behavior=cloudfront.ResponseSecurityHeadersBehavior(
                content_type_options=cloudfront.ResponseHeadersContentTypeOptions(override=True),
                content_security_policy=cloudfront.ResponseHeadersContentSecurityPolicy(
                    content_security_policy=CONTENT_SECURITY_POLICY, override=True
                ),
                referrer_policy=cloudfront.ResponseHeadersReferrerPolicy(
                    referrer_policy=cloudfront.HeadersReferrerPolicy.NO_REFERRER, override=True
                ),
                frame_options=cloudfront.ResponseHeadersFrameOptions(
                    frame_option=cloudfront.HeadersFrameOption.DENY, override=True
                ),
                strict_transport_security=cloudfront.ResponseHeadersStrictTransportSecurity(
                    access_control_max_age=Duration.days(365), include_subdomains=True, override=True
                ),
            ),
            custom_headers_behavior=cloudfront.ResponseCustomHeadersBehavior(
                custom_headers=[
                    # Kept when the signed URL made S3 answer with its own attachment disposition.
                    cloudfront.ResponseCustomHeader(header="Content-Disposition", value="attachment", override=False),
                ]
            ),
        )

    @staticmethod
    def _acknowledge(distribution: cloudfront.Distribution) -> None:
        acknowledge(
            distribution,
            "AwsSolutions-CFR1",
            "Photo links are for the desktop of whoever scanned the code, wherever they are; each URL is "
            "signed for one object version and expires within minutes, so geography adds no protection.",
        )
        acknowledge(
            distribution,
            "AwsSolutions-CFR2",
            "Nothing is served without a valid signature (trusted key group) and only GET/HEAD of "
            "photos under two prefixes reach S3; there is no application surface for WAF rules to protect.",
        )
        acknowledge(
            distribution,
            "AwsSolutions-CFR3",
            "Every link is issued by the http function, which logs the session and key, and every origin "
            "read is in the bucket's server access log; CloudFront's legacy logging needs an ACL-enabled "
            "bucket, which the access-log buckets refuse, and its v2 log delivery exists only in us-east-1.",
        )
        acknowledge(
            distribution,
            "AwsSolutions-CFR4",
            "The default *.cloudfront.net certificate cannot pin a minimum TLS version; the links are "
            "opaque, short-lived signed URLs handed to the desktop page, not a public domain.",
        )
