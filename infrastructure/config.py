"""Per-environment settings: the only place where `dev` and `prod` differ.

`-c env=NAME` selects one of ENVIRONMENTS; an unknown name is an error naming the valid ones.
Constructs receive these values as typed arguments; nothing here reads os.environ or calls AWS.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any

from aws_cdk import RemovalPolicy
from aws_cdk import aws_logs as logs


@dataclass(frozen=True)
class AlarmThresholds:
    """Per-function CloudWatch alarm thresholds (evaluated over 5-minute periods)."""

    errors: int = 1
    throttles: int = 1
    duration_fraction_of_timeout: float = 0.8


@dataclass(frozen=True)
class FunctionDefaults:
    """What every platform function takes from its environment (`EnvConfig.function_defaults`):
    all that `PythonFunction` reads, so it needs no more of the config than this."""

    env_name: str
    log_level: str
    log_retention: logs.RetentionDays
    removal_policy: RemovalPolicy
    memory_mb: int
    timeout_seconds: int
    # Asynchronous invocations (S3, EventBridge): retries before the on-failure destination.
    async_retry_attempts: int
    async_max_event_age_seconds: int
    alarms: AlarmThresholds


@dataclass(frozen=True)
class TunnelDomain:
    """Optional wildcard custom domain for `https://{subdomain}.{domain_name}`."""

    domain_name: str
    certificate_arn: str
    hosted_zone_id: str


@dataclass(frozen=True)
class TunnelSettings:
    """Limits that keep one tunnel from starving the others and the account's other systems."""

    # Reserved concurrency of the forwarder (it holds a Lambda up to 25 s per request while the
    # agent answers). None leaves it unreserved: dev's new accounts cannot reserve any (Lambda
    # keeps 100 unreserved, and their limit may be as low as 10). Prod: 100, so tunnels together
    # can never take the concurrency the other systems need.
    forward_reserved_concurrency: int | None = None
    # Requests one tunnel may have in flight at once (counted per agent connection); more get 429
    # with Retry-After. Prod's 20 lets five busy tunnels share the forwarder's 100 at least.
    max_inflight_per_tunnel: int = 20
    # Seconds a refused client is told to wait (Retry-After).
    busy_retry_after_seconds: int = 1
    # Without a tunnel domain every tunnel shares one browser origin (`/t/{name}/` of the HTTP
    # API): a page of one tunnel can read another's cookies and responses. True makes a missing
    # domain a synth warning, which the `--strict` prod deploy refuses.
    require_domain: bool = False


# Only the deployer knows the tunnel's wildcard domain: `-c tunnel_domain=example.com -c
# tunnel_certificate_arn=arn:aws:acm:... -c tunnel_hosted_zone_id=Z...` (or cdk.json), used when
# the environment's `tunnel_domain` below is not set.
TUNNEL_DOMAIN_CONTEXT = ("tunnel_domain", "tunnel_certificate_arn", "tunnel_hosted_zone_id")


@dataclass(frozen=True)
class QrUploadSettings:
    max_upload_bytes: int = 10 * 1024 * 1024
    session_ttl_seconds: int = 30 * 60
    upload_url_ttl_seconds: int = 300
    download_url_ttl_seconds: int = 300
    # The event function decodes HEIC/HEIF uploads (up to max_upload_bytes, ~12 MP) into a JPEG
    # rendition for the desktop: a 12-MP RGB frame alone is 36 MB, and Lambda's CPU grows with memory.
    event_memory_mb: int = 1024


@dataclass(frozen=True)
class CollectionsSettings:
    # Reserved concurrency of every function that connects to PostgreSQL. Each container holds
    # one connection, so together they bound the connections the functions can open; the stack
    # checks them against the instance's max_connections at synth (collections_data.py,
    # connection_budget), so raising one past what the instance can take fails there.
    analyzer_reserved_concurrency: int = 2
    embedder_reserved_concurrency: int = 2
    processor_reserved_concurrency: int = 4
    search_reserved_concurrency: int = 4
    deferred_reserved_concurrency: int = 1
    # RDS Proxy between the functions and PostgreSQL: it pools their connections (an upload burst
    # queues at the proxy instead of exhausting the database) and hides failovers. Prod only (it
    # is billed per vCPU of the instance); dev's functions connect to the instance directly.
    db_proxy: bool = False
    # The share of the instance's max_connections the proxy may open.
    db_proxy_max_connections_percent: int = 50
    db_instance_class: str = "t4g.micro"
    db_allocated_storage_gb: int = 20
    db_multi_az: bool = False
    nat_gateways: int = 1
    embedding_model: str = "voyage-3.5-lite"
    embedding_dimensions: int = 1024
    analysis_model: str = "claude-sonnet-4-5"
    # Used only when the OPENAI_API_KEY parameter exists and ANTHROPIC_API_KEY does not.
    openai_analysis_model: str = "gpt-4.1"
    db_backup_retention_days: int = 1
    processor_memory_mb: int = 1024
    analyzer_timeout_seconds: int = 120
    # EventBridge -> Lambda delivery retries before an event goes to the rule's dead-letter queue.
    event_retry_attempts: int = 4
    event_max_age_hours: int = 2
    # Without an API key, fall back to the offline `local` providers (never in prod: a missing key
    # there must fail loudly, not fill the database with colour words).
    allow_local_providers: bool = True
    # IAM principal ARNs (the callers' `userArn`) allowed to search across all users with
    # `all_users=true`; every other caller must name the user it reads for. None by default.
    cross_user_principals: tuple[str, ...] = ()
    # Analyses per user per UTC day (model calls, and copies of another user's analysis of the
    # same bytes; reusing the user's own analyses is free). Past it, items are `deferred` and
    # requeued by a daily schedule (00:05 UTC) or scripts/collections_deferred.py.
    analysis_daily_budget: int = 50


