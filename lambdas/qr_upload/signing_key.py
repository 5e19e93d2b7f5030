"""Deploy-time custom resource: the RSA key pair behind the desktop's signed photo links.

CloudFormation invokes it with `ResourceProperties.SecretArn`. Create (and Update, when the secret
holds no key yet) generates a 2048-bit key, stores the private key (PKCS#1 PEM) in that secret and
returns only the public key (`Data.PublicKeyPem`, SubjectPublicKeyInfo PEM, what a CloudFront
`PublicKey` takes). Update otherwise re-derives the public key from the stored private key, so a
redeploy keeps the key pair. Delete does nothing: the secret is the stack's and goes with it.
The private key never enters the template, an output, a response or a log line.

The answer goes to `ResponseURL` as CloudFormation expects; the same dict is returned, which is what
the local runtime reads (it invokes the function directly, without a ResponseURL).
"""

from __future__ import annotations

import json
import urllib.request
from typing import Any

import rsa
from aws_lambda_powertools import Logger
from aws_lambda_powertools.utilities.typing import LambdaContext
from pyasn1.codec.der import encoder
from pyasn1.type import univ
from rsa.asn1 import OpenSSLPubKey, PubKeyHeader

from lambdas.common.aws import client
from lambdas.common.entry import entry

logger = Logger()
KEY_BITS = 2048
_RSA_ENCRYPTION = univ.ObjectIdentifier("1.2.840.113549.1.1.1")


def public_key_pem(public: rsa.PublicKey) -> str:
    """SubjectPublicKeyInfo PEM (`-----BEGIN PUBLIC KEY-----`), the form `openssl rsa -pubout` writes."""
    header = PubKeyHeader()
    header["oid"] = _RSA_ENCRYPTION
    header["parameters"] = univ.Null("")
    info = OpenSSLPubKey()
    info["header"] = header
    # A BIT STRING read as octets (rsa.asn1's own trick): the leading 0 is its unused-bits count.
    info["key"] = b"\x00" + public.save_pkcs1(format="DER")
    return rsa.pem.save_pem(encoder.encode(info), "PUBLIC KEY").decode()


def _stored_key(secret_arn: str) -> rsa.PrivateKey | None:
    value = client("secretsmanager").get_secret_value(SecretId=secret_arn).get("SecretString") or ""
    if "BEGIN RSA PRIVATE KEY" not in value:
        return None  # the random placeholder the secret is created with
    return rsa.PrivateKey.load_pkcs1(value.encode())


def ensure_key(secret_arn: str) -> str:
    """The public key PEM of the secret's key pair, generating and storing one if it has none."""
    private = _stored_key(secret_arn)
    if private is None:
        public, private = rsa.newkeys(KEY_BITS)
        client("secretsmanager").put_secret_value(SecretId=secret_arn, SecretString=private.save_pkcs1().decode())
        logger.info("signing key generated", extra={"secretArn": secret_arn})
    else:
        public = rsa.PublicKey(private.n, private.e)
    return public_key_pem(public)


def _respond(event: dict[str, Any], answer: dict[str, Any]) -> None:
    body = json.dumps(
        {
            **answer,
            "StackId": event.get("StackId"),
            "RequestId": event.get("RequestId"),
            "LogicalResourceId": event.get("LogicalResourceId"),
        }
    ).encode()
    request = urllib.request.Request(  # noqa: S310 (CloudFormation's presigned https URL)
        str(event["ResponseURL"]), data=body, method="PUT", headers={"Content-Type": ""}
    )
    with urllib.request.urlopen(request, timeout=30) as response:  # noqa: S310
        response.read()


@entry(logger)
def handler(event: dict[str, Any], context: LambdaContext | None) -> dict[str, Any]:
    request = str(event.get("RequestType", ""))
    physical_id = str(event.get("PhysicalResourceId") or "photo-link-signing-key")
    try:
        if request == "Delete":
            answer: dict[str, Any] = {"Status": "SUCCESS", "PhysicalResourceId": physical_id}
        else:
            secret_arn = str(event["ResourceProperties"]["SecretArn"])
            answer = {
                "Status": "SUCCESS",
                "PhysicalResourceId": physical_id,
                "Data": {"PublicKeyPem": ensure_key(secret_arn)},
            }
    except Exception as exc:
        # CloudFormation waits for an answer: a failure must still be reported, in one line.
        logger.exception("signing key custom resource failed", extra={"requestType": request})
        # The error names the call and the code (no key material ever reaches an exception).
        answer = {"Status": "FAILED", "PhysicalResourceId": physical_id, "Reason": f"{type(exc).__name__}: {exc}"[:500]}
    if event.get("ResponseURL"):
        _respond(event, answer)
    return answer
