"""QR-upload handoff (`QrUpload-{env}`): a desktop page shows a QR code, a phone uploads a photo
straight to S3 with a presigned POST, and the desktop is told over a WebSocket.

HTTP API -> qr-upload-http-api (sessions, upload URLs, pages)
WebSocket API ($connect/$disconnect) and S3 ObjectCreated on session-uploads/ -> qr-upload-websocket-event
CloudFront (signed URLs, nosniff) -> the photo or its rendition: the desktop's link (SignedPhotoLinks)
"""

from __future__ import annotations

from typing import Any

from aws_cdk import Aws, CfnOutput, Duration, Stack
from aws_cdk import aws_apigatewayv2 as apigw
from aws_cdk import aws_apigatewayv2_integrations as integrations
from aws_cdk import aws_dynamodb as dynamodb
from aws_cdk import aws_s3 as s3
from aws_cdk import aws_s3_notifications as s3n
from constructs import Construct

from infrastructure.config import CORS_ORIGINS_CONTEXT, EnvConfig, cors_origins
from infrastructure.constructs.access_logs import AccessLogBucket
from infrastructure.constructs.apis import HttpEndpoint, WebSocketEndpoint
from infrastructure.constructs.nag import acknowledge, acknowledge_bucket_notifications_handler
from infrastructure.constructs.python_function import FunctionFactory
from infrastructure.constructs.signed_photo_links import SignedPhotoLinks
from infrastructure.constructs.storage import private_bucket, ttl_table
from lambdas.qr_upload import names
from lambdas.qr_upload.names import RENDITION_PREFIX, UPLOAD_PREFIX


