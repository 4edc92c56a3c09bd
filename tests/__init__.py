"""The test suite, by layer: unit, workflows, integration, e2e (see docs/testing.md)."""
