"""A small CDK app that exercises every kind of wiring the local runtime serves."""