class QrUploadStack(Stack):
    def __init__(self, scope: Construct, construct_id: str, *, config: EnvConfig, **kwargs: Any) -> None:
        super().__init__(scope, construct_id, **kwargs)
        self.config = config
        self._table()
        self._apis()
        self._bucket()
        self._functions()
        self._photo_links()
        self._grant()
        self._routes()
        self._outputs()

    def _table(self) -> None:
        self.table = ttl_table(
            self,
            "SessionsTable",
            partition_key=names.SESSION_ID,
            ttl_attribute=names.EXPIRES_AT,
            indexes=[
                dynamodb.GlobalSecondaryIndexPropsV2(
                    index_name=names.CONNECTION_INDEX,
                    partition_key=dynamodb.Attribute(
                        name=names.CONNECTION_INDEX_KEY, type=dynamodb.AttributeType.STRING
                    ),
                )
            ],
            removal_policy=self.config.removal_policy,
            deletion_protection=self.config.deletion_protection,
        )

    def _apis(self) -> None:
        self.http = HttpEndpoint(
            self,
            "Http",
            log_policy=self.config,
            api_name=names.resource_name(self.config.name),
            description="QR-upload handoff: sessions, upload URLs and pages",
            rate_limit=50,
            burst_limit=100,
        )
        self.ws = WebSocketEndpoint(
            self,
            "WebSocket",
            stage_name=self.config.name,
            api_name=f"{names.SYSTEM}-ws-{self.config.name}",
            description="Desktop notifications",
            rate_limit=20,
            burst_limit=50,
            logged_by="every $connect/$disconnect is logged by the event function",
        )

    def _bucket(self) -> None:
        # The bucket's name and ARNs are computed, not referenced: the bucket's CORS names the HTTP
        # API's origin (the phone page posts from there), so the functions behind that API must not
        # depend on the bucket resource, or CloudFormation sees a cycle.
        self.bucket_name = f"{names.resource_name(self.config.name)}-{Aws.ACCOUNT_ID}-{Aws.REGION}"
        self.uploads_arn = f"arn:{Aws.PARTITION}:s3:::{self.bucket_name}/{UPLOAD_PREFIX}*"
        self.renditions_arn = f"arn:{Aws.PARTITION}:s3:::{self.bucket_name}/{RENDITION_PREFIX}*"
        self.access_logs = AccessLogBucket(self, "AccessLogs", config=self.config)
        self.bucket = private_bucket(
            self,
            "UploadBucket",
            bucket_name=self.bucket_name,
            # A second POST with the same grant makes a new version; the session pins the one it
            # completed with, so the photo the desktop was shown cannot be replaced.
            versioned=True,
            removal_policy=self.config.removal_policy,
            cors=[
                s3.CorsRule(
                    allowed_methods=[s3.HttpMethods.POST],
                    allowed_origins=[
                        *cors_origins(self.config, self.node.try_get_context(CORS_ORIGINS_CONTEXT)),
                        self.http.url,
                    ],
                    allowed_headers=["content-type"],
                    max_age=3000,
                )
            ],
            lifecycle_rules=[
                s3.LifecycleRule(
                    id="ExpireSessionUploads",
                    prefix=UPLOAD_PREFIX,
                    expiration=Duration.days(1),
                    noncurrent_version_expiration=Duration.days(1),
                    expired_object_delete_marker=False,
                ),
                s3.LifecycleRule(
                    id="ExpireSessionRenditions",
                    prefix=RENDITION_PREFIX,
                    expiration=Duration.days(1),
                    noncurrent_version_expiration=Duration.days(1),
                ),
                s3.LifecycleRule(id="RemoveExpiredDeleteMarkers", expired_object_delete_marker=True),
            ],
        )
        self.access_logs.log(self.bucket, "upload-bucket")

    def _functions(self) -> None:
        qr = self.config.qr_upload
        shared_env = {
            names.ENV_SESSIONS_TABLE: self.table.table_name,
            names.ENV_UPLOAD_BUCKET: self.bucket_name,
            names.ENV_WS_API_ENDPOINT: self.ws.management_endpoint,
            names.ENV_MAX_UPLOAD_BYTES: str(qr.max_upload_bytes),
            names.ENV_SESSION_TTL_SECONDS: str(qr.session_ttl_seconds),
            names.ENV_UPLOAD_URL_TTL_SECONDS: str(qr.upload_url_ttl_seconds),
            names.ENV_DOWNLOAD_URL_TTL_SECONDS: str(qr.download_url_ttl_seconds),
        }
        function = FunctionFactory(
            self, self.config.function_defaults, "qr_upload", names.function_name, names.service_name
        )
        self.http_function = function(
            "HttpApiFunction",
            names.HTTP_API,
            "QR upload: sessions, presigned POSTs, status and pages",
            module="http_api",
            environment=shared_env,
        )
        self.event_function = function(
            "WebSocketEventFunction",
            names.WEBSOCKET_EVENT,
            "QR upload: WebSocket lifecycle and S3 upload completion",
            module="websocket_events",
            environment=shared_env,
            timeout=Duration.seconds(60),
            memory_mb=qr.event_memory_mb,
            asynchronous=True,
        )

    def _photo_links(self) -> None:
        # The desktop's link to the photo: CloudFront adds nosniff and the CSP that S3 cannot.
        self.photo_links = SignedPhotoLinks(
            self,
            "PhotoLinks",
            defaults=self.config.function_defaults,
            bucket=self.bucket,
            bucket_arn=f"arn:{Aws.PARTITION}:s3:::{self.bucket_name}",
            prefixes=[UPLOAD_PREFIX, RENDITION_PREFIX],
            name=names.resource_name(self.config.name),
            group="qr_upload",
            key_handler="lambdas.qr_upload.signing_key.handler",
        )
        self.photo_links.grant_signing(self.http_function)

    def _grant(self) -> None:
        uploads = self.uploads_arn
        table_arn = self.table.table_arn
        http_fn = self.http_function
        http_fn.allow(["dynamodb:GetItem", "dynamodb:PutItem", "dynamodb:UpdateItem"], table_arn)
        # PutObject signs the presigned POST; the desktop's view link is signed with the photo
        # links' own key (SignedPhotoLinks.grant_signing), so no S3 read is needed.
        http_fn.allow(
            ["s3:PutObject"],
            uploads,
            because=f"Presigned POSTs are for one new key of a session, always under {UPLOAD_PREFIX}.",
        )

        event_fn = self.event_function
        event_fn.allow(["dynamodb:GetItem", "dynamodb:UpdateItem"], table_arn)
        event_fn.allow(["dynamodb:Query"], f"{table_arn}/index/{names.CONNECTION_INDEX}")
        # Reads the first bytes of the event's object version (magic numbers) and, for HEIC/HEIF,
        # the whole photo; writes its JPEG rendition outside the notified prefix.
        objects = (
            f"The function reads whichever upload arrived, always under {UPLOAD_PREFIX}, and writes its "
            f"rendition under {RENDITION_PREFIX}."
        )
        event_fn.allow(["s3:GetObject", "s3:GetObjectVersion"], uploads, because=objects)
        event_fn.allow(["s3:PutObject"], self.renditions_arn, because=objects)
        self.ws.grant_manage_connections(
            self.event_function, "UPLOAD_COMPLETED goes to whichever desktop connection the session holds."
        )

    def _routes(self) -> None:
        http = integrations.HttpLambdaIntegration("HttpApiIntegration", self.http_function.function)
        for method, path in (
            (apigw.HttpMethod.POST, "/sessions"),
            (apigw.HttpMethod.GET, "/sessions/{sessionId}"),
            (apigw.HttpMethod.GET, "/upload-url"),
            (apigw.HttpMethod.GET, "/upload-status"),
            (apigw.HttpMethod.GET, "/"),
            (apigw.HttpMethod.GET, "/upload"),
        ):
            self.http.api.add_routes(path=path, methods=[method], integration=http)
        ws = integrations.WebSocketLambdaIntegration("WebSocketIntegration", self.event_function.function)
        self.ws.api.add_route("$connect", integration=ws)
        self.ws.api.add_route("$disconnect", integration=ws)
        self.bucket.add_event_notification(
            s3.EventType.OBJECT_CREATED,
            s3n.LambdaDestination(self.event_function.function),
            s3.NotificationKeyFilter(prefix=UPLOAD_PREFIX),
        )
        acknowledge_bucket_notifications_handler(self)
        acknowledge(
            self.http.api,
            "AwsSolutions-APIG4",
            "Public by design: a session is an anonymous capability; status needs the "
            "desktop token and uploads need a presigned POST scoped to one key.",
        )
        acknowledge(
            self.ws.api,
            "AwsSolutions-APIG4",
            "$connect is authorized in the handler by the session's desktop token (only its hash is stored).",
        )

    def _outputs(self) -> None:
        CfnOutput(self, names.OUTPUT_HTTP_API_URL, value=self.http.url)
        CfnOutput(self, names.OUTPUT_DESKTOP_PAGE_URL, value=f"{self.http.url}/")
        CfnOutput(self, names.OUTPUT_WEBSOCKET_URL, value=self.ws.url)
        CfnOutput(self, names.OUTPUT_UPLOAD_BUCKET, value=self.bucket.bucket_name)
        CfnOutput(self, names.OUTPUT_PHOTO_LINKS_URL, value=self.photo_links.url)
        CfnOutput(self, names.OUTPUT_SESSIONS_TABLE, value=self.table.table_name)
