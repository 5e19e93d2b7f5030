"""`Alarms-{env}`: the one SNS topic every alarm of the environment notifies (ALARM and OK).

The topic is `platform-alarms-{env}`; alarms find it by name (infrastructure/monitoring.py builds its
ARN from pseudo-parameters), so no stack imports anything from this one: they depend on it, so it
exists before their alarms do.

Encrypted with a customer managed KMS key, not the AWS managed `alias/aws/sns`: CloudWatch publishes
alarm notifications as the `cloudwatch.amazonaws.com` service, and the AWS managed key's policy
cannot be changed to let it use the key, so alarms could never deliver to a topic encrypted with it.
This key's policy allows CloudWatch (from this account only) to encrypt, and rotates yearly.

Subscriptions: the e-mail addresses of `MonitoringSettings.alarm_emails`, else of context
`alarm_emails` (cdk.json: `{"prod": [...]}`, so dev has none; `-c alarm_emails=a@x.org,b@y.org`).
Each address confirms its subscription from the e-mail AWS sends it.
"""

from __future__ import annotations

import re

from aws_cdk import Annotations, App, Aws, CfnOutput, Duration, Stack
from aws_cdk import aws_iam as iam
from aws_cdk import aws_kms as kms
from aws_cdk import aws_sns as sns
from aws_cdk import aws_sns_subscriptions as subscriptions
from constructs import Construct

from infrastructure.config import ALARM_EMAILS_CONTEXT, ALARM_EMAILS_EXAMPLE, ConfigurationError, EnvConfig
from infrastructure.monitoring import alarm_topic_name

_EMAIL = re.compile(r"^[^@\s,]+@[^@\s,]+\.[^@\s,]+$")
CLOUDWATCH_SERVICE = "cloudwatch.amazonaws.com"
FROM_THIS_ACCOUNT = {"StringEquals": {"aws:SourceAccount": Aws.ACCOUNT_ID}}


class InvalidAlarmEmail(ConfigurationError):
    pass


def alarm_emails(app: App, config: EnvConfig) -> tuple[str, ...]:
    """The addresses for this environment: config first, else context (a mapping per env, a list or a string)."""
    if config.monitoring.alarm_emails:
        return config.monitoring.alarm_emails
    value = app.node.try_get_context(ALARM_EMAILS_CONTEXT)
    if isinstance(value, dict):
        value = value.get(config.name)
    if value is None:
        return ()
    items = value.split(",") if isinstance(value, str) else list(value)
    emails = tuple(str(item).strip() for item in items if str(item).strip())
    for email in emails:
        if not _EMAIL.match(email):
            raise InvalidAlarmEmail(f"{ALARM_EMAILS_CONTEXT}: {email!r} is not an e-mail address")
    return emails


class AlarmsStack(Stack):
    def __init__(
        self, scope: Construct, construct_id: str, *, config: EnvConfig, emails: tuple[str, ...], **kwargs: object
    ) -> None:
        super().__init__(scope, construct_id, **kwargs)  # type: ignore[arg-type]
        name = alarm_topic_name(config.name)
        self._key(name, config)
        self._topic(name, config)
        self._subscriptions(name, config, emails)
        CfnOutput(self, "AlarmTopicArn", value=self.topic.topic_arn)

    def _key(self, name: str, config: EnvConfig) -> None:
        """The topic's key: CloudWatch alarms of this account may use it to publish."""
        self.key = kms.Key(
            self,
            "TopicKey",
            alias=f"alias/{name}",
            description=f"Encrypts {name}; CloudWatch alarms of this account may use it to publish",
            enable_key_rotation=True,
            rotation_period=Duration.days(365),
            removal_policy=config.removal_policy,
        )
        self.key.add_to_resource_policy(
            iam.PolicyStatement(
                sid="CloudWatchAlarmsPublish",
                principals=[iam.ServicePrincipal(CLOUDWATCH_SERVICE)],
                actions=["kms:Decrypt", "kms:GenerateDataKey*"],
                resources=["*"],  # in a key policy, "*" is this key
                conditions=FROM_THIS_ACCOUNT,
            )
        )

    def _topic(self, name: str, config: EnvConfig) -> None:
        self.topic = sns.Topic(
            self,
            "Topic",
            topic_name=name,
            display_name=f"Platform alarms ({config.name})",
            master_key=self.key,
            enforce_ssl=True,
        )
        # The topic policy CDK writes for enforce_ssl replaces SNS's default one: allow CloudWatch
        # alarms of this account to publish, explicitly.
        self.topic.add_to_resource_policy(
            iam.PolicyStatement(
                sid="CloudWatchAlarmsPublish",
                principals=[iam.ServicePrincipal(CLOUDWATCH_SERVICE)],
                actions=["sns:Publish"],
                resources=[self.topic.topic_arn],
                conditions={
                    **FROM_THIS_ACCOUNT,
                    "ArnLike": {
                        "aws:SourceArn": f"arn:{Aws.PARTITION}:cloudwatch:{Aws.REGION}:{Aws.ACCOUNT_ID}:alarm:*"
                    },
                },
            )
        )

    def _subscriptions(self, name: str, config: EnvConfig, emails: tuple[str, ...]) -> None:
        """One email subscription per address; a warning when alarms would reach no one."""
        for email in emails:
            self.topic.add_subscription(subscriptions.EmailSubscription(email))
        if ALARM_EMAILS_EXAMPLE in emails:
            Annotations.of(self).add_warning_v2(
                "platform:alarm-emails-example",
                f"{ALARM_EMAILS_CONTEXT} names the example {ALARM_EMAILS_EXAMPLE!r}: alarms would reach no one. "
                f"Set -c {ALARM_EMAILS_CONTEXT}=you@your.org (or cdk.json).",
            )
        elif not emails and config.monitoring.require_subscription:
            Annotations.of(self).add_warning_v2(
                "platform:alarm-emails-none",
                f"{name} has no subscription: alarms would reach no one. Set -c {ALARM_EMAILS_CONTEXT}=you@your.org.",
            )