@dataclass(frozen=True)
class FunctionsSettings:
    """User-defined functions (`Functions-{env}`): the limits users get and the platform's own sizing."""

    # Upper bounds a user may ask for per function (the API rejects more; the deployer re-checks).
    # Lambda itself allows up to 10240 MB and 900 s. Dev stays small (1024 MB, 300 s) so a test
    # function cannot run up a bill; prod allows 3008 MB (the ceiling some newer accounts start
    # with until a quota increase) and Lambda's full 900 s.
    max_memory_mb: int = 1024
    max_timeout_seconds: int = 300
    # Reserved concurrency of each user function; None leaves them unreserved. Dev: new accounts
    # cannot reserve any (Lambda keeps 100 unreserved, and their limit may be as low as 10). Prod:
    # 10 each, so one tenant's function cannot take the account's whole concurrency.
    user_reserved_concurrency: int | None = None
    # Lambda layer ARNs (patterns allowed, e.g. `arn:aws:lambda:*:123456789012:layer:name:*`) that
    # user functions may use. Empty in both environments: no layers at all, and the deployer's IAM
    # policy denies any layer not listed here.
    allowed_layers: tuple[str, ...] = ()
    # One deploy message: copy and hash a zip, wait for the function to become Active, publish.
    # The queue's visibility timeout is 6x this (AWS's guidance for SQS event sources).
    deployer_timeout_seconds: int = 300
    deployer_memory_mb: int = 1024  # zips are read, checked and hashed in memory
    # Deploys run in parallel across functions (FIFO message groups keep one function's in order).
    # The queue's event source never invokes more than this many deployers at once (its maximum
    # concurrency: needs no reservation, and unlike reserved concurrency alone it does not pull
    # messages it cannot run, whose throttled receives would count towards the DLQ). Two also
    # keeps Lambda's control-plane rate limits far away.
    deployer_max_concurrency: int = 2
    # Reserved as well where the account allows it (prod); dev's new accounts cannot, see above.
    deployer_reserved_concurrency: int | None = None
    # The API handler checks sources (Python syntax, up to 256 KB) and waits on synchronous
    # invocations; more memory is more CPU, hence a faster cold start of boto3 and the checks.
    api_memory_mb: int = 512

    # --- invoking (Functions 2 of 2) ---
    # Invocation records (and their request-id look-ups) expire after this many days (DynamoDB
    # TTL), and so do the large async payloads kept under inputs/ in the code bucket. Dev keeps a
    # week, like its logs; prod 30 days, enough to answer "what happened last month".
    invocation_retention_days: int = 7
    # Asynchronous invocations of user functions (the deployer sets them per function with
    # PutFunctionEventInvokeConfig, next to the results queue as on-success/on-failure
    # destination). Retry attempts apply to errors raised by user code (Lambda allows 0-2):
    # dev 0, so a failing function fails once and at once while it is being written; prod 2,
    # Lambda's default, for transient failures of what user code calls. The event age bounds how
    # long throttled events wait (60 s - 6 h): prod reserves 10 per function, so bursts queue up
    # to Lambda's maximum of 6 h there instead of failing after one.
    user_async_retry_attempts: int = 0
    user_async_max_event_age_seconds: int = 3600
    # Recorder: one batch is up to 10 destination records, each an invocation-record update and
    # at most one callback POST (retried later through the queue, never by waiting here). The
    # results queue's visibility timeout is 6x this.
    recorder_timeout_seconds: int = 60
    # Batch: one message is one item: an Event invocation (plus its input under inputs/ when over
    # the inline limit). The batch queue's visibility timeout is 6x this. Its event source never
    # runs more than batch_max_concurrency handlers at once: the bound on how fast a batch is
    # submitted (each user function's own concurrency is bounded separately).
    batch_timeout_seconds: int = 60
    batch_max_concurrency: int = 2
    # Quotas per organization, enforced by the API (versions_kept by the deployer, which deletes
    # a function's older Lambda versions). Dev's are small so a runaway test loop stops early;
    # prod's are the default plan.
    quota_max_functions: int = 50
    quota_versions_kept: int = 10
    quota_invocations_per_minute: int = 300
    quota_monthly_gb_seconds: int = 50_000


