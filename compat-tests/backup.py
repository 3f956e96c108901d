#!/usr/bin/env python3
"""The `snapshot` and `restore` admin commands against Apache ZooKeeper 3.8's own files:

1. a tree written with kazoo into zkrs, taken with `GET /commands/snapshot`, is put into a
   fresh Apache ZooKeeper data dir as `version-2/snapshot.<zxid>`: Apache ZooKeeper loads it
   and serves every node with zkrs's data, stat and ACL, at the snapshot's zxid;
2. Apache ZooKeeper changes that tree and is restarted (it writes a snapshot as it starts);
   that snapshot file, POSTed to `/commands/restore` of a fresh zkrs, makes zkrs serve
   exactly Apache's tree.

    python3 compat-tests/backup.py <zkrs-binary> [base-port]
"""
import glob
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request

from kazoo.client import KazooClient
from kazoo.security import make_acl, make_digest_acl

BIN = sys.argv[1]
BASE = int(sys.argv[2]) if len(sys.argv) > 2 else 24740
JARS = "/usr/share/java/zookeeper.jar:/usr/share/java/zookeeper-jute.jar:/usr/share/java/slf4j-simple.jar"
AUTH = [("digest", "owner:pw")]
failures = 0
procs = []


def check(name, got, want):
    global failures
    if got == want:
        print(f"PASS: {name}")
    else:
        failures += 1
        print(f"FAIL: {name}: got {got!r}, want {want!r}")


def srvr(port):
    return word(port, "srvr")


def word(port, w):
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=1) as s:
            s.sendall(w.encode())
            out = b""
            while True:
                b = s.recv(4096)
                if not b:
                    return out.decode()
                out += b
    except OSError:
        return ""


def wait_serving(port, log):
    for _ in range(300):
        # srvr, not ruok: Apache answers imok before it serves sessions.
        if "Mode:" in srvr(port):
            return
        time.sleep(0.1)
    raise SystemExit(f"nothing serves on {port}; see {log}")


def start(kind, d, port, admin=None):
    os.makedirs(d, exist_ok=True)
    cfg = os.path.join(d, "zoo.cfg")
    with open(cfg, "w") as f:
        f.write(f"tickTime=2000\ndataDir={d}\nclientPort={port}\nclientPortAddress=127.0.0.1\n"
                "4lw.commands.whitelist=*\n")
        if admin:
            f.write(f"admin.serverPort={admin}\nadmin.serverAddress=127.0.0.1\n")
        else:
            f.write("admin.enableServer=false\n")
    log = os.path.join(d, "server.log")
    out = open(log, "a")
    if kind == "zkrs":
        p = subprocess.Popen([BIN, "--config", cfg], stdout=out, stderr=out)
    else:
        p = subprocess.Popen(["java", f"-Dzookeeper.log.dir={d}", "-cp", JARS,
                              "org.apache.zookeeper.server.quorum.QuorumPeerMain", cfg],
                             stdout=out, stderr=out)
    procs.append(p)
    wait_serving(port, log)
    return p


def stop(p):
    p.send_signal(signal.SIGTERM)
    p.wait(timeout=30)


def client(port):
    zk = KazooClient(hosts=f"127.0.0.1:{port}", auth_data=AUTH)
    zk.start(timeout=15)
    return zk


def http(port, path, body=None):
    req = urllib.request.Request(f"http://127.0.0.1:{port}{path}", data=body,
                                 method="POST" if body is not None else "GET",
                                 headers={"Authorization": "digest backup:secret"})
    if body is not None:
        req.add_header("Content-Type", "application/octet-stream")
    try:
        with urllib.request.urlopen(req, timeout=120) as r:
            return r.status, r.headers, r.read()
    except urllib.error.HTTPError as e:
        return e.code, e.headers, e.read()


def dump(zk, path="/", out=None):
    """Every node: data, stat, ACL, children."""
    out = {} if out is None else out
    data, stat = zk.get(path)
    acl, _ = zk.get_acls(path)
    children = sorted(zk.get_children(path))
    out[path] = (data, tuple(stat), sorted((a.perms, a.id.scheme, a.id.id) for a in acl),
                 children)
    for c in children:
        dump(zk, path.rstrip("/") + "/" + c, out)
    return out


def compare(name, got, want):
    check(f"{name}: the same paths", sorted(got), sorted(want))
    differing = [p for p in want if p in got and got[p] != want[p]]
    check(f"{name}: every node's data, stat and ACL", [(p, got[p], want[p]) for p in differing], [])


def zxid_of(port):
    for line in srvr(port).splitlines():
        if line.startswith("Zxid: "):
            return int(line[len("Zxid: "):], 16)
    return None


