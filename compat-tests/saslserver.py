"""A standalone server (zkrs or Apache ZooKeeper 3.8) for the SASL suites, and raw SASL
requests to it.

    p = start(what, bin, port, dir, name, cfg_lines, jvm_flags)   # waits until it serves
    stop(p)
    xid, zxid, err, token, closed = raw_sasl(port, b"", b"...")
"""
import os
import socket
import struct
import subprocess
import time

JARS = "/usr/share/java/zookeeper.jar:/usr/share/java/zookeeper-jute.jar:/usr/share/java/slf4j-simple.jar"


def start(what, bin, port, directory, name, cfg_lines, jvm_flags, quiet=False):
    """zkrs (`bin`, the JVM flags in SERVER_JVMFLAGS) or Apache (`java` with the flags) in
    `directory/name`, on 127.0.0.1:`port`; raises SystemExit, with the log's tail unless
    `quiet`, when it does not serve within 30 s or exits."""
    d = os.path.join(directory, name)
    os.makedirs(os.path.join(d, "data"))
    cfg = os.path.join(d, "zoo.cfg")
    with open(cfg, "w") as f:
        f.write("\n".join(["tickTime=2000", f"dataDir={d}/data", f"clientPort={port}",
                           "clientPortAddress=127.0.0.1", "admin.enableServer=false",
                           "4lw.commands.whitelist=*"] + cfg_lines) + "\n")
    log = open(os.path.join(d, "server.log"), "w")
    if what == "zkrs":
        env = dict(os.environ, SERVER_JVMFLAGS=" ".join(["-Xmx512m"] + jvm_flags))
        p = subprocess.Popen([bin, "--config", cfg], stdout=log, stderr=log, env=env)
    else:
        p = subprocess.Popen(["java", f"-Dzookeeper.log.dir={d}"] + jvm_flags +
                             ["-cp", JARS, "org.apache.zookeeper.server.quorum.QuorumPeerMain", cfg],
                             stdout=log, stderr=log)
    for _ in range(300):
        try:
            # srvr, not ruok: Apache answers imok before it serves sessions.
            with socket.create_connection(("127.0.0.1", port), timeout=1) as s:
                s.sendall(b"srvr")
                if b"Mode:" in s.recv(4096):
                    return p
        except OSError:
            pass
        if p.poll() is not None:
            break
        time.sleep(0.1)
    log.close()
    stop(p)
    if not quiet:
        with open(os.path.join(d, "server.log")) as f:
            print(f.read()[-3000:])
    raise SystemExit(f"{name}: the server did not start; see {d}/server.log")


def stop(p):
    p.terminate()
    try:
        p.wait(10)
    except subprocess.TimeoutExpired:
        p.kill()
        p.wait()


def frame(body):
    return struct.pack(">i", len(body)) + body


def buf(b):
    return struct.pack(">i", -1) if b is None else struct.pack(">i", len(b)) + b


def recv_frame(s):
    head = s.recv(4, socket.MSG_WAITALL)
    if len(head) < 4:
        return None
    n = struct.unpack(">i", head)[0]
    return s.recv(n, socket.MSG_WAITALL)


def raw_sasl(port, *tokens):
    """A session, then SASL requests: (xid, zxid, err, token bytes or None) of the last, and
    whether the server closed the connection after it."""
    s = socket.create_connection(("127.0.0.1", port), timeout=5)
    s.sendall(frame(struct.pack(">iqiq", 0, 0, 30000, 0) + buf(b"\0" * 16) + b"\0"))
    recv_frame(s)
    for i, token in enumerate(tokens):
        s.sendall(frame(struct.pack(">ii", 7 + i, 102) + buf(token)))
        r = recv_frame(s)
        xid, zxid, err = struct.unpack(">iqi", r[:16])
    tok = None
    if len(r) >= 20:
        n = struct.unpack(">i", r[16:20])[0]
        tok = None if n < 0 else r[20:20 + n]
    s.settimeout(3)
    try:
        closed = s.recv(1) == b""
    except socket.timeout:
        closed = False
    s.close()
    return xid, zxid, err, tok, closed


def acl_ids(client, path):
    """The `scheme:id`s of a node's ACL, sorted."""
    return sorted(f"{a.id.scheme}:{a.id.id}" for a in client.get_acls(path)[0])
