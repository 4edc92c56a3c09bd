"""Workflows: each use case end to end, as durable sequences of activities."""
