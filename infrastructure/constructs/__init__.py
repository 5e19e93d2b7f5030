"""Reusable constructs."""
