#!/usr/bin/env python3
"""Prints N free loopback TCP ports (default 1), one per line.

Ports are picked at random below the kernel's ephemeral range, so no outgoing connection
can take one between this check and the server's bind (see tests/testutil/etcd_server.cc).
"""
import random, socket, sys

n = int(sys.argv[1]) if len(sys.argv) > 1 else 1
try:
    eph_lo, eph_hi = map(int, open("/proc/sys/net/ipv4/ip_local_port_range").read().split())
except OSError:
    eph_lo, eph_hi = 32768, 60999
lo, hi = 10000, eph_lo - 1
if hi - lo < 1000:
    lo, hi = eph_hi + 1, 65535
socks, ports = [], []
for _ in range(10000):
    if len(ports) == n:
        break
    port = random.randint(lo, hi)
    if port in (2379, 2380) or port in ports:
        continue
    s = socket.socket()
    try:
        s.bind(("127.0.0.1", port))
    except OSError:
        s.close()
        continue
    socks.append(s)
    ports.append(port)
else:
    sys.exit("no free loopback ports in %d-%d" % (lo, hi))
for p in ports:
    print(p)
for s in socks:
    s.close()
