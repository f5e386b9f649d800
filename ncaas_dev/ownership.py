"""Whose stack an endpoint reaches, so that one user's commands never attach to another's.

On a shared machine a second user's `up` used to find LocalStack answering on 4566 and attach
a dispatcher of its own to it, which then ran the first user's jobs. The owner is read from the
kernel, never from a file anyone could write: the uid of the socket listening on the endpoint's
port (asked of the kernel's socket diagnostics over netlink, or read from ``/proc/net/tcp`` and
``tcp6`` where netlink is refused), and the uid of every ``ncaas-dev dispatch`` process serving
the same endpoint (``/proc/PID/cmdline`` and ``status``).

A user who gives no endpoint gets a stack of their own: 4566 when it is free or theirs, else
the first port from 4567 on that nobody listens on, recorded in their state folder
(``endpoint``, 0600) so that every later command finds the same stack.
"""

from __future__ import annotations

import ipaddress
import os
import pwd
import socket
import struct
from pathlib import Path
from urllib.parse import urlparse

from .errors import UsageError
from .privacy import write_private

_TCP_LISTEN = 10  # the socket state in linux/tcp_states.h
_LISTEN = f"{_TCP_LISTEN:02X}"  # as /proc/net/tcp's "st" column writes it
ENDPOINT_FILE = "endpoint"
FIRST_OWN_PORT, LAST_OWN_PORT = 4567, 4666


def _address(hex_address: str) -> ipaddress.IPv4Address | ipaddress.IPv6Address:
    """An address as /proc/net/tcp{,6} prints it: 32-bit words in host (little-endian) order."""
    raw = bytes.fromhex(hex_address)
    words = b"".join(raw[i : i + 4][::-1] for i in range(0, len(raw), 4))
    return ipaddress.ip_address(words)


def _reachable_from_loopback(address: ipaddress.IPv4Address | ipaddress.IPv6Address) -> bool:
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped:
        address = address.ipv4_mapped
    return address.is_loopback or address.is_unspecified


def listener_uids(port: int, proc: Path = Path("/proc")) -> set[int]:
    """The uids of the sockets listening on ``port`` that a loopback client would reach."""
    try:
        listeners = netlink_listeners() if proc == Path("/proc") else None
    except OSError:  # no netlink here (a locked-down container): the tables say the same
        listeners = None
    if listeners is None:
        listeners = proc_listeners(port, proc)
    return {
        uid
        for address, listening_port, uid in listeners
        if listening_port == port and _reachable_from_loopback(address)
    }


Listener = tuple[ipaddress.IPv4Address | ipaddress.IPv6Address, int, int]  # address, port, uid

# Netlink's socket diagnostics (linux/inet_diag.h): one dump of the listening TCP sockets.
# /proc/net/tcp lists every socket (thousands of TIME_WAIT rows after busy runs, ~8 ms a read);
# the kernel answers this in well under a millisecond.
_NETLINK_SOCK_DIAG, _SOCK_DIAG_BY_FAMILY = 4, 20
_NLM_F_REQUEST_DUMP = 0x1 | 0x300
_NLMSG_ERROR, _NLMSG_DONE = 2, 3
_HEADER = struct.Struct("=IHHII")  # nlmsghdr: length, type, flags, sequence, port id
_REQUEST = struct.Struct("=BBBBI48x")  # inet_diag_req_v2, the socket id left empty
_MESSAGE = struct.Struct("=BBBBHH16s16sI8xIIIII")  # inet_diag_msg


def netlink_listeners() -> list[Listener]:
    """Every listening TCP socket (IPv4 and IPv6): its address, port and owner."""
    found: list[Listener] = []
    with socket.socket(socket.AF_NETLINK, socket.SOCK_RAW, _NETLINK_SOCK_DIAG) as nl:
        for family in (socket.AF_INET, socket.AF_INET6):
            request = _REQUEST.pack(family, socket.IPPROTO_TCP, 0, 0, 1 << _TCP_LISTEN)
            header = _HEADER.pack(
                _HEADER.size + len(request), _SOCK_DIAG_BY_FAMILY, _NLM_F_REQUEST_DUMP, family, 0
            )
            nl.sendto(header + request, (0, 0))
            found += _diag_replies(nl, family)
    return found


def _diag_replies(nl: socket.socket, family: int) -> list[Listener]:
    found: list[Listener] = []
    size = 4 if family == socket.AF_INET else 16
    while True:
        data = nl.recv(1 << 16)
        if not data:
            return found
        offset = 0
        while offset + _HEADER.size <= len(data):
            length, kind, _, _, _ = _HEADER.unpack_from(data, offset)
            if kind == _NLMSG_DONE:
                return found
            if kind == _NLMSG_ERROR or length < _HEADER.size:
                raise OSError("netlink refused the socket diagnostics request")
            fields = _MESSAGE.unpack_from(data, offset + _HEADER.size)
            port, source, uid = socket.ntohs(fields[4]), fields[6], fields[12]
            found.append((ipaddress.ip_address(source[:size]), port, uid))
            offset += (length + 3) & ~3  # messages are 4-byte aligned