@dataclass(frozen=True)
class MonitoringSettings:
    """Where alarms go (`Alarms-{env}`) and what watches the failure queues (infrastructure/monitoring.py)."""

    # E-mail addresses subscribed to `platform-alarms-{env}`. Empty here in both environments: only
    # the deployer knows them, so they come from context `alarm_emails` (cdk.json carries an example
    # for prod; `-c alarm_emails=a@x.org,b@y.org` overrides it). A value set here wins over context.
    alarm_emails: tuple[str, ...] = ()
    # Prod warns (and `--strict` refuses) while the topic has no subscription or the example address.
    require_subscription: bool = False
    # A dead-letter or failure queue alarms on its first visible message; a second alarm fires when
    # its oldest message has waited this fraction of the queue's retention, i.e. before SQS deletes
    # it unseen (14 days' retention: after 7 days). That one re-notifies about a message nobody
    # handled while the first alarm is still in ALARM.
    dead_letter_age_fraction_of_retention: float = 0.5
    # Period of the dashboards' graphs.
    dashboard_period_minutes: int = 5


@dataclass(frozen=True)
class EnvConfig:
    name: str
    log_retention: logs.RetentionDays
    removal_policy: RemovalPolicy
    deletion_protection: bool
    # Browser origins, besides the QR API's own (which serves the phone page and is always allowed),
    # that may POST uploads to the QR bucket: a front end on its own domain. More come from context
    # `cors_origins`; see `cors_origins()` for the rules every origin must meet.
    cors_origins: tuple[str, ...]
    parameter_prefix: str
    log_level: str = "INFO"
    default_memory_mb: int = 256
    default_timeout_seconds: int = 30
    async_retry_attempts: int = 2
    async_max_event_age_seconds: int = 3600
    # Server access logs of the buckets reached through presigned URLs (QR uploads, tunnel bodies):
    # the only record of who used a URL. Kept this many days.
    access_log_retention_days: int = 30
    alarms: AlarmThresholds = field(default_factory=AlarmThresholds)
    qr_upload: QrUploadSettings = field(default_factory=QrUploadSettings)
    collections: CollectionsSettings = field(default_factory=CollectionsSettings)
    functions: FunctionsSettings = field(default_factory=FunctionsSettings)
    tunnel_domain: TunnelDomain | None = None
    tunnel: TunnelSettings = field(default_factory=TunnelSettings)
    monitoring: MonitoringSettings = field(default_factory=MonitoringSettings)
    # "owner/name" of the GitHub repository whose Actions workflows deploy this environment. Only
    # the deployer knows it: it comes from context `github_repository` (cdk.json carries
    # GITHUB_REPOSITORY_EXAMPLE; CI passes `-c github_repository=${{ github.repository }}`). The
    # GitHubOidc-{env} stack (OIDC provider, deploy and diff roles) exists only when it is set.
    github_repository: str | None = None

    def stack_name(self, base: str) -> str:
        return f"{base}-{self.name}"

    @property
    def function_defaults(self) -> FunctionDefaults:
        return FunctionDefaults(
            env_name=self.name,
            log_level=self.log_level,
            log_retention=self.log_retention,
            removal_policy=self.removal_policy,
            memory_mb=self.default_memory_mb,
            timeout_seconds=self.default_timeout_seconds,
            async_retry_attempts=self.async_retry_attempts,
            async_max_event_age_seconds=self.async_max_event_age_seconds,
            alarms=self.alarms,
        )


DEV = EnvConfig(
    name="dev",
    log_retention=logs.RetentionDays.ONE_WEEK,
    removal_policy=RemovalPolicy.DESTROY,
    deletion_protection=False,
    cors_origins=("http://localhost:8000", "http://127.0.0.1:8000"),
    parameter_prefix="/platform/dev",
    log_level="DEBUG",
)

