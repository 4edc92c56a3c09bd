"""Workflows on Temporal's time-skipping test server, and replay of recorded histories."""