root = tempfile.mkdtemp(prefix="zkrs-backup-")
try:
    # 1. zkrs's snapshot, loaded by Apache ZooKeeper.
    a_port, a_admin = BASE, BASE + 1
    start("zkrs", os.path.join(root, "zkrs-a"), a_port, a_admin)
    zk = client(a_port)
    zk.create("/app", b"top")
    zk.create("/app/bin", bytes(range(256)))
    for _ in range(3):
        zk.create("/app/seq-", b"s", sequence=True)
    zk.create("/app/secret", b"hidden", acl=[make_digest_acl("owner", "pw", all=True)])
    zk.create("/app/ro", b"r", acl=[make_acl("world", "anyone", read=True)])
    zk.create("/app/gone", b"")
    zk.delete("/app/gone")
    for i in range(3):
        zk.set("/app", b"v%d" % i)
    zk.create("/deep/a/b/c", b"x", makepath=True)
    zk.create("/app/eph", b"e", ephemeral=True)
    zkrs_tree = dump(zk)
    status, headers, body = http(a_admin, "/commands/snapshot")
    check("snapshot answers 200", status, 200)
    check("snapshot is a stream", headers.get("Content-Type"), "application/octet-stream")
    check("snapshot_size is the body's", headers.get("snapshot_size"), str(len(body)))
    zxid = int(headers.get("last_zxid", "0x0"), 16)
    check("last_zxid is the server's", zxid, zxid_of(a_port))

    apache_dir = os.path.join(root, "apache")
    os.makedirs(os.path.join(apache_dir, "version-2"))
    with open(os.path.join(apache_dir, "version-2", f"snapshot.{zxid:x}"), "wb") as f:
        f.write(body)
    apache_port = BASE + 4
    apache = start("apache", apache_dir, apache_port)
    check("Apache ZooKeeper serves at the snapshot's zxid", zxid_of(apache_port), zxid)
    # The file's ZxidDigest is ZooKeeper's tree digest: Apache compares it with its own.
    mntr = word(apache_port, "mntr")
    check("Apache ZooKeeper finds the snapshot's digest its own",
          "zk_digest_mismatches_count\t0" in mntr and "zk_digest_mismatches_count" in mntr, True)
    az = client(apache_port)
    compare("Apache ZooKeeper on zkrs's snapshot", dump(az), zkrs_tree)
    check("the ephemeral's owner came along", az.exists("/app/eph").ephemeralOwner,
          zk.client_id[0])
    zk.stop()
    zk.close()

    # 2. Apache ZooKeeper's snapshot, restored into zkrs.
    az.create("/from-apache", b"a", acl=[make_digest_acl("owner", "pw", read=True, write=True)])
    az.set("/app", b"changed by apache")
    az.delete("/deep/a/b/c")
    az.delete("/app/eph")  # its session expires on Apache's own clock
    az.create("/app/seq-", b"s", sequence=True)
    az.stop()
    az.close()
    stop(apache)
    apache = start("apache", apache_dir, apache_port)
    snaps = sorted(glob.glob(os.path.join(apache_dir, "version-2", "snapshot.*")),
                   key=lambda p: int(p.rsplit(".", 1)[1], 16))
    newest = snaps[-1]
    newest_zxid = int(newest.rsplit(".", 1)[1], 16)
    check("Apache ZooKeeper wrote a snapshot as it started", newest_zxid > zxid, True)
    az = client(apache_port)
    apache_tree = dump(az)
    b_port, b_admin = BASE + 2, BASE + 3
    start("zkrs", os.path.join(root, "zkrs-b"), b_port, b_admin)
    with open(newest, "rb") as f:
        status, _, answer = http(b_admin, "/commands/restore", f.read())
    # 3.8's snapshot does not end with its zxid (only its file name says it): the restore
    # takes the latest its nodes name (czxid, mzxid, pzxid).
    latest = max(max(st[0], st[1], st[10]) for _, st, _, _ in apache_tree.values())
    check("restore answers 200 with the snapshot's zxid", (status, answer.decode()),
          (200, f'{{\n  "last_zxid" : {latest},\n  "command" : "restore",\n  "error" : null\n}}'))
    check("zkrs serves at that zxid", zxid_of(b_port), latest)
    bz = client(b_port)
    compare("zkrs restored from Apache ZooKeeper's snapshot", dump(bz), apache_tree)
    bz.create("/after", b"")
    check("a write after the restore gets a later zxid", bz.exists("/after").czxid > latest, True)
    bz.stop()
    bz.close()
    az.stop()
    az.close()
finally:
    for p in procs:
        if p.poll() is None:
            p.kill()
            p.wait()
    if failures:
        print(f"kept {root}")
    else:
        shutil.rmtree(root, ignore_errors=True)

print(f"{'FAILED' if failures else 'ALL PASSED'}: backup ({failures} failures)")
sys.exit(1 if failures else 0)
