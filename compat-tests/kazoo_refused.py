"""Exits 0 when kazoo cannot get a session from HOSTS within 4 s (one connection attempt).

    python3 compat-tests/kazoo_refused.py HOSTS [CA_PEM]   # CA_PEM: connect over TLS, no client cert
"""
import sys

from kazoo.client import KazooClient
from kazoo.handlers.threading import KazooTimeoutError

hosts = sys.argv[1]
tls = {"use_ssl": True, "verify_certs": True, "ca": sys.argv[2]} if len(sys.argv) > 2 else {}
client = KazooClient(hosts=hosts, connection_retry={"max_tries": 1}, **tls)
try:
    client.start(timeout=4)
    raise SystemExit(f"kazoo got a session from {hosts}")
except KazooTimeoutError:
    pass
finally:
    client.stop()
