"""Loaded by Python at start-up (via PYTHONPATH) in the offline check's fallback: any socket
connection or name look-up beyond loopback raises, so a hidden call home fails the check."""

import ipaddress
import socket

_connect, _getaddrinfo = socket.socket.connect, socket.getaddrinfo
_LOCAL_NAMES = {"localhost", "localhost.localdomain", "", None}


def _is_loopback(host) -> bool:
    if host in _LOCAL_NAMES:
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def _guarded_connect(self, address):
    if self.family in (socket.AF_INET, socket.AF_INET6) and not _is_loopback(address[0]):
        raise OSError(f"network blocked by the offline check: connect to {address!r}")
    return _connect(self, address)


def _guarded_getaddrinfo(host, *args, **kwargs):
    if isinstance(host, bytes):
        host = host.decode()
    if not _is_loopback(host):
        raise socket.gaierror(f"network blocked by the offline check: look-up of {host!r}")
    return _getaddrinfo(host, *args, **kwargs)


socket.socket.connect = _guarded_connect
socket.getaddrinfo = _guarded_getaddrinfo