def proc_listeners(port: int, proc: Path) -> list[Listener]:
    found: list[Listener] = []
    needle = f":{port:04X} "  # rows naming the port (thousands of others after busy runs)
    for table in ("net/tcp", "net/tcp6"):
        try:
            rows = (proc / table).read_text().splitlines()[1:]
        except OSError:
            continue
        for row in rows:
            if needle not in row:
                continue
            fields = row.split()
            if len(fields) < 8 or fields[3] != _LISTEN:
                continue
            address, _, hex_port = fields[1].rpartition(":")
            found.append((_address(address), int(hex_port, 16), int(fields[7])))
    return found


def dispatcher_uids(endpoint: str, proc: Path = Path("/proc")) -> set[int]:
    """The uids of ``ncaas-dev dispatch`` processes serving ``endpoint``."""
    uids: set[int] = set()
    for entry in proc.iterdir():
        if not entry.name.isdigit():
            continue
        try:
            argv = (entry / "cmdline").read_bytes().split(b"\0")
            if b"dispatch" not in argv or endpoint.encode() not in argv:
                continue
            if not any(a.endswith(b"ncaas_dev") or a.endswith(b"ncaas-dev") for a in argv):
                continue
            status = (entry / "status").read_text()
        except OSError:
            continue  # gone meanwhile
        for line in status.splitlines():
            if line.startswith("Uid:"):
                uids.add(int(line.split()[1]))
    return uids


def _local_port(endpoint: str) -> int | None:
    """The port of an endpoint on this machine's loopback; None for any other host."""
    url = urlparse(endpoint)
    host = url.hostname or ""
    try:
        local = host == "localhost" or ipaddress.ip_address(host).is_loopback
    except ValueError:
        local = False
    if not local:
        return None
    return url.port or (443 if url.scheme == "https" else 80)


def _who(uid: int) -> str:
    try:
        return f"uid {uid} ({pwd.getpwuid(uid).pw_name})"
    except KeyError:
        return f"uid {uid}"


def foreign_owner(endpoint: str) -> str | None:
    """What of another user's serves ``endpoint`` on this machine (said in words), or None."""
    port = _local_port(endpoint)
    if port is None:
        return None
    if others := listener_uids(port) - {os.getuid()}:
        return f"port {port} is listened on by {_who(min(others))}"
    if others := dispatcher_uids(endpoint) - {os.getuid()}:
        return f"a dispatcher of {_who(min(others))} serves it"
    return None


def require_own_stack(endpoint: str | None) -> None:
    """Refuse (exit 2) to start or attach anything to a stack another uid owns. (The stack in
    containers, published by Docker's root-owned proxy, never comes here: `up` and `run` start
    no LocalStack beside it, and its dispatcher's endpoint is the container's name.)"""
    if not endpoint:
        return
    owner = foreign_owner(endpoint)
    if owner is not None:
        raise UsageError(
            f"{endpoint} belongs to another user's stack ({owner}); "
            "ncaas-dev will not attach to it",
            hint="give no endpoint (unset AWS_ENDPOINT_URL, drop --endpoint-url) and `ncaas-dev "
            "up` starts a stack of your own on a port of your own",
        )


def recorded_endpoint(state_dir: Path) -> str | None:
    """The endpoint a user's own stack was given, if one was chosen off the default port."""
    path = state_dir / ENDPOINT_FILE
    try:
        if path.stat().st_uid != os.getuid():
            return None  # not written by this user: ignore it
        return path.read_text().strip() or None
    except OSError:
        return None


def own_endpoint(default: str, state_dir: Path) -> str:
    """The endpoint of this user's own stack when none is given: the recorded one, else
    ``default`` unless another uid holds its port, else the first free port from 4567 on."""
    recorded = recorded_endpoint(state_dir)
    if recorded:
        return recorded
    port = _local_port(default)
    if port is None or not listener_uids(port) - {os.getuid()}:
        return default
    for candidate in range(FIRST_OWN_PORT, LAST_OWN_PORT + 1):
        if not listener_uids(candidate) and _bindable(candidate):
            return f"http://localhost:{candidate}"
    return default  # all taken: the refusal will say so


def record_endpoint(endpoint: str, state_dir: Path) -> None:
    write_private(state_dir / ENDPOINT_FILE, f"{endpoint}\n".encode())


def _bindable(port: int) -> bool:
    with socket.socket() as probe:
        try:
            probe.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True