PROD = EnvConfig(
    name="prod",
    log_retention=logs.RetentionDays.THREE_MONTHS,
    removal_policy=RemovalPolicy.RETAIN,
    deletion_protection=True,
    cors_origins=(),
    parameter_prefix="/platform/prod",
    access_log_retention_days=365,
    alarms=AlarmThresholds(errors=5, throttles=1, duration_fraction_of_timeout=0.8),
    collections=CollectionsSettings(
        analyzer_reserved_concurrency=5,
        embedder_reserved_concurrency=5,
        processor_reserved_concurrency=20,
        search_reserved_concurrency=20,
        db_proxy=True,
        db_instance_class="t4g.small",
        db_multi_az=True,
        nat_gateways=2,
        db_backup_retention_days=7,
        allow_local_providers=False,
        analysis_daily_budget=500,
    ),
    functions=FunctionsSettings(
        max_memory_mb=3008,
        max_timeout_seconds=900,
        user_reserved_concurrency=10,
        deployer_reserved_concurrency=2,
        invocation_retention_days=30,
        user_async_retry_attempts=2,
        user_async_max_event_age_seconds=6 * 3600,
        batch_max_concurrency=10,
        quota_max_functions=500,
        quota_versions_kept=20,
        quota_invocations_per_minute=6000,
        quota_monthly_gb_seconds=1_000_000,
    ),
    tunnel=TunnelSettings(forward_reserved_concurrency=100, max_inflight_per_tunnel=20, require_domain=True),
    monitoring=MonitoringSettings(require_subscription=True),
)

# The example in cdk.json: it synthesizes, but a role trusting it would trust whoever owns that name
# on GitHub, so the GitHubOidc stack warns while it is set (and `--strict` deploys refuse it).
GITHUB_REPOSITORY_CONTEXT = "github_repository"
GITHUB_REPOSITORY_EXAMPLE = "example-org/serverless-platform"

# Context for the alarm topic's e-mail subscriptions: a mapping from environment to addresses in
# cdk.json (the example names only prod, so dev has none), or a comma-separated string with -c.
ALARM_EMAILS_CONTEXT = "alarm_emails"
ALARM_EMAILS_EXAMPLE = "platform-alarms@example.com"

ENVIRONMENTS: dict[str, EnvConfig] = {c.name: c for c in (DEV, PROD)}


class ConfigurationError(ValueError):
    """A setting the deployer must fix; app.py prints it as one line and exits non-zero."""


class UnknownEnvironment(ConfigurationError):
    pass


class InvalidCorsOrigin(ConfigurationError):
    pass


CORS_ORIGINS_CONTEXT = "cors_origins"
# Domains reserved for documentation (RFC 2606): an origin under one is a placeholder, not a site.
_PLACEHOLDER_DOMAINS = ("example", "example.com", "example.net", "example.org")
_LOOPBACK_HOSTS = ("localhost", "127.0.0.1")
_ORIGIN = re.compile(r"^(?P<scheme>https?)://(?P<host>[a-z0-9]([a-z0-9.-]*[a-z0-9])?)(:[0-9]{1,5})?$")


def cors_origins(config: EnvConfig, context_value: Any) -> tuple[str, ...]:
    """The environment's extra upload origins: config's, then context `cors_origins` (a mapping per
    environment, a list, or a comma-separated string). Each must be a bare origin
    (`scheme://host[:port]`), https unless it is loopback, and not a placeholder domain."""
    if isinstance(context_value, dict):
        context_value = context_value.get(config.name)
    items: list[Any] = []
    if context_value:
        items = context_value.split(",") if isinstance(context_value, str) else list(context_value)
    origins = tuple(dict.fromkeys([*config.cors_origins, *(str(item).strip() for item in items if str(item).strip())]))
    for origin in origins:
        match = _ORIGIN.match(origin)
        if match is None:
            raise InvalidCorsOrigin(f"{CORS_ORIGINS_CONTEXT}: {origin!r} is not an origin (scheme://host[:port])")
        host = match["host"]
        if host in _PLACEHOLDER_DOMAINS or host.endswith(tuple("." + domain for domain in _PLACEHOLDER_DOMAINS)):
            raise InvalidCorsOrigin(
                f"{CORS_ORIGINS_CONTEXT}: {origin!r} is a placeholder; name the front end's real origin "
                f"(-c {CORS_ORIGINS_CONTEXT}=https://app.your.org) or none"
            )
        if match["scheme"] == "http" and host not in _LOOPBACK_HOSTS:
            raise InvalidCorsOrigin(f"{CORS_ORIGINS_CONTEXT}: {origin!r} must use https (only loopback may use http)")
    return origins


def get_config(name: str | None) -> EnvConfig:
    name = name or "dev"
    try:
        return ENVIRONMENTS[name]
    except KeyError:
        valid = ", ".join(sorted(ENVIRONMENTS))
        raise UnknownEnvironment(f"unknown environment {name!r}; valid environments: {valid}") from None
