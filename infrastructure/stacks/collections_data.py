"""Collections network and database (`CollectionsDataStack-{env}`).

VPC: public subnets only for the NAT gateways; private subnets with egress for the functions that
call model providers (analyzer: Anthropic/OpenAI; embedder and search: Voyage); isolated subnets,
with no route to the internet, for the functions that call none (image processor, deferred
requeue, migrations), which reach AWS through VPC endpoints; isolated subnets for RDS.
PostgreSQL (pgvector) is encrypted, not public, and accepts connections only from the functions'
security groups (and the proxy's). The master credentials are the Secrets Manager secret RDS
generates (rotated, retained with the database in prod) and only the migration Trigger reads it;
every other function has its own role and its own generated secret (`role_secrets`), and in
environments with `db_proxy` connects through RDS Proxy, which holds those same secrets.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from aws_cdk import Duration, Fn, RemovalPolicy, Stack
from aws_cdk import aws_ec2 as ec2
from aws_cdk import aws_rds as rds
from aws_cdk import aws_secretsmanager as secretsmanager
from constructs import Construct

from infrastructure.config import CollectionsSettings, EnvConfig
from infrastructure.constructs.nag import acknowledge
from infrastructure.constructs.storage import log_group
from lambdas.collections.names import DB_NAME, DB_PORT
from lambdas.migrations.roles import FUNCTION_ROLES

# Functions that call the internet (model providers) and those that must not reach it.
FUNCTIONS_SUBNETS = ec2.SubnetSelection(subnet_type=ec2.SubnetType.PRIVATE_WITH_EGRESS)
ISOLATED_FUNCTIONS_SUBNETS = ec2.SubnetSelection(subnet_group_name="IsolatedFunctions")
DATABASE_SUBNETS = ec2.SubnetSelection(subnet_group_name="Database")

# --- connection budget --------------------------------------------------------------------
# RDS PostgreSQL's default max_connections is LEAST(DBInstanceClassMemory / 9531392, 5000).
# DBInstanceClassMemory is the class's memory less what RDS keeps for itself, so the live value is
# below the formula on nominal memory (t4g.micro: 112 by the formula, about 80 live): budgets
# count 3/4 of the formula.
_INSTANCE_MEMORY_GIB = {"t4g.micro": 1, "t4g.small": 2, "t4g.medium": 4, "t4g.large": 8, "t4g.xlarge": 16}
# superuser_reserved_connections (3) and RDS's rds.rds_superuser_reserved_connections (2): slots
# the function roles can never use.
SUPERUSER_SLOTS = 5
# The migration Trigger and the rotations of the master and role secrets, one connection each.
DEPLOY_CONNECTIONS = 1 + 1 + len(FUNCTION_ROLES)
# An operator's psql session, a deploy overlapping a rotation, CloudWatch's enhanced monitoring.
HEADROOM = 10


def max_connections(instance_class: str) -> int:
    """A conservative max_connections for the instance class (see above)."""
    try:
        gib = _INSTANCE_MEMORY_GIB[instance_class]
    except KeyError:
        raise ValueError(f"no connection budget for db instance class {instance_class!r}; add its memory") from None
    return gib * 1024**3 * 3 // 4 // 9531392


@dataclass(frozen=True)
class ConnectionBudget:
    """The most connections the database can be asked for, against what the instance allows.

    Each function container holds one connection (lambdas/collections/pg.py), so a function opens at
    most its reserved concurrency. Without a proxy those are database connections; with one,
    they are the proxy's clients, and the proxy itself opens at most its share of max_connections.
    """

    function_connections: int  # sum of the reserved concurrencies x 1 connection per container
    proxy_connections: int | None  # the proxy's cap on its database connections, if there is one
    max_connections: int

    @property
    def database_connections(self) -> int:
        functions = self.function_connections if self.proxy_connections is None else self.proxy_connections
        return functions + DEPLOY_CONNECTIONS + SUPERUSER_SLOTS + HEADROOM

    def check(self) -> None:
        if self.database_connections > self.max_connections:
            raise ValueError(
                f"collections functions may open {self.database_connections} PostgreSQL connections "
                f"(functions or proxy {self.proxy_connections or self.function_connections} + deploy "
                f"{DEPLOY_CONNECTIONS} + superuser slots {SUPERUSER_SLOTS} + headroom {HEADROOM}), more than "
                f"max_connections {self.max_connections}: lower the reserved concurrencies or use a larger instance"
            )
        if self.proxy_connections is not None and self.function_connections > self.proxy_connections:
            raise ValueError(
                f"{self.function_connections} function containers but the proxy opens at most "
                f"{self.proxy_connections} connections: a pinned session per container could queue"
            )


def connection_budget(settings: CollectionsSettings) -> ConnectionBudget:
    limit = max_connections(settings.db_instance_class)
    functions = (
        settings.processor_reserved_concurrency
        + settings.analyzer_reserved_concurrency
        + settings.deferred_reserved_concurrency
        + settings.embedder_reserved_concurrency
        + settings.search_reserved_concurrency
    )
    proxy = limit * settings.db_proxy_max_connections_percent // 100 if settings.db_proxy else None
    return ConnectionBudget(function_connections=functions, proxy_connections=proxy, max_connections=limit)


class CollectionsDataStack(Stack):
    @property
    def availability_zones(self) -> list[str]:
        # The first two AZs of the deployment region, resolved by CloudFormation: no context
        # lookup at synth time (which would need credentials) and no placeholder AZ names.
        return [Fn.select(0, Fn.get_azs()), Fn.select(1, Fn.get_azs())]

    def __init__(self, scope: Construct, construct_id: str, *, config: EnvConfig, **kwargs: Any) -> None:
        super().__init__(scope, construct_id, **kwargs)
        self._network(config)
        self._security_groups()
        self._database(config)
        self.role_secrets = self._role_secrets(config)
        self.proxy = self._proxy(config) if config.collections.db_proxy else None
        # Where the functions connect: the proxy where there is one, else the instance.
        self.db_host = self.proxy.endpoint if self.proxy else self.database.db_instance_endpoint_address
        self.db_via_proxy = self.proxy is not None
        connection_budget(config.collections).check()
        # Rotation (this and each role secret's) runs in the functions' subnets and security group:
        # it needs Secrets Manager's API and the instance, and adds no other source of ingress.
        self.database.add_rotation_single_user(
            automatically_after=Duration.days(30),
            vpc_subnets=FUNCTIONS_SUBNETS,
            security_group=self.functions_security_group,
        )
        self._acknowledge(config)

    def _network(self, config: EnvConfig) -> None:
        flow_logs = log_group(self, "FlowLogs", config)
        self.vpc = ec2.Vpc(
            self,
            "Vpc",
            max_azs=2,
            nat_gateways=config.collections.nat_gateways,
            subnet_configuration=[
                ec2.SubnetConfiguration(name="Public", subnet_type=ec2.SubnetType.PUBLIC, cidr_mask=24),
                ec2.SubnetConfiguration(name="Functions", subnet_type=ec2.SubnetType.PRIVATE_WITH_EGRESS, cidr_mask=22),
                ec2.SubnetConfiguration(name="Database", subnet_type=ec2.SubnetType.PRIVATE_ISOLATED, cidr_mask=24),
                # Last, so the CIDRs of the groups above stay where they were.
                ec2.SubnetConfiguration(
                    name="IsolatedFunctions", subnet_type=ec2.SubnetType.PRIVATE_ISOLATED, cidr_mask=24
                ),
            ],
            flow_logs={
                "All": ec2.FlowLogOptions(
                    destination=ec2.FlowLogDestination.to_cloud_watch_logs(flow_logs),
                    traffic_type=ec2.FlowLogTrafficType.REJECT,
                )
            },
        )
        # Image bytes to and from S3 stay off the NAT gateway (and its per-GB charge).
        self.vpc.add_gateway_endpoint("S3Endpoint", service=ec2.GatewayVpcEndpointAwsService.S3)

    def _security_groups(self) -> None:
        self.functions_security_group = ec2.SecurityGroup(
            self,
            "FunctionsSecurityGroup",
            vpc=self.vpc,
            allow_all_outbound=True,
            description="Collections functions: outbound to PostgreSQL, AWS APIs and model providers",
        )
        self.isolated_functions_security_group = ec2.SecurityGroup(
            self,
            "IsolatedFunctionsSecurityGroup",
            vpc=self.vpc,
            allow_all_outbound=False,
            description="Collections functions without internet: PostgreSQL and the VPC endpoints only",
        )
        self.database_security_group = ec2.SecurityGroup(
            self,
            "DatabaseSecurityGroup",
            vpc=self.vpc,
            allow_all_outbound=False,
            description="Collections PostgreSQL: reachable only from the collections functions",
        )
        self._endpoints()
        for functions in (self.functions_security_group, self.isolated_functions_security_group):
            self.database_security_group.add_ingress_rule(
                functions, ec2.Port.tcp(DB_PORT), f"PostgreSQL from {functions.node.id}"
            )
        self.isolated_functions_security_group.add_egress_rule(
            self.database_security_group, ec2.Port.tcp(DB_PORT), "PostgreSQL (migrations, and functions without proxy)"
        )

    def _database(self, config: EnvConfig) -> None:
        settings = config.collections
        identifier = f"collections-{config.name}"
        # Created here (not by `cloudwatch_logs_retention`, which adds a custom-resource Lambda)
        # so the exported PostgreSQL log gets the environment's retention.
        database_logs = log_group(self, "DatabaseLogs", config, name=f"/aws/rds/instance/{identifier}/postgresql")
        self.database = rds.DatabaseInstance(
            self,
            "Database",
            instance_identifier=identifier,
            engine=rds.DatabaseInstanceEngine.postgres(version=rds.PostgresEngineVersion.VER_17_9),
            instance_type=ec2.InstanceType(settings.db_instance_class),
            vpc=self.vpc,
            vpc_subnets=DATABASE_SUBNETS,
            security_groups=[self.database_security_group],
            publicly_accessible=False,
            port=DB_PORT,
            database_name=DB_NAME,
            credentials=rds.Credentials.from_generated_secret("collections_admin"),
            storage_encrypted=True,
            allocated_storage=settings.db_allocated_storage_gb,
            storage_type=rds.StorageType.GP3,
            multi_az=settings.db_multi_az,
            backup_retention=Duration.days(settings.db_backup_retention_days),
            deletion_protection=config.deletion_protection,
            removal_policy=RemovalPolicy.SNAPSHOT if config.deletion_protection else config.removal_policy,
            cloudwatch_logs_exports=["postgresql"],
            auto_minor_version_upgrade=True,
            parameters={"rds.force_ssl": "1"},
        )
        self.database.node.add_dependency(database_logs)
        assert self.database.secret is not None
        self.secret = self.database.secret
        # The master credentials open the database: kept as long as it is (prod keeps a snapshot,
        # and a restored snapshot needs its master password). `database.secret` is the attachment;
        # the policy belongs on the generated secret itself, which RDS's removal policy sets to delete.
        [generated] = [c for c in self.node.find_all() if isinstance(c, rds.DatabaseSecret)]
        generated.apply_removal_policy(config.removal_policy)

    def _endpoints(self) -> None:
        """Interface endpoints for what the isolated functions call (Secrets Manager, EventBridge,
        SQS; S3 has the gateway endpoint). Private DNS: the SDK's usual hostnames resolve to them."""
        self.endpoints_security_group = ec2.SecurityGroup(
            self,
            "EndpointsSecurityGroup",
            vpc=self.vpc,
            allow_all_outbound=False,
            description="Collections VPC endpoints: HTTPS from the collections functions",
        )
        for functions in (self.functions_security_group, self.isolated_functions_security_group):
            self.endpoints_security_group.add_ingress_rule(
                functions, ec2.Port.tcp(443), f"HTTPS from {functions.node.id}"
            )
        self.isolated_functions_security_group.add_egress_rule(
            self.endpoints_security_group, ec2.Port.tcp(443), "AWS APIs through the VPC endpoints"
        )
        # S3 through its gateway endpoint. Its addresses are a managed prefix list that a template
        # cannot name without a lookup, hence any address: these subnets route nothing but the VPC
        # and that gateway (no NAT, no internet gateway), which is what keeps the internet away.
        self.isolated_functions_security_group.add_egress_rule(
            ec2.Peer.any_ipv4(), ec2.Port.tcp(443), "S3 through the gateway endpoint (no other route out)"
        )
        for name, service in (
            ("SecretsManagerEndpoint", ec2.InterfaceVpcEndpointAwsService.SECRETS_MANAGER),
            ("EventBridgeEndpoint", ec2.InterfaceVpcEndpointAwsService.EVENTBRIDGE),
            ("SqsEndpoint", ec2.InterfaceVpcEndpointAwsService.SQS),
        ):
            self.vpc.add_interface_endpoint(
                name,
                service=service,
                subnets=ISOLATED_FUNCTIONS_SUBNETS,
                security_groups=[self.endpoints_security_group],
                open=False,
                private_dns_enabled=True,
            )

    def _role_secrets(self, config: EnvConfig) -> dict[str, secretsmanager.Secret]:
        """One generated secret per function role (migration 009), keyed by the function's construct
        id. The migration Trigger sets each role's password from it; like the master secret it is
        rotated (single user: the rotation function logs in as the role and changes its own
        password), so it carries what that function needs to reach the instance."""
        secrets = {}
        for function, role in FUNCTION_ROLES.items():
            template = {
                "username": role,
                "engine": "postgres",
                "host": self.database.db_instance_endpoint_address,
                "port": DB_PORT,
                "dbname": DB_NAME,
            }
            secret = secretsmanager.Secret(
                self,
                f"{function}DatabaseSecret",
                description=f"PostgreSQL role {role} of collections-{config.name}-{function}",
                generate_secret_string=secretsmanager.SecretStringGenerator(
                    secret_string_template=Stack.of(self).to_json_string(template),
                    generate_string_key="password",
                    exclude_punctuation=True,
                    password_length=40,
                ),
                removal_policy=config.removal_policy,
            )
            secretsmanager.SecretRotation(
                self,
                f"{function}DatabaseSecretRotation",
                application=secretsmanager.SecretRotationApplication.POSTGRES_ROTATION_SINGLE_USER,
                secret=secret,
                target=self.database,
                vpc=self.vpc,
                vpc_subnets=FUNCTIONS_SUBNETS,
                security_group=self.functions_security_group,
                automatically_after=Duration.days(30),
            )
            secrets[function] = secret
        return secrets

    def _proxy(self, config: EnvConfig) -> rds.DatabaseProxy:
        """RDS Proxy holding every function role's secret: each function authenticates to it with
        its own role's password (its own secret), and the proxy opens pooled connections as that
        role. Password auth rather than IAM auth keeps one path in every environment (dev has no
        proxy, and a role cannot use IAM auth against the instance and passwords locally)."""
        self.proxy_security_group = ec2.SecurityGroup(
            self,
            "ProxySecurityGroup",
            vpc=self.vpc,
            allow_all_outbound=False,
            description="Collections RDS Proxy: from the collections functions to PostgreSQL",
        )
        for functions in (self.functions_security_group, self.isolated_functions_security_group):
            self.proxy_security_group.add_ingress_rule(
                functions, ec2.Port.tcp(DB_PORT), f"PostgreSQL from {functions.node.id}"
            )
        self.isolated_functions_security_group.add_egress_rule(
            self.proxy_security_group, ec2.Port.tcp(DB_PORT), "PostgreSQL through RDS Proxy"
        )
        self.proxy_security_group.add_egress_rule(self.database_security_group, ec2.Port.tcp(DB_PORT), "PostgreSQL")
        self.database_security_group.add_ingress_rule(
            self.proxy_security_group, ec2.Port.tcp(DB_PORT), "PostgreSQL from RDS Proxy"
        )
        return rds.DatabaseProxy(
            self,
            "Proxy",
            db_proxy_name=f"collections-{config.name}",
            proxy_target=rds.ProxyTarget.from_instance(self.database),
            secrets=list(self.role_secrets.values()),
            vpc=self.vpc,
            vpc_subnets=DATABASE_SUBNETS,
            security_groups=[self.proxy_security_group],
            require_tls=True,
            iam_auth=False,
            client_password_auth_type=rds.ClientPasswordAuthType.POSTGRES_SCRAM_SHA_256,
            max_connections_percent=config.collections.db_proxy_max_connections_percent,
        )

    def _acknowledge(self, config: EnvConfig) -> None:
        acknowledge(
            self.database,
            "AwsSolutions-RDS11",
            "The default port is fine here: the instance is in isolated subnets and its security "
            "group admits only the collections functions; a non-standard port adds no protection.",
        )
        acknowledge(
            self.database,
            "AwsSolutions-RDS6",
            "Each function authenticates as its own role with its own Secrets Manager secret (the "
            "master secret is the migration Trigger's alone); IAM database auth would add a token per "
            "connection for no extra isolation, and the proxy in prod holds the same secrets.",
        )
        if not config.collections.db_multi_az:
            acknowledge(
                self.database,
                "AwsSolutions-RDS3",
                f"{config.name} is a development environment: single-AZ keeps its cost down; "
                "production runs Multi-AZ (config.collections.db_multi_az).",
            )
        if not config.deletion_protection:
            acknowledge(
                self.database,
                "AwsSolutions-RDS10",
                f"{config.name} is torn down and recreated freely; production has deletion "
                "protection and a snapshot on delete.",
            )
