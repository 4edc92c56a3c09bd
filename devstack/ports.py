"""The ports `make run` listens on, checked before anything starts: a port taken by another program
is named with the setting that moves it, instead of a child failing half-way through the start."""

import errno
import socket
from dataclasses import dataclass


@dataclass(frozen=True)
class Port:
    what: str  # the process, as the banner names it
    host: str
    port: int
    setting: str  # the setting that moves it
    udp: bool = False  # a UDP port (the SIP registrar's), else TCP


def is_taken(host: str, port: int, *, udp: bool = False) -> bool:
    """Whether something listens on `host:port` already (binding as the servers do, SO_REUSEADDR).
    Only "in use" counts: another error (an address this host does not have) is left to the process."""
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM if udp else socket.SOCK_STREAM) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((host, port))
        except OSError as err:
            return err.errno == errno.EADDRINUSE
    return False


def taken(ports: list[Port]) -> list[str]:
    """One line for each port that is taken, naming it and the setting that moves it."""
    return [
        f"{'UDP ' if p.udp else ''}port {p.port} on {p.host} ({p.what}) is taken by another program: stop it,"
        f" or set {p.setting} to a free port"
        for p in ports
        if p.port and is_taken(p.host, p.port, udp=p.udp)
    ]


# Every port free_port has handed out in this process: the OS may give the same free port to two binds
# in a row (it is free again once the probe closes), and two processes of one stack on one port fail.
_handed_out: set[int] = set()


def free_port(host: str = "127.0.0.1") -> int:
    """A TCP port nothing listens on right now (the OS picks it) and that this process has not handed out
    before. Another process may still take it before its user binds it: a small race remains."""
    while True:
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
            sock.bind((host, 0))
            port: int = sock.getsockname()[1]
        if port not in _handed_out:
            _handed_out.add(port)
            return port
