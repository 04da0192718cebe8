"""Turn on generic receive offload (GRO) for a network interface of this namespace.

A veth end receives the frames ``tbf`` released one by one; with GRO the kernel merges the frames
of one TCP flow that arrive together, so the receiver acknowledges merged segments instead of
every other frame. That keeps the packet rate through the Python delay line (which carries the
ACKs back) low at 1 Gbit/s. Usage: ``python -m picost.netlab.gro IFNAME ...`` (root).
"""

from __future__ import annotations

import ctypes
import fcntl
import socket
import struct
import sys

SIOCETHTOOL = 0x8946
ETHTOOL_SGRO = 0x0000002C
IFREQ_BYTES = 40


def enable_gro(ifname: str) -> None:
    value = ctypes.create_string_buffer(struct.pack("II", ETHTOOL_SGRO, 1))
    ifreq = struct.pack("16sP", ifname.encode(), ctypes.addressof(value))
    ifreq += bytes(IFREQ_BYTES - len(ifreq))
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        fcntl.ioctl(sock.fileno(), SIOCETHTOOL, ifreq)


if __name__ == "__main__":
    for name in sys.argv[1:]:
        enable_gro(name)
