"""Connects with the secret RDS would generate (TLS required, as against RDS) and reports the schema."""

import json
import os

import boto3
import psycopg


def handler(event, context):
    secret_arn = os.environ["DB_SECRET_ARN"]
    secret = json.loads(boto3.client("secretsmanager").get_secret_value(SecretId=secret_arn)["SecretString"])
    with psycopg.connect(
        host=secret["host"],
        port=secret["port"],
        user=secret["username"],
        password=secret["password"],
        dbname=secret["dbname"],
        sslmode="require",
    ) as conn:
        vector = conn.execute("SELECT extversion FROM pg_extension WHERE extname = 'vector'").fetchone()
        migrated = conn.execute("SELECT count(*) FROM schema_migrations").fetchone()
        database = conn.execute("SELECT current_database()").fetchone()
    body = {"vector": vector[0] if vector else None, "migrations": migrated[0], "database": database[0]}
    return {"statusCode": 200, "body": json.dumps(body)}
