"""Collections network and database (`CollectionsDataStack-{env}`).

VPC: public subnets only for the NAT gateways, private subnets with egress for the functions
(they call Anthropic and Voyage), isolated subnets for RDS. PostgreSQL (pgvector) is encrypted,
not public, and accepts connections only from the functions' security group; its credentials
are the Secrets Manager secret RDS generates (rotated; the functions re-read it on reconnect).
"""

from __future__ import annotations

from typing import Any

from aws_cdk import Duration, Fn, RemovalPolicy, Stack
from aws_cdk import aws_ec2 as ec2
from aws_cdk import aws_logs as logs
from aws_cdk import aws_rds as rds
from constructs import Construct

from infrastructure.config import EnvConfig
from infrastructure.constructs.nag import acknowledge

DB_NAME = "collections"
DB_PORT = 5432
FUNCTIONS_SUBNETS = ec2.SubnetSelection(subnet_type=ec2.SubnetType.PRIVATE_WITH_EGRESS)


class CollectionsDataStack(Stack):
    @property
    def availability_zones(self) -> list[str]:
        # The first two AZs of the deployment region, resolved by CloudFormation: no context
        # lookup at synth time (which would need credentials) and no placeholder AZ names.
        return [Fn.select(0, Fn.get_azs()), Fn.select(1, Fn.get_azs())]

    def __init__(self, scope: Construct, construct_id: str, *, config: EnvConfig, **kwargs: Any) -> None:
        super().__init__(scope, construct_id, **kwargs)
        settings = config.collections

        flow_logs = logs.LogGroup(
            self, "FlowLogs", retention=config.log_retention, removal_policy=config.removal_policy
        )
        self.vpc = ec2.Vpc(
            self,
            "Vpc",
            max_azs=2,
            nat_gateways=settings.nat_gateways,
            subnet_configuration=[
                ec2.SubnetConfiguration(name="Public", subnet_type=ec2.SubnetType.PUBLIC, cidr_mask=24),
                ec2.SubnetConfiguration(name="Functions", subnet_type=ec2.SubnetType.PRIVATE_WITH_EGRESS, cidr_mask=22),
                ec2.SubnetConfiguration(name="Database", subnet_type=ec2.SubnetType.PRIVATE_ISOLATED, cidr_mask=24),
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

        self.functions_security_group = ec2.SecurityGroup(
            self,
            "FunctionsSecurityGroup",
            vpc=self.vpc,
            allow_all_outbound=True,
            description="Collections functions: outbound to PostgreSQL, AWS APIs and model providers",
        )
        self.database_security_group = ec2.SecurityGroup(
            self,
            "DatabaseSecurityGroup",
            vpc=self.vpc,
            allow_all_outbound=False,
            description="Collections PostgreSQL: reachable only from the collections functions",
        )
        self.database_security_group.add_ingress_rule(
            self.functions_security_group, ec2.Port.tcp(DB_PORT), "PostgreSQL from collections functions"
        )

        identifier = f"collections-{config.name}"
        # Created here (not by `cloudwatch_logs_retention`, which adds a custom-resource Lambda)
        # so the exported PostgreSQL log gets the environment's retention.
        database_logs = logs.LogGroup(
            self,
            "DatabaseLogs",
            log_group_name=f"/aws/rds/instance/{identifier}/postgresql",
            retention=config.log_retention,
            removal_policy=config.removal_policy,
        )
        self.database = rds.DatabaseInstance(
            self,
            "Database",
            instance_identifier=identifier,
            engine=rds.DatabaseInstanceEngine.postgres(version=rds.PostgresEngineVersion.VER_17_9),
            instance_type=ec2.InstanceType(settings.db_instance_class),
            vpc=self.vpc,
            vpc_subnets=ec2.SubnetSelection(subnet_type=ec2.SubnetType.PRIVATE_ISOLATED),
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
        # Rotation runs in the functions' subnets and security group, so the database still has
        # exactly one ingress rule.
        self.database.add_rotation_single_user(
            automatically_after=Duration.days(30),
            vpc_subnets=FUNCTIONS_SUBNETS,
            security_group=self.functions_security_group,
        )
        self._acknowledge(config)

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
            "Functions authenticate with the RDS-generated, rotated Secrets Manager secret; IAM "
            "database auth tokens would add a signing call per connection for no extra isolation.",
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
