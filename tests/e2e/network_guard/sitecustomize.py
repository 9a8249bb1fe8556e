"""Network guard of ``tests/e2e/test_no_network.py``, loaded by Python at start-up.

With this folder on ``PYTHONPATH`` every Python process of a command (its workers included)
imports this module before anything else. An audit hook (PEP 578) then sees each socket
operation of the interpreter, whichever library makes it: a connect, send or name lookup that
would leave the machine is written to the file named by ``LANDSLIDE_NETWORK_LOG`` (the event, the
address and the code that asked) and refused with an ``OSError``. Local traffic stays allowed:
Unix sockets, loopback and unspecified addresses, and this machine's own names (Dask and torch
talk to their own processes over them). Each process also writes a ``loaded`` line, so a test
can tell that the guard ran at all.
"""

from __future__ import annotations

import ipaddress
import os
import socket
import sys
import traceback

LOG = os.environ.get("LANDSLIDE_NETWORK_LOG", "")
LOCAL_NAMES = {"", "localhost", "localhost.localdomain", "ip6-localhost", "ip6-loopback",
               socket.gethostname().lower()}
INET = (socket.AF_INET, socket.AF_INET6)


def _write(line: str) -> None:
    if LOG:
        with open(LOG, "a", encoding="utf-8") as f:
            f.write(line.replace("\n", " ") + "\n")
    else:
        sys.stderr.write(f"network guard: {line}\n")


def _local(host: object) -> bool:
    if host is None:
        return True
    if isinstance(host, bytes):
        host = host.decode("ascii", "replace")
    name = str(host).split("%", 1)[0].strip("[]").lower()
    if name in LOCAL_NAMES or name.endswith(".localhost"):
        return True
    try:
        ip = ipaddress.ip_address(name)
    except ValueError:
        return False  # a name to look up elsewhere
    return ip.is_loopback or ip.is_unspecified


def _target(event: str, args: tuple) -> object | None:
    """What a socket event would reach outside the machine, or None when it stays local."""
    if event in ("socket.connect", "socket.sendto", "socket.sendmsg"):
        sock, address = args[0], args[1]
        if address is None or sock.family not in INET or _local(address[0]):
            return None
        return address
    if event in ("socket.getaddrinfo", "socket.gethostbyname", "socket.gethostbyaddr"):
        return None if _local(args[0]) else args[0]
    if event == "socket.getnameinfo":
        return None if _local(args[0][0]) else args[0]
    return None


def _hook(event: str, args: tuple) -> None:
    if not event.startswith("socket."):
        return
    target = _target(event, args)
    if target is None:
        return
    stack = traceback.extract_stack()[:-2][-6:]
    where = " < ".join(f"{f.filename}:{f.lineno} {f.name}" for f in reversed(stack))
    _write(f"blocked {event} {target!r} pid {os.getpid()} from {where}")
    raise OSError(f"network access blocked by the test's guard: {event} {target!r}")


sys.addaudithook(_hook)
_write(f"loaded pid {os.getpid()}")
