"""Free local TCP ports for processes a test or a local check starts (Ray head, Flower SuperLink)."""
import socket


def free_ports(n):
    """``n`` distinct ports that were free on 127.0.0.1 a moment ago.

    All sockets stay bound until every port is chosen, so the ``n`` ports differ; another
    process may still take one before the caller binds it, which callers accept.
    """
    socks, ports = [], []
    try:
        for _ in range(n):
            s = socket.socket()
            s.bind(("127.0.0.1", 0))
            socks.append(s)
            ports.append(s.getsockname()[1])
    finally:
        for s in socks:
            s.close()
    return ports
