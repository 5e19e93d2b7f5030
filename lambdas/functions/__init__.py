"""Functions: user-defined functions per organization, each run as its own AWS Lambda function."""
