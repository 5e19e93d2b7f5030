"""Operator and developer commands."""
