"""Network helpers for tests: the one `free_port` (devstack.ports), which never hands out a port twice."""

from devstack.ports import free_port

__all__ = ["free_port"]
