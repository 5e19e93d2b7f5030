"""The CDK app's infrastructure: configuration, reusable constructs, one module per stack."""
